"""langchain-tests' standard cache suites, on a standalone server and on the cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from deepagents_redis.cache import CacheSettings, RedisLLMCache
from langchain_core.caches import BaseCache
from langchain_tests.integration_tests.cache import AsyncCacheTestSuite, SyncCacheTestSuite

pytestmark = pytest.mark.integration

# The suites check what the cache stores and serves, not deadlines (those have their own
# tests): on a loaded machine the first Cluster connection outran the default 1 s connect
# deadline, an update failed open as designed and test_update_cache[cluster] found nothing.
PATIENT = CacheSettings(deadline_seconds=5.0, connect_deadline_seconds=10.0)


class TestRedisLLMCacheSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, redis_target: Any) -> Iterator[BaseCache]:
        cache = RedisLLMCache(settings=redis_target.settings, cache_settings=PATIENT, ttl=60)
        try:
            yield cache
        finally:
            cache.clear()
            cache.close()


class TestRedisLLMCacheAsync(AsyncCacheTestSuite):
    @pytest_asyncio.fixture
    async def cache(self, redis_target: Any) -> AsyncIterator[BaseCache]:
        cache = RedisLLMCache(settings=redis_target.settings, cache_settings=PATIENT, ttl=60)
        try:
            yield cache
        finally:
            await cache.aclear()
            await cache.aclose()


class TestRedisLLMCacheSyncNoSingleFlight(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, redis_target: Any) -> Iterator[BaseCache]:
        cache = RedisLLMCache(
            settings=redis_target.settings, cache_settings=PATIENT, single_flight=False, ttl=None
        )
        try:
            yield cache
        finally:
            cache.clear()
            cache.close()
