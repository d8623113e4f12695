"""A put_writes whose values went around its script, and whose script never ran.

Big values go as plain HSETNX/HSET in a MULTI before the script that lists them. After
``NOSCRIPT`` the driver sends the script again with every value in it; when that call fails
too (here: an ACL user that may not EVAL), the values stay in the thread's write hash,
listed nowhere: no write, as the caller was told. They must not stand in for the write a
later call makes for that task and index (LangGraph keeps the first write *stored*: a
stored write is a listed one).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.checkpoint._scripts import PUT_WRITES
from deepagents_redis.core import DeepAgentsRedisError
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6


def _primaries(target: Any) -> list[Any]:
    client = target.client
    if isinstance(client, redis.RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


async def _put_writes(saver: RedisSaver, config: Any, writes: Any, how: str) -> None:
    if how == "sync":
        saver.put_writes(config, writes, "task-1")
    else:
        await saver.aput_writes(config, writes, "task-1")


@pytest.mark.parametrize("ttl", [None, 60])
@pytest.mark.parametrize("then", ["big", "small", "big, scripts still lost"])
@pytest.mark.parametrize("how", ["sync", "async"])
async def test_values_of_a_put_writes_whose_script_never_ran_are_no_write(
    owned_redis_target: Any,
    acl_user: Any,
    then: str,
    how: str,
    ttl: int | None,
) -> None:
    # Servers this session started: the test adds an ACL user and flushes scripts,
    # server-wide changes the suite never makes to a server it did not start (`REDIS_URL`).
    redis_target = owned_redis_target
    user = acl_user()
    saver = RedisSaver(
        connector=user.connector, script_blob_bytes=64, ttl_seconds=ttl, eviction_check="off"
    )
    thread = f"t-{uuid.uuid4().hex[:8]}"
    cp = empty_checkpoint()
    cp["id"] = str(uuid6())
    config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    stored = saver.put(config, cp, {"source": "loop", "step": 0}, {})
    user.allow("-eval")  # the fallback after NOSCRIPT is refused
    for node in _primaries(redis_target):
        node.script_flush()
    with pytest.raises(DeepAgentsRedisError):  # NOSCRIPT, then the fallback is refused
        await _put_writes(saver, stored, [("out", "lost " * 40), ("n", 1)], how)
    user.allow()
    if then != "big, scripts still lost":  # another call loaded them meanwhile
        for node in _primaries(redis_target):
            node.script_load(PUT_WRITES.source)
    tup = saver.get_tuple(stored)
    assert tup is not None
    assert tup.pending_writes == []
    # the task runs again, and this time says something else
    second = [("out", "kept" if then == "small" else ("kept " * 40)), ("n", 2)]
    await _put_writes(saver, stored, second, how)
    tup = saver.get_tuple(stored)
    assert tup is not None
    assert sorted(tup.pending_writes) == sorted(("task-1", ch, v) for ch, v in second)
    # and a third call for the same task and index keeps the stored one (LangGraph's rule)
    await _put_writes(saver, stored, [("out", "late " * 40), ("n", 3)], how)
    tup = saver.get_tuple(stored)
    assert tup is not None
    assert sorted(tup.pending_writes) == sorted(("task-1", ch, v) for ch, v in second)
    if ttl is not None:
        for key in saver.keys.thread(thread).all:
            assert redis_target.client.pttl(key) != -1, key
