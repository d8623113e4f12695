"""Adversarial review 2: the cache as a demanding user meets it.

A worker with ``client_side_cache=True`` whose Redis is down when it starts (cluster mode
"auto", the default): the cache is built and fails open like one without the layer, and the
layer starts once Redis is reachable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from deepagents_redis.cache import CacheSettings, RedisLLMCache
from deepagents_redis.core import RedisSettings
from langchain_core.outputs import Generation

pytestmark = [pytest.mark.integration, pytest.mark.fault]

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
