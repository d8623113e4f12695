from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from deepagents_redis.cache import RedisLLMCache, RedisNodeCache
from deepagents_redis.core import RecordingInstrumentation, set_instrumentation


@pytest.fixture
def recorder() -> Iterator[RecordingInstrumentation]:
    rec = RecordingInstrumentation()
    previous = set_instrumentation(rec)
    try:
        yield rec
    finally:
        set_instrumentation(previous)


@pytest.fixture
def make_llm_cache(redis_target: Any) -> Iterator[Callable[..., RedisLLMCache]]:
    """Sync caches on the target (standalone or cluster); closed after the test."""
    made: list[RedisLLMCache] = []

    def factory(**kwargs: Any) -> RedisLLMCache:
        kwargs.setdefault("settings", redis_target.settings)
        cache = RedisLLMCache(**kwargs)
        made.append(cache)
        return cache

    yield factory
    for cache in made:
        cache.close()


@pytest_asyncio.fixture
async def make_allm_cache(redis_target: Any) -> AsyncIterator[Callable[..., RedisLLMCache]]:
    """Caches for async tests (their asyncio clients live in the test's loop)."""
    made: list[RedisLLMCache] = []

    def factory(**kwargs: Any) -> RedisLLMCache:
        kwargs.setdefault("settings", redis_target.settings)
        cache = RedisLLMCache(**kwargs)
        made.append(cache)
        return cache

    yield factory
    for cache in made:
        await cache.aclose()


@pytest_asyncio.fixture
async def make_node_cache(redis_target: Any) -> AsyncIterator[Callable[..., RedisNodeCache[Any]]]:
    made: list[RedisNodeCache[Any]] = []

    def factory(**kwargs: Any) -> RedisNodeCache[Any]:
        kwargs.setdefault("settings", redis_target.settings)
        cache: RedisNodeCache[Any] = RedisNodeCache(**kwargs)
        made.append(cache)
        return cache

    yield factory
    for cache in made:
        await cache.aclose()
