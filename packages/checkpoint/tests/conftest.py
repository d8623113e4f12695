from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
import redis
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.core import RedisConnector


@pytest_asyncio.fixture
async def connector(redis_target: Any) -> AsyncIterator[RedisConnector]:
    """One connector on the standalone server, then on the cluster (the `redis_target` pair)."""
    conn = RedisConnector(settings=redis_target.settings)
    yield conn
    await conn.aclose()


@pytest_asyncio.fixture
async def saver(connector: RedisConnector) -> AsyncIterator[RedisSaver]:
    yield RedisSaver(connector=connector)


def _primaries(target: Any) -> list[Any]:
    client = target.client
    if isinstance(client, redis.RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


@dataclass
class AclUser:
    """A server user (on every primary of `owned_redis_target`) and a connector as it."""

    name: str
    connector: RedisConnector
    target: Any

    def allow(self, *rules: str) -> None:
        """Every permission, then `rules` (e.g. ``"-eval"``) on top, on every primary.

        Each call starts again from every permission (``reset`` first), so ``allow()`` gives
        back what an earlier call took away.
        """
        set_user(self.target, self.name, *rules)


def set_user(target: Any, name: str, *rules: str) -> None:
    base = ["reset", "on", "nopass", "~*", "&*", "+@all", *rules]
    for node in _primaries(target):
        node.execute_command("ACL", "SETUSER", name, *base)


@pytest_asyncio.fixture
async def acl_user(owned_redis_target: Any) -> AsyncIterator[Callable[[], AclUser]]:
    """A factory of `AclUser`s, each with every permission until `AclUser.allow` limits it.

    Tests whose failure needs a command refused for real (a script's fallback, a TTL)
    make one; teardown closes their connectors and deletes the users on every primary.
    The users live on servers this session started (`owned_redis_target`): adding ACL
    users is a server-wide change the suite never makes to a server named by `REDIS_URL`.
    Tests taking this fixture take `owned_redis_target`, not `redis_target`, for their
    checks (taking both would run every case on both pairs).
    """
    redis_target = owned_redis_target
    made: list[AclUser] = []

    def make() -> AclUser:
        name = f"ckpt-{uuid.uuid4().hex[:10]}"
        set_user(redis_target, name)
        url = redis_target.url.replace("redis://", f"redis://{name}:x@", 1)
        conn = RedisConnector(settings=redis_target.settings.with_overrides(url=url))
        user = AclUser(name, conn, redis_target)
        made.append(user)
        return user

    try:
        yield make
    finally:
        for user in made:
            await user.connector.aclose()
            for node in _primaries(redis_target):
                node.execute_command("ACL", "DELUSER", user.name)
