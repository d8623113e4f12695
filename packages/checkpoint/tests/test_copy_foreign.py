"""copy_thread does not spread bytes no put wrote: what `list` refuses, a copy refuses too."""

from __future__ import annotations

import uuid
from typing import Any

import msgpack
import pytest
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.core import RedisConnector, SerializationError
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6


def _stored(saver: RedisSaver, thread: str) -> Any:
    cp = empty_checkpoint()
    cp["id"] = str(uuid6())
    cp["channel_values"] = {"v": 1}
    cp["channel_versions"] = {"v": f"{1:032}.0"}
    config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    stored = saver.put(config, cp, {"source": "loop", "step": 0}, {"v": f"{1:032}.0"})
    saver.put_writes(stored, [("v", 2)], "task-1")
    return stored


async def _copy(saver: RedisSaver, source: str, target: str, how: str) -> None:
    if how == "sync":
        saver.copy_thread(source, target)
    else:
        await saver.acopy_thread(source, target)


@pytest.mark.parametrize(
    "damage",
    [
        "body not msgpack",
        "body of another shape",
        "write not msgpack",
        "write of another shape",
        "write name without its index",
    ],
)
@pytest.mark.parametrize("how", ["sync", "async"])
async def test_a_copy_of_foreign_bytes_is_a_serialization_error_not_spread(
    connector: RedisConnector, damage: str, how: str
) -> None:
    saver = RedisSaver(connector=connector)
    source, target = f"src-{uuid.uuid4().hex[:8]}", f"dst-{uuid.uuid4().hex[:8]}"
    stored = _stored(saver, source)
    keys = saver.keys.thread(source)
    field = keys.field("%_", stored["configurable"]["checkpoint_id"])
    client = connector.client()
    name = b"0\ttask-1"
    if damage == "body not msgpack":
        client.hset(keys.checkpoints, field, b"\xc1 not msgpack")
    elif damage == "body of another shape":
        client.hset(keys.checkpoints, field, msgpack.packb({"a": 1}))
    elif damage == "write not msgpack":
        client.hset(keys.writes, f"{field}\t0\ttask-1", b"\xc1 not msgpack")
    elif damage == "write of another shape":
        client.hset(keys.writes, f"{field}\t0\ttask-1", msgpack.packb([1, 2, 3]))
    else:  # a write list naming a write whose name has no index
        value = client.hget(keys.writes, f"{field}\t0\ttask-1")
        client.hset(keys.writes, f"{field}\tnoindex", value)
        client.hset(keys.write_lists, field, msgpack.packb([name.decode(), "noindex"]))
    with pytest.raises(SerializationError):  # what list says of it
        list(saver.list({"configurable": {"thread_id": source}}))
    with pytest.raises(SerializationError):
        await _copy(saver, source, target, how)
    assert client.exists(*saver.keys.thread(target).all) == 0
    saver.delete_thread(source)
