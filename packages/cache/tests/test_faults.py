"""Fail-open, the breaker and strict mode, through a fault-injecting proxy."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from deepagents_redis.cache import RedisLLMCache, RedisNodeCache
from deepagents_redis.core import (
    BreakerOpenError,
    BreakerState,
    CircuitBreaker,
    RedisSettings,
    RedisUnavailableError,
)
from langchain_core.outputs import Generation

pytestmark = [pytest.mark.integration, pytest.mark.fault]

LLM = "model=fake"


@pytest.fixture
def proxy(fault_proxy: Any, redis_url: str) -> Any:
    return fault_proxy(redis_url)


@pytest.fixture
def fast_settings(proxy: Any, key_prefix: str) -> RedisSettings:
    # One attempt, short timeouts: the breaker is what keeps later calls cheap.
    return RedisSettings(
        url=proxy.url,
        key_prefix=key_prefix,
        socket_timeout=0.2,
        socket_connect_timeout=0.2,
        retries=0,
        cluster="off",
    )


def make_cache(settings: RedisSettings, **kwargs: Any) -> RedisLLMCache:
    from deepagents_redis.cache import CacheSettings

    cs = CacheSettings(
        breaker_failure_threshold=3, breaker_reset_seconds=0.3, warn_interval_seconds=60
    )
    return RedisLLMCache(settings=settings, cache_settings=cs, ttl=60, **kwargs)


def test_blackhole_misses_then_breaker_opens_then_hits_resume(
    proxy: Any, fast_settings: RedisSettings, recorder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache(fast_settings)
    try:
        cache.update("p", LLM, [Generation(text="kept")])
        assert cache.lookup("p", LLM) == [Generation(text="kept")]

        proxy.set_mode("blackhole")
        for _ in range(3):  # each costs at most one socket timeout (0.2 s)
            assert cache.lookup("p", LLM) is None
        assert cache.breaker.state is BreakerState.OPEN
        assert recorder.total("cache.lookup", outcome="error") == 3
        # Open breaker: no I/O at all, just a counted miss.
        for _ in range(100):
            assert cache.lookup("p", LLM) is None
        assert recorder.total("cache.lookup", outcome="breaker_open") >= 100
        # One warning for the whole outage (rate-limited), not one per call.
        warnings = [r for r in caplog.records if "serving a miss" in r.getMessage()]
        assert len(warnings) == 1

        proxy.set_mode("pass")
        got = None
        for _ in range(200):  # bounded: the breaker half-opens after 0.3 s
            got = cache.lookup("p", LLM)
            if got is not None:
                break
            time.sleep(0.02)
        assert got == [Generation(text="kept")]
        assert cache.breaker.state is BreakerState.CLOSED
    finally:
        cache.close()


async def test_async_blackhole_fails_open(
    proxy: Any, fast_settings: RedisSettings, recorder: Any
) -> None:
    cache = make_cache(fast_settings)
    try:
        await cache.aupdate("p", LLM, [Generation(text="kept")])
        proxy.set_mode("blackhole")
        for _ in range(5):
            assert await cache.alookup("p", LLM) is None
        await cache.aupdate("p", LLM, [Generation(text="lost")])  # no exception
        assert cache.breaker.state is BreakerState.OPEN
        assert recorder.total("cache.lookup", outcome="breaker_open") >= 2
    finally:
        await cache.aclose()


def test_reset_connections_fail_open(proxy: Any, fast_settings: RedisSettings) -> None:
    cache = make_cache(fast_settings)
    try:
        proxy.set_mode("reset")
        assert cache.lookup("p", LLM) is None
        cache.update("p", LLM, [Generation(text="x")])
    finally:
        cache.close()


def test_strict_raises_unavailable(proxy: Any, fast_settings: RedisSettings) -> None:
    cache = make_cache(fast_settings, strict=True)
    try:
        proxy.set_mode("blackhole")
        with pytest.raises(RedisUnavailableError):
            cache.lookup("p", LLM)
        with pytest.raises(RedisUnavailableError):
            cache.update("p", LLM, [Generation(text="x")])
        for _ in range(3):
            with pytest.raises(RedisUnavailableError):
                cache.lookup("p", LLM)
        assert cache.breaker.state is BreakerState.OPEN
        with pytest.raises(BreakerOpenError):
            cache.lookup("p", LLM)
    finally:
        cache.close()


def test_unreachable_server_at_construction_fails_open(key_prefix: str) -> None:
    # Nothing listens on port 1; "auto" cluster detection fails inside the guard.
    settings = RedisSettings(
        url="redis://127.0.0.1:1/0", key_prefix=key_prefix, socket_connect_timeout=0.2, retries=0
    )
    cache = make_cache(settings)
    try:
        assert cache.lookup("p", LLM) is None
        cache.update("p", LLM, [Generation(text="x")])
    finally:
        cache.close()


def test_clear_never_fails_silently(proxy: Any, fast_settings: RedisSettings) -> None:
    cache = make_cache(fast_settings)
    try:
        proxy.set_mode("blackhole")
        with pytest.raises(RedisUnavailableError):
            cache.clear()
    finally:
        cache.close()


def test_node_cache_blackhole_fails_open(proxy: Any, fast_settings: RedisSettings) -> None:
    from deepagents_redis.cache import CacheSettings

    cache: RedisNodeCache[Any] = RedisNodeCache(
        settings=fast_settings, cache_settings=CacheSettings(breaker_failure_threshold=2)
    )
    try:
        cache.set({(("ns",), "k"): ("v", 60)})
        assert cache.get([(("ns",), "k")]) == {(("ns",), "k"): "v"}
        proxy.set_mode("blackhole")
        assert cache.get([(("ns",), "k")]) == {}
        cache.set({(("ns",), "k2"): ("v", 60)})
        assert cache.breaker.state is BreakerState.OPEN
        assert cache.get([(("ns",), "k")]) == {}
    finally:
        cache.close()


class BrokenClient:
    """A client whose library code is buggy: every command raises AttributeError."""

    def mget(self, *args: Any, **kwargs: Any) -> Any:
        raise AttributeError("'NoneType' object has no attribute 'writelines'")

    def evalsha(self, *args: Any, **kwargs: Any) -> Any:
        raise AttributeError("'NoneType' object has no attribute 'writelines'")


def test_client_library_bug_fails_open(recorder: Any, key_prefix: str) -> None:
    settings = RedisSettings(url="redis://127.0.0.1:1/0", key_prefix=key_prefix)
    cache = make_cache(settings, client=BrokenClient())
    assert cache.lookup("p", LLM) is None
    cache.update("p", LLM, [Generation(text="x")])
    assert recorder.total("cache.lookup", outcome="error") == 1
    assert recorder.total("cache.update", outcome="error") == 1
    strict = make_cache(settings, client=BrokenClient(), strict=True)
    with pytest.raises(AttributeError):
        strict.lookup("p", LLM)


class _ManualClock:
    """A breaker clock the test moves by hand (no waiting on wall-clock time)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_cancelled_half_open_probe_does_not_wedge_the_breaker(
    proxy: Any, fast_settings: RedisSettings, recorder: Any
) -> None:
    # The half-open breaker's one probe is a lookup cancelled mid-call (an agent run cancelled
    # while Redis hangs). It reported neither success nor failure, so its probe slot stayed
    # taken and every later call was refused as breaker_open, for the life of the process.
    from deepagents_redis.cache import CacheSettings

    clock = _ManualClock()
    cs = CacheSettings(deadline_seconds=60, connect_deadline_seconds=60)
    cache = RedisLLMCache(
        settings=fast_settings.with_overrides(socket_timeout=60.0),
        cache_settings=cs,
        breaker=CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock),
        ttl=60,
    )
    try:
        await cache.aupdate("p", LLM, [Generation(text="kept")])
        cache.breaker.record_failure()
        clock.now += 2.0
        assert cache.breaker.state is BreakerState.HALF_OPEN
        proxy.set_mode("blackhole")
        opened = len(recorder.spans)
        probe = asyncio.create_task(cache.alookup("p", LLM))
        for _ in range(10_000):  # bounded: until the probe's request is in flight
            if len(recorder.spans) > opened:
                break
            await asyncio.sleep(0.001)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        proxy.set_mode("pass")
        clock.now += 2.0  # past reset_timeout: the next call is a probe again
        assert await cache.alookup("p", LLM) == [Generation(text="kept")]
        assert cache.breaker.state is BreakerState.CLOSED
    finally:
        proxy.set_mode("pass")
        await cache.aclose()


class _Interrupted(BaseException):
    """What gevent's Timeout or a KeyboardInterrupt is to the cache: not an Exception."""


class _InterruptFirstScript:
    """A real client whose first script call is interrupted before it is sent."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.armed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def evalsha(self, *args: Any, **kwargs: Any) -> Any:
        if self.armed:
            self.armed = False
            raise _Interrupted
        return self._real.evalsha(*args, **kwargs)


def test_an_interrupted_half_open_probe_does_not_wedge_the_breaker(
    redis_settings: RedisSettings, closer: Any
) -> None:
    from deepagents_redis.core import RedisConnector

    real = closer(RedisConnector(settings=redis_settings))
    clock = _ManualClock()
    client = _InterruptFirstScript(real.client())
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    cache = closer(make_cache(redis_settings, client=client, breaker=breaker))
    client.armed = False
    cache.update("p", LLM, [Generation(text="kept")])
    breaker.record_failure()
    clock.now += 2.0
    assert breaker.state is BreakerState.HALF_OPEN
    client.armed = True
    with pytest.raises(_Interrupted):
        cache.lookup("p", LLM)
    clock.now += 2.0
    assert cache.lookup("p", LLM) == [Generation(text="kept")]
    assert cache.breaker.state is BreakerState.CLOSED
