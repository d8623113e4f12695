"""READ's reply shape: a msgpack head, then each inline entry's blobs as plain bulk strings.

Packed into the head, every blob byte cost the server a copy (~1.5 µs per KB, measured: a
270 KB blob read inside the script went from ~1045 µs of EVALSHA to ~554 µs). Stored data is
unchanged, so what an earlier build put reads the same.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgpack
import pytest
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.checkpoint._saver import _read_reply
from deepagents_redis.checkpoint._scripts import READ
from deepagents_redis.core import RedisConnector, SerializationError
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint


def _put_chain(saver: RedisSaver, thread: str, n: int) -> list[bytes]:
    """`n` checkpoints, each with a new 'messages' blob; the serializer's bytes of each."""
    cfg: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    blobs: list[bytes] = []
    for i in range(n):
        cp = empty_checkpoint()
        messages = [HumanMessage(f"q{i} " + "x" * 2000), AIMessage(f"a{i} " + "y" * 2000)]
        cp["channel_values"] = {"messages": messages, "small": i}
        cp["channel_versions"] = {"messages": f"{i + 1:032}.0", "small": f"{i + 1:032}.0"}
        new = dict(cp["channel_versions"])
        cfg = saver.put(cfg, cp, {"source": "loop", "step": i, "parents": {}}, new)  # type: ignore[arg-type]
        blobs.append(saver.serde.dumps_typed(messages)[1])
    return blobs


def test_blobs_leave_the_script_as_bulk_strings(saver: RedisSaver) -> None:
    thread = f"t-{uuid.uuid4().hex}"
    blobs = _put_chain(saver, thread, 3)
    keys = saver.keys.thread(thread)
    # every blob inside the script ('' = no inline limit), the two newest checkpoints
    reply = READ(saver.connector.client(), keys=keys.all, args=["scan", "", "+", "-", 2, 8, "", ""])
    assert isinstance(reply, list)
    head = msgpack.unpackb(reply[0], raw=True)
    # the head carries a count per entry, never blob bytes
    assert [entry[4] for entry in head[1:]] == [2, 2]
    assert all(blob not in reply[0] for blob in blobs)
    assert any(blobs[2] in part for part in reply[1:3])
    assert any(blobs[1] in part for part in reply[3:5])
    # put back in place: each entry's blobs aligned with its record's refs
    entries = _read_reply(reply)[1:]
    for entry, blob in zip(entries, (blobs[2], blobs[1]), strict=True):
        refs = msgpack.unpackb(entry[3], raw=True)[1]
        assert len(entry[4]) == len(refs)
        assert any(blob in part for part in entry[4])
    tup = saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
    assert tup is not None
    assert tup.checkpoint["channel_values"]["small"] == 2
    assert len(list(saver.list({"configurable": {"thread_id": thread}}))) == 3
    saver.delete_thread(thread)


async def test_blobs_past_the_limit_still_come_as_sizes(connector: RedisConnector) -> None:
    saver = RedisSaver(connector=connector, script_blob_bytes=100)
    thread = f"t-{uuid.uuid4().hex}"
    blobs = _put_chain(saver, thread, 2)
    keys = saver.keys.thread(thread)
    reply = READ(
        saver.connector.client(), keys=keys.all, args=["scan", "", "+", "-", 1, 8, "", 100]
    )
    assert len(reply) == 1  # nothing in the tail: the client reads the blobs by HMGET
    entry = msgpack.unpackb(reply[0], raw=True)[1]
    assert len(entry) == 7
    assert max(entry[4]) > len(blobs[1])
    tup = saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
    assert tup is not None
    assert len(tup.checkpoint["channel_values"]["messages"]) == 2
    saver.delete_thread(thread)


@pytest.mark.parametrize(
    "reply",
    [
        b"",  # not a list
        [],
        [msgpack.packb([b"", [b"c", b"e", b"b", b"r", 2, []]])],  # two blobs announced, none sent
        [msgpack.packb([b"", [b"c", b"e", b"b", b"r", 0, []]]), b"extra"],  # one too many
        [msgpack.packb([b"", [b"c", b"e", b"b", b"r", -1, []]])],
        [msgpack.packb([b"", [b"c", b"e"]])],  # an entry too short
        [msgpack.packb([b"", b"not an entry"])],
    ],
)
def test_a_reply_of_another_shape_is_refused(reply: Any) -> None:
    with pytest.raises(SerializationError):
        _read_reply(reply)
