from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from deepagents_redis.cache import RedisLLMCache, RedisNodeCache
from deepagents_redis.core import RecordingInstrumentation, set_instrumentation
from deepagents_redis.testing import Closer, RedisTarget


@pytest.fixture
def recorder() -> Iterator[RecordingInstrumentation]:
    rec = RecordingInstrumentation()
    previous = set_instrumentation(rec)
    try:
        yield rec
    finally:
        set_instrumentation(previous)


@pytest.fixture
def make_llm_cache(redis_target: RedisTarget, closer: Closer) -> Callable[..., RedisLLMCache]:
    """Caches on the target (standalone or cluster), closed after the test (in its loop)."""
    return closer.factory(RedisLLMCache, settings=redis_target.settings)


@pytest.fixture
def make_node_cache(
    redis_target: RedisTarget, closer: Closer
) -> Callable[..., RedisNodeCache[Any]]:
    """Node caches on the target, closed after the test (in its loop)."""
    return closer.factory(RedisNodeCache, settings=redis_target.settings)
