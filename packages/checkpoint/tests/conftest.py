from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
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
