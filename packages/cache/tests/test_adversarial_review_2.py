"""Adversarial review 2: the cache as a demanding user meets it.

A worker with ``client_side_cache=True`` whose Redis is down when it starts (cluster mode
"auto", the default): the cache is built and fails open like one without the layer, and the
layer starts once Redis is reachable. The key of a prompt: a raw prompt is never read as
LangChain's dump of messages, and one nested too deep to parse is cached like any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from deepagents_redis.cache import CacheSettings, RedisLLMCache
from deepagents_redis.core import RedisSettings
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.outputs import Generation

pytestmark = pytest.mark.integration

LLM = "model=fake"
ANSWER = [Generation(text="kept")]
# Short breaker: after the proxy passes again, a probe goes out within 0.1 s.
CS = CacheSettings(breaker_failure_threshold=1, breaker_reset_seconds=0.1, warn_interval_seconds=60)


def _settings(url: str, key_prefix: str) -> RedisSettings:
    # cluster="auto" (the default): the mode is found by contacting the server.
    return RedisSettings(
        url=url, key_prefix=key_prefix, socket_timeout=2, socket_connect_timeout=2, retries=0
    )


def _until(step: Callable[[], bool], *, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if step():
            return True
        time.sleep(0.02)
    return False


async def _auntil(step: Callable[[], Awaitable[bool]], *, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await step():
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.mark.fault
def test_a_cache_with_the_layer_starts_while_redis_is_down_and_the_layer_follows(
    fault_proxy: Any,
    redis_url: str,
    key_prefix: str,
    recorder: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = fault_proxy(redis_url)
    proxy.set_mode("reset")
    caplog.set_level(logging.WARNING, logger="deepagents_redis.cache")
    # Raised RedisUnavailableError ("could not auto-detect whether ... is a Redis Cluster").
    cache = RedisLLMCache(
        settings=_settings(proxy.url, key_prefix),
        cache_settings=CS,
        client_side_cache=True,
        namespace="down-at-start",
    )
    try:
        assert cache.client_side_cache is None
        assert any("client-side cache" in r.getMessage() for r in caplog.records)
        assert recorder.total("cache.client_side_cache", outcome="deferred") == 1
        # Fails open while down, as a cache without the layer does.
        assert cache.lookup("p", LLM) is None
        cache.update("p", LLM, ANSWER)

        proxy.set_mode("pass")

        def hit() -> bool:
            if cache.lookup("p", LLM) is None:
                cache.update("p", LLM, ANSWER)
            return cache.client_side_cache is not None

        assert _until(hit)
        near = cache.client_side_cache
        assert near is not None
        assert near.wait_ready(10)
        assert recorder.total("cache.client_side_cache", outcome="started") == 1
        # The layer now serves repeats locally.
        assert _until(
            lambda: (
                cache.lookup("p", LLM) == ANSWER
                and recorder.total("cache.lookup_source", source="local") >= 1
            )
        )
    finally:
        cache.close()
    assert cache.client_side_cache is None or not cache.client_side_cache.ready


@pytest.mark.fault
async def test_async_a_cache_with_the_layer_starts_while_redis_is_down(
    fault_proxy: Any, redis_url: str, key_prefix: str, recorder: Any
) -> None:
    proxy = fault_proxy(redis_url)
    proxy.set_mode("reset")
    cache = RedisLLMCache(
        settings=_settings(proxy.url, key_prefix),
        cache_settings=CS,
        client_side_cache=True,
        namespace="down-at-start-async",
    )
    try:
        assert cache.client_side_cache is None
        assert await cache.alookup("p", LLM) is None
        await cache.aupdate("p", LLM, ANSWER)
        proxy.set_mode("pass")

        async def hit() -> bool:
            # Only the asyncio client reaches the server here: it detects the mode.
            if await cache.alookup("p", LLM) is None:
                await cache.aupdate("p", LLM, ANSWER)
            return cache.client_side_cache is not None

        assert await _auntil(hit)
        near = cache.client_side_cache
        assert near is not None
        assert await asyncio.to_thread(near.wait_ready, 10)

        async def local() -> bool:
            return (
                await cache.alookup("p", LLM) == ANSWER
                and recorder.total("cache.lookup_source", source="local") >= 1
            )

        assert await _auntil(local)
    finally:
        await cache.aclose()


@pytest.mark.fault
def test_a_cache_closed_while_its_layer_waits_never_starts_it(
    fault_proxy: Any, redis_url: str, key_prefix: str
) -> None:
    proxy = fault_proxy(redis_url)
    proxy.set_mode("reset")
    cache = RedisLLMCache(
        settings=_settings(proxy.url, key_prefix),
        cache_settings=CS,
        client_side_cache=True,
        namespace="closed-while-waiting",
    )
    cache.close()
    proxy.set_mode("pass")
    cache._connector.client()  # the mode is known now (what a lookup would have done)
    assert cache._pending_near() is None
    assert cache.client_side_cache is None


@pytest.mark.fault
def test_a_cluster_found_after_a_deferred_start_gets_no_layer(
    fault_proxy: Any,
    redis_cluster: Any,
    key_prefix: str,
    recorder: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The constructor refuses the layer on a Cluster; found only later, it is not started
    # (logged and counted) and lookups go on failing open, never raising.
    proxy = fault_proxy(redis_cluster.url)
    proxy.set_mode("reset")
    cache = RedisLLMCache(
        settings=_settings(proxy.url, key_prefix),
        cache_settings=CS,
        client_side_cache=True,
        namespace="cluster-later",
    )
    try:
        proxy.set_mode("pass")
        caplog.set_level(logging.ERROR, logger="deepagents_redis.cache")

        def refused() -> bool:
            cache.lookup("p", LLM)
            return recorder.total("cache.client_side_cache", outcome="refused") == 1

        assert _until(refused)
        assert cache.client_side_cache is None
        assert any("needs a standalone server" in r.getMessage() for r in caplog.records)
        assert cache.lookup("p", LLM) is None
    finally:
        cache.close()


# -- the key of a prompt (canonical_prompt) -------------------------------------------------

_DEEP = "[" * 100_000 + ' "usage_metadata"'
"""A raw prompt nested deeper than the JSON parser goes (any user text may be one)."""


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_prompt_nested_deeper_than_the_parser_is_cached_like_any_other(
    make_llm_cache: Any, mode: str
) -> None:
    # canonical_prompt's json.loads raised RecursionError, out of lookup and update (with
    # strict off), so the model call failed where InMemoryCache serves the prompt.
    cache = make_llm_cache(ttl=60)
    if mode == "sync":
        assert cache.lookup(_DEEP, LLM) is None
        cache.update(_DEEP, LLM, ANSWER)
        assert cache.lookup(_DEEP, LLM) == ANSWER
    else:
        assert await cache.alookup(_DEEP, LLM) is None
        await cache.aupdate(_DEEP, LLM, ANSWER)
        assert await cache.alookup(_DEEP, LLM) == ANSWER


def _trace(tokens: int) -> str:
    # A raw BaseLLM prompt: a pasted trace, not LangChain's dumps of messages.
    return json.dumps([{"kwargs": {"content": "hi", "usage_metadata": {"total_tokens": tokens}}}])


def test_raw_prompts_that_differ_in_a_usage_metadata_field_are_different_entries(
    make_llm_cache: Any,
) -> None:
    # The two texts shared a key (their usage_metadata values were dropped from it): the
    # second prompt was served the first one's answer.
    cache = make_llm_cache(ttl=60)
    cache.update(_trace(1), LLM, [Generation(text="about 1 token")])
    assert cache.lookup(_trace(2), LLM) is None
    assert cache.redis_keys(_trace(1), LLM) != cache.redis_keys(_trace(2), LLM)


def test_a_completion_model_is_not_served_another_prompts_answer(make_llm_cache: Any) -> None:
    llm = FakeListLLM(responses=["answer one", "answer two"], cache=make_llm_cache(ttl=60))
    assert llm.invoke(_trace(1)) == "answer one"
    assert llm.invoke(_trace(2)) == "answer two"
    assert llm.invoke(_trace(1)) == "answer one"  # a hit


def test_serialised_ai_messages_still_drop_their_usage_from_the_key(make_llm_cache: Any) -> None:
    # What the key's canonical form is for: a replayed turn carries LangChain's total_cost=0.
    cache = make_llm_cache(ttl=60)
    usage = {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6}
    for ai in (AIMessage, AIMessageChunk):
        before = dumps([HumanMessage("q"), ai(content="a", usage_metadata=usage)])
        after = dumps(
            [HumanMessage("q"), ai(content="a", usage_metadata={**usage, "total_cost": 0})]
        )
        assert before != after
        assert cache.redis_keys(before, LLM) == cache.redis_keys(after, LLM)


# -- node cache namespaces that are not UTF-8 text -------------------------------------------

_BROKEN_NS = ("__pregel_ns_writes", "graph.node", "step \ud800 one")
"""A namespace holding a lone surrogate (a node name decoded from a broken escape)."""
_OTHER_NS = ("__pregel_ns_writes", "graph.other", "other")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_namespace_holding_a_lone_surrogate_is_cached_and_trips_no_breaker(
    make_node_cache: Any, recorder: Any, mode: str
) -> None:
    # Its registry member could not be encoded: every set raised UnicodeEncodeError inside
    # the guard, counted as an error and a breaker failure; three opened the breaker and the
    # other nodes' values were misses.
    cache = make_node_cache()
    broken, other = (_BROKEN_NS, "k"), (_OTHER_NS, "k")

    async def run(name: str, *args: Any) -> Any:
        if mode == "sync":
            return getattr(cache, name)(*args)
        return await getattr(cache, "a" + name)(*args)

    await run("set", {other: ({"v": "other"}, None)})
    for i in range(5):
        await run("set", {broken: ({"v": i}, None)})
    assert recorder.total("node_cache.set", outcome="error") == 0
    assert cache.breaker.state.name == "CLOSED"
    assert await run("get", [broken, other]) == {broken: {"v": 4}, other: {"v": "other"}}
    # clear() of every registered namespace reaches it too.
    await run("clear")
    assert await run("get", [broken, other]) == {}


def test_namespace_scopes_stay_as_they_were_and_apart() -> None:
    from deepagents_redis.cache import namespace_scope

    # Keys of every namespace that could be stored before are unchanged.
    assert namespace_scope(("a", "émoji 🎉")) == '["a","émoji 🎉"]'
    # Injective: the escaped form of a surrogate is not the text of a literal escape.
    assert namespace_scope(("\ud800",)) != namespace_scope(("\\ud800",))
    assert namespace_scope(("\ud800",)).isascii()
