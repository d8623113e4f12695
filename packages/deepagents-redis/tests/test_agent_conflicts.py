"""Our phase flags next to the caller's own choices: the caller's choice is kept, and said."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from deepagents_redis.agent import close_redis, create_deep_agent
from deepagents_redis.cli._demo_cache import demo_model
from langchain_core.caches import InMemoryCache
from langchain_core.messages import HumanMessage

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NAMESPACE", "NODE_CACHE_ENABLED", "TTL_SECONDS"):
        monkeypatch.delenv(f"DEEPAGENTS_REDIS_CACHE_{name}", raising=False)


def _keys(redis_client: Any, prefix: str) -> list[bytes]:
    return sorted(redis_client.scan_iter(match=f"{prefix}:*", count=1000))


def test_a_model_that_must_not_be_cached_stays_uncached(
    redis_settings: Any, redis_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # cache=False on a model is its owner saying "never cache this one". Before: the cache
    # phase (here from the environment of a deployment) replaced it with the Redis cache,
    # silently: the second run was served from Redis and the model saw one run only.
    model = demo_model()
    model.cache = False
    question = {"messages": [HumanMessage(content="plan it")]}
    with caplog.at_level(logging.WARNING, logger="deepagents_redis.agent"):
        agent = create_deep_agent(model, redis_settings=redis_settings, redis_cache=True)
    try:
        agent.invoke(question)
        first = list(model.calls)
        agent.invoke(question)
        assert model.calls == first * 2  # every call reached the model
        assert _keys(redis_client, redis_settings.key_prefix) == []  # nothing cached
    finally:
        close_redis(agent)
    assert "cache=False" in caplog.text  # said, not silent


def test_a_model_with_its_own_cache_keeps_it(redis_settings: Any, redis_client: Any) -> None:
    own = InMemoryCache()
    model = demo_model()
    model.cache = own
    question = {"messages": [HumanMessage(content="plan it")]}
    agent = create_deep_agent(model, redis_settings=redis_settings, redis_cache=True)
    try:
        agent.invoke(question)
        agent.invoke(question)
    finally:
        close_redis(agent)
    assert own._cache  # the caller's cache got the entries
    assert _keys(redis_client, redis_settings.key_prefix) == []
