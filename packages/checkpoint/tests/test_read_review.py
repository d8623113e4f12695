"""Review of 25f82c3 (READ reply shape): malformed tails are refused, many entries keep order."""

from __future__ import annotations

import uuid
from typing import Any

import msgpack
import pytest
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.checkpoint._saver import _read_reply
from deepagents_redis.core import RedisConnector, SerializationError
from langgraph.checkpoint.base import empty_checkpoint


def _head(*entries: list[Any]) -> bytes:
    return msgpack.packb([b"x", *entries])


@pytest.mark.parametrize(
    "reply",
    [
        [],
        b"not a list",
        [_head([b"a", b"b", b"c", b"d", 2, b"f"]), b"1"],  # one blob short
        [_head([b"a", b"b", b"c", b"d", 0, b"f"]), b"extra"],  # extra tail
        [_head([b"a", b"b", b"c", b"d", -1, b"f"])],  # negative count
        [_head([b"a", b"b", b"c"])],  # short entry
    ],
)
def test_malformed_reply_is_refused(reply: Any) -> None:
    with pytest.raises(SerializationError):
        _read_reply(reply)


def test_zero_and_empty_blobs_kept_in_place() -> None:
    reply = [
        _head([b"a", b"b", b"c", b"d", 0, b"f"], [b"a", b"b", b"c", b"d", 2, b"f"]),
        b"",
        b"z",
    ]
    head = _read_reply(reply)
    assert head[1][4] == []
    assert head[2][4] == [b"", b"z"]


async def test_many_checkpoints_mixed_limit_keep_blob_order(connector: RedisConnector) -> None:
    saver = RedisSaver(connector=connector, script_blob_bytes=500)
    thread = f"t-{uuid.uuid4().hex}"
    cfg: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    for i in range(12):
        cp = empty_checkpoint()
        big = "b" * (2000 if i % 3 == 0 else 10)
        cp["channel_values"] = {"v": f"{i}-{big}", "e": b"" if i % 2 else i}
        cp["channel_versions"] = {"v": f"{i + 1:032}.0", "e": f"{i + 1:032}.0"}
        cfg = saver.put(
            cfg, cp, {"source": "loop", "step": i, "parents": {}}, dict(cp["channel_versions"])
        )  # type: ignore[arg-type]
    seen = list(saver.list({"configurable": {"thread_id": thread}}))
    assert len(seen) == 12
    for tup, i in zip(seen, range(11, -1, -1), strict=True):
        assert tup.checkpoint["channel_values"]["v"].startswith(f"{i}-")
        assert tup.checkpoint["channel_values"]["e"] == (b"" if i % 2 else i)
    saver.delete_thread(thread)


async def test_get_tuple_by_id_and_copy_thread_every_blob(connector: RedisConnector) -> None:
    saver = RedisSaver(connector=connector)
    thread, other = f"t-{uuid.uuid4().hex}", f"t-{uuid.uuid4().hex}"
    cfg: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    ids = []
    for i in range(4):
        cp = empty_checkpoint()
        cp["channel_values"] = {"v": "x" * (i * 3000), "e": b""}
        cp["channel_versions"] = {"v": f"{i + 1:032}.0", "e": f"{i + 1:032}.0"}
        cfg = saver.put(
            cfg, cp, {"source": "loop", "step": i, "parents": {}}, dict(cp["channel_versions"])
        )  # type: ignore[arg-type]
        ids.append(cfg["configurable"]["checkpoint_id"])
    for i, cid in enumerate(ids):
        tup = saver.get_tuple(
            {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": cid}}
        )
        assert tup is not None
        assert tup.checkpoint["channel_values"] == {"v": "x" * (i * 3000), "e": b""}
    saver.copy_thread(thread, other)
    got = [
        t.checkpoint["channel_values"]["v"]
        for t in saver.list({"configurable": {"thread_id": other}})
    ]
    assert got == ["x" * (i * 3000) for i in range(3, -1, -1)]
    saver.delete_thread(thread)
    saver.delete_thread(other)
