from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from deepagents_redis.cache import CacheSettings, RedisLLMCache, RedisNodeCache
from deepagents_redis.core import RecordingInstrumentation, set_instrumentation
from deepagents_redis.testing import Closer, RedisTarget

# What the factories' caches get unless a test passes its own cache_settings: the tests using
# them check what the caches store and serve, not deadlines (test_faults.py and core's
# deadline tests do). On a loaded machine the first Cluster connection outran the default
# 1 s connect deadline, a write failed open as designed and a test found nothing stored.
PATIENT = CacheSettings(deadline_seconds=5.0, connect_deadline_seconds=10.0)


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
    """Caches on the target (standalone or cluster, patient deadlines), closed after the test."""
    return closer.factory(RedisLLMCache, settings=redis_target.settings, cache_settings=PATIENT)


@pytest.fixture
def make_node_cache(
    redis_target: RedisTarget, closer: Closer
) -> Callable[..., RedisNodeCache[Any]]:
    """Node caches on the target (patient deadlines), closed after the test (in its loop)."""
    return closer.factory(RedisNodeCache, settings=redis_target.settings, cache_settings=PATIENT)
