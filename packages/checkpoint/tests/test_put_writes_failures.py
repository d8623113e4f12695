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
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.checkpoint._scripts import PUT_WRITES
from deepagents_redis.core import DeepAgentsRedisError, RedisConnector
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6


def _primaries(target: Any) -> list[Any]:
    client = target.client
    if isinstance(client, redis.RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def _acl(target: Any, user: str, *, eval_ok: bool) -> None:
    rules = ["reset", "on", "nopass", "~*", "&*", "+@all"]
    rules += [] if eval_ok else ["-eval"]
    for node in _primaries(target):
        node.execute_command("ACL", "SETUSER", user, *rules)


@pytest.fixture
def limited(owned_redis_target: Any) -> Iterator[tuple[RedisConnector, str]]:
    """A connector as a user who can be refused EVAL (the fallback after NOSCRIPT).

    On servers this session started: the test adds ACL users and flushes scripts, server-wide
    changes the suite never makes to a server it did not start (`REDIS_URL`).
    """
    redis_target = owned_redis_target
    user = f"ckpt-{uuid.uuid4().hex[:10]}"
    _acl(redis_target, user, eval_ok=True)
    url = redis_target.url.replace("redis://", f"redis://{user}:x@", 1)
    conn = RedisConnector(settings=redis_target.settings.with_overrides(url=url))
    try:
        yield conn, user
    finally:
        conn.close()
        for node in _primaries(redis_target):
            node.execute_command("ACL", "DELUSER", user)


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
    limited: tuple[RedisConnector, str],
    then: str,
    how: str,
    ttl: int | None,
) -> None:
    redis_target = owned_redis_target
    conn, user = limited
    saver = RedisSaver(connector=conn, script_blob_bytes=64, ttl_seconds=ttl, eviction_check="off")
    thread = f"t-{uuid.uuid4().hex[:8]}"
    cp = empty_checkpoint()
    cp["id"] = str(uuid6())
    config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    stored = saver.put(config, cp, {"source": "loop", "step": 0}, {})
    _acl(redis_target, user, eval_ok=False)
    for node in _primaries(redis_target):
        node.script_flush()
    with pytest.raises(DeepAgentsRedisError):  # NOSCRIPT, then the fallback is refused
        await _put_writes(saver, stored, [("out", "lost " * 40), ("n", 1)], how)
    _acl(redis_target, user, eval_ok=True)
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
