from __future__ import annotations

import hashlib
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.exceptions as rexc
from deepagents_redis.core import InvalidInputError, KeySpace, LuaScript, RedisUnavailableError

ECHO = LuaScript(
    "echo_incr",
    """
-- KEYS[1] counter   ARGV[1] increment
-- returns {new value, ARGV[1]}; errors 'BAD' if ARGV[1] == 'bad'
if ARGV[1] == 'bad' then return redis.error_reply('BAD input') end
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
return {v, ARGV[1]}
""",
)


def scripts_known(client: Any, sha: str, key: str) -> bool:
    # On a cluster, ask the primary that owns the key (redis-py would ask all and AND them).
    if isinstance(client, redis.RedisCluster):
        result = client.execute_command(
            "SCRIPT EXISTS", sha, target_nodes=client.get_node_from_key(key)
        )
    else:
        result = client.script_exists(sha)
    return bool(result[0])


async def ascripts_known(client: Any, sha: str, key: str) -> bool:
    if isinstance(client, redis.asyncio.RedisCluster):
        result = await client.execute_command(
            "SCRIPT EXISTS", sha, target_nodes=client.get_node_from_key(key)
        )
    else:
        result = await client.script_exists(sha)
    return bool(result[0])


def test_sha_is_local_sha1() -> None:
    assert ECHO.sha == hashlib.sha1(ECHO.source.encode()).hexdigest()
    assert ECHO.name == "echo_incr"
    with pytest.raises(InvalidInputError):
        LuaScript("x", "  ")


@pytest.mark.integration
async def test_reload_after_script_flush(owned_redis_target: Any, key_prefix: str) -> None:
    """EVALSHA, SCRIPT FLUSH, EVALSHA again: NOSCRIPT is handled, sync and async (on a server
    this session started: the flush is server-wide)."""
    redis_target = owned_redis_target
    client = redis_target.client
    key = KeySpace(key_prefix).key("n", "scope")
    client.script_flush()
    assert not scripts_known(client, ECHO.sha, key)
    assert ECHO(client, keys=[key], args=[2]) == [2, b"2"]
    assert scripts_known(client, ECHO.sha, key)  # EVAL cached it on the node owning the key
    assert ECHO(client, keys=[key], args=[3]) == [5, b"3"]
    client.script_flush()
    assert not scripts_known(client, ECHO.sha, key)
    assert ECHO(client, keys=[key], args=[1]) == [6, b"1"]

    aclient = redis_target.async_client
    await aclient.script_flush()
    assert not await ascripts_known(aclient, ECHO.sha, key)
    assert await ECHO.acall(aclient, keys=[key], args=[4]) == [10, b"4"]
    assert await ECHO.acall(aclient, keys=[key], args=[4]) == [14, b"4"]
    await aclient.script_flush()
    assert await ECHO.acall(aclient, keys=[key], args=[1]) == [15, b"1"]
    assert int(client.get(key)) == 15


@pytest.mark.integration
async def test_script_error_reply_passes_through(redis_target: Any, key_prefix: str) -> None:
    key = KeySpace(key_prefix).key("n", "s")
    with pytest.raises(rexc.ResponseError, match="BAD input"):
        ECHO(redis_target.client, keys=[key], args=["bad"])
    with pytest.raises(rexc.ResponseError, match="BAD input"):
        await ECHO.acall(redis_target.async_client, keys=[key], args=["bad"])
    assert redis_target.client.get(key) is None


@pytest.mark.integration
@pytest.mark.cluster
@pytest.mark.parametrize("owned_redis_target", ["cluster"], indirect=True)
def test_cluster_routes_by_key_after_flush(owned_redis_target: Any, key_prefix: str) -> None:
    """Keys of many scopes land on all three primaries; each call after a flush reloads there
    (a cluster this session started: the flush is server-wide)."""
    cluster_client = owned_redis_target.client
    ks = KeySpace(key_prefix)
    keys = [ks.key("n", f"scope-{i}") for i in range(12)]
    owners = {cluster_client.get_node_from_key(k).name for k in keys}
    assert len(owners) == 3
    cluster_client.script_flush()
    for k in keys:
        assert ECHO(cluster_client, keys=[k], args=[1]) == [1, b"1"]
    cluster_client.script_flush()
    for k in keys:
        assert ECHO(cluster_client, keys=[k], args=[1]) == [2, b"1"]


def test_transport_errors_translated() -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused.
    client = redis.Redis(port=1, socket_connect_timeout=0.5, retry=None)
    try:
        with pytest.raises(RedisUnavailableError) as info:
            ECHO(client, keys=["k"], args=[1])
        assert isinstance(info.value.__cause__, rexc.ConnectionError)
    finally:
        client.close()
