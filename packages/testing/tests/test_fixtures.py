"""The plugin's client fixtures, against the private server and the local cluster."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio
from deepagents_redis.core import RedisSettings
from deepagents_redis.testing import RedisTarget


def test_redis_url_is_private_loopback(redis_url: str) -> None:
    assert redis_url.startswith("redis://127.0.0.1:")
    assert not redis_url.startswith("redis://127.0.0.1:6379")


def test_key_prefix_unique_and_valid(key_prefix: str, request: pytest.FixtureRequest) -> None:
    from deepagents_redis.core import KeySpace
    from deepagents_redis.testing import unique_key_prefix

    other = unique_key_prefix(request.node.nodeid)
    assert other != key_prefix
    assert other[:15] == key_prefix[:15]  # same test, same hash part
    KeySpace(key_prefix)  # accepted by core's validation


def test_redis_settings(redis_settings: RedisSettings, redis_url: str, key_prefix: str) -> None:
    assert redis_settings.url == redis_url
    assert redis_settings.key_prefix == key_prefix
    assert redis_settings.cluster == "off"


def test_redis_client_round_trip(redis_client: Any, key_prefix: str) -> None:
    assert isinstance(redis_client, redis.Redis)
    redis_client.set(f"{key_prefix}:a", "1")
    assert redis_client.get(f"{key_prefix}:a") in (b"1", "1")


async def test_async_redis_client_round_trip(async_redis_client: Any, key_prefix: str) -> None:
    assert isinstance(async_redis_client, redis.asyncio.Redis)
    await async_redis_client.set(f"{key_prefix}:a", "2")
    assert await async_redis_client.get(f"{key_prefix}:a") in (b"2", "2")


@pytest.mark.cluster
def test_cluster_every_node_ok(redis_cluster: Any) -> None:
    assert len(redis_cluster.nodes) == 3
    slot_maps = []
    for node in redis_cluster.nodes:
        with redis.Redis.from_url(node.url, decode_responses=True, protocol=2) as c:
            info = c.execute_command("CLUSTER", "INFO")
            assert "cluster_state:ok" in info
            slot_maps.append(sorted((s[0], s[1]) for s in c.execute_command("CLUSTER", "SLOTS")))
    assert slot_maps[0] == slot_maps[1] == slot_maps[2]
    assert sum(end - start + 1 for start, end in slot_maps[0]) == 16384
    assert len({node.port for node in redis_cluster.nodes}) == 3
    assert all(node.port + 10000 <= 65535 for node in redis_cluster.nodes)


@pytest.mark.cluster
def test_cluster_client_spreads_keys(cluster_client: Any, key_prefix: str) -> None:
    assert isinstance(cluster_client, redis.RedisCluster)
    keys = [f"{key_prefix}:{i}" for i in range(30)]
    for key in keys:
        cluster_client.set(key, key)
    slots = {cluster_client.keyslot(k) for k in keys}
    owners = {cluster_client.get_node_from_key(k).port for k in keys}
    assert len(slots) > 1
    assert len(owners) == 3
    assert [cluster_client.get(k) for k in keys] == [k.encode() for k in keys]


@pytest.mark.cluster
async def test_async_cluster_client(async_cluster_client: Any, key_prefix: str) -> None:
    assert isinstance(async_cluster_client, redis.asyncio.RedisCluster)
    await async_cluster_client.set(f"{key_prefix}:x", "y")
    assert await async_cluster_client.get(f"{key_prefix}:x") == b"y"


def test_redis_target_sync(redis_target: RedisTarget, request: pytest.FixtureRequest) -> None:
    expected_mode = request.node.callspec.params["redis_target"]
    assert redis_target.mode == expected_mode
    assert redis_target.settings.cluster == ("on" if expected_mode == "cluster" else "off")
    assert redis_target.is_cluster is (expected_mode == "cluster")
    cls = redis.RedisCluster if redis_target.is_cluster else redis.Redis
    assert isinstance(redis_target.client, cls)
    key = f"{redis_target.key_prefix}:{{scope}}:k"
    redis_target.client.set(key, "v")
    assert redis_target.client.get(key) == b"v"
    if expected_mode == "cluster":
        assert request.node.get_closest_marker("cluster") is not None


async def test_redis_target_async(redis_target: RedisTarget) -> None:
    cls = redis.asyncio.RedisCluster if redis_target.is_cluster else redis.asyncio.Redis
    client = redis_target.async_client
    assert isinstance(client, cls)
    key = f"{redis_target.key_prefix}:{{scope}}:k"
    await client.set(key, "v")
    assert await client.get(key) == b"v"
