"""The cross-thread indexes are written atomically: no key of them lives without its TTL.

A run's index (``ckpt-run:{<ns>/<run>}:threads``) is a set with a TTL of twice the saver's.
Redis sets a set and its TTL with two commands; sent as a plain pipeline, a failure between
them (a connection cut after the first, a refused second) left the set with no TTL: a key that
lived for ever, one per run. The tests make the second command fail for real: an ACL user that
may ``PEXPIRE`` the thread's keys (so every script runs) but not the run index's.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.checkpoint._scripts import RUN_INDEX
from deepagents_redis.core import DeepAgentsRedisError, RedisConnector
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6


def _no_run_expire(user: Any, target: Any) -> None:
    """`user` may do anything but ``PEXPIRE`` a key outside a thread."""
    thread_keys = f"~{target.key_prefix}:v2:ckpt:*"
    user.allow("-pexpire", f"({thread_keys} +pexpire)")


def _checkpoint() -> Any:
    cp = empty_checkpoint()
    cp["id"] = str(uuid6())
    return cp


async def _put(saver: RedisSaver, thread: str, run: str, how: str) -> None:
    config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    metadata: Any = {"source": "loop", "step": 0, "run_id": run}
    if how == "sync":
        saver.put(config, _checkpoint(), metadata, {})
    else:
        await saver.aput(config, _checkpoint(), metadata, {})


async def _copy(saver: RedisSaver, source: str, target: str, how: str) -> None:
    if how == "sync":
        saver.copy_thread(source, target)
    else:
        await saver.acopy_thread(source, target)


def _no_key_without_ttl(target: Any, key: str) -> None:
    # -2: no key (nothing written); else a lifetime. -1 is the key that lives for ever.
    assert target.client.pttl(key) != -1, f"{key} has no TTL"


@pytest.mark.parametrize("how", ["sync", "async"])
async def test_a_refused_run_index_expiry_leaves_no_run_key_without_ttl(
    owned_redis_target: Any, acl_user: Any, how: str
) -> None:
    redis_target = owned_redis_target
    user = acl_user()
    _no_run_expire(user, redis_target)
    saver = RedisSaver(connector=user.connector, ttl_seconds=60, eviction_check="off")
    thread, run = f"t-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:8]}"
    with pytest.raises(DeepAgentsRedisError):
        await _put(saver, thread, run, how)
    _no_key_without_ttl(redis_target, saver.keys.run(run))


@pytest.mark.parametrize("how", ["sync", "async"])
async def test_a_run_named_again_after_the_script_gets_its_ttl_or_nothing(
    owned_redis_target: Any, acl_user: Any, how: str
) -> None:
    """The index a put writes after its script (the thread was deleted meanwhile)."""
    redis_target = owned_redis_target
    user = acl_user()
    saver = RedisSaver(connector=user.connector, ttl_seconds=60, eviction_check="off")
    thread, run = f"t-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:8]}"
    await _put(saver, thread, run, how)  # this process has named the thread and the run
    # another process resets the conversation; this one, unaware, writes the same run on
    with RedisConnector(settings=redis_target.settings) as admin_conn:
        RedisSaver(connector=admin_conn).delete_thread(thread)
    assert not redis_target.client.exists(saver.keys.run(run))
    _no_run_expire(user, redis_target)
    with pytest.raises(DeepAgentsRedisError):
        await _put(saver, thread, run, how)
    _no_key_without_ttl(redis_target, saver.keys.run(run))


@pytest.mark.parametrize("how", ["sync", "async"])
async def test_a_copy_whose_run_index_expiry_is_refused_leaves_no_run_key_without_ttl(
    owned_redis_target: Any, acl_user: Any, how: str
) -> None:
    redis_target = owned_redis_target
    user = acl_user()
    saver = RedisSaver(connector=user.connector, ttl_seconds=60, eviction_check="off")
    source, target, run = (f"{w}-{uuid.uuid4().hex[:8]}" for w in ("s", "t", "r"))
    await _put(saver, source, run, how)
    redis_target.client.delete(saver.keys.run(run))  # the run's index expired meanwhile
    _no_run_expire(user, redis_target)
    with pytest.raises(DeepAgentsRedisError):
        await _copy(saver, source, target, how)
    _no_key_without_ttl(redis_target, saver.keys.run(run))


def test_the_fallback_script_names_the_threads_and_sets_the_ttl(redis_target: Any) -> None:
    """What core's Snapshot would send instead of the MULTI (never with redis-py >= 8.1)."""
    key = f"{redis_target.key_prefix}:v2:ckpt-run:{{default/r-{uuid.uuid4().hex[:8]}}}:threads"
    client = redis_target.client
    assert RUN_INDEX(client, keys=[key], args=[60_000, "a", "b"]) == 2
    assert RUN_INDEX(client, keys=[key], args=[120_000, "b"]) == 0
    assert client.smembers(key) == {b"a", b"b"}
    assert 60_000 < client.pttl(key) <= 120_000
