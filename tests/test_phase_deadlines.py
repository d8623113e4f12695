"""Every phase's public calls end within their deadline when Redis stalls (issue 8 defect 1).

Measured before the fix, default settings, server blackholed: fs.write 62-75 s, fs.edit 75 s,
todos.add 47-56 s, fs.ls/read 18.5 s, todos.get 10.3 s, first cache lookups 6-10 s, the CLI's
health 19.7 s. Each phase is pointed at a blackholing proxy with its default settings except
a short deadline (the defaults are 30 s for fs and 5 s for todos, so the suite stays fast);
the cache keeps its default (250 ms). Bounds are generous (a loaded CI machine), far below
what the defects measured; the number of connections each call opened is checked too.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest
from deepagents_redis.cache import RedisLLMCache
from deepagents_redis.core import (
    DeepAgentsRedisError,
    OutcomeUnknownError,
    RedisSettings,
    RedisUnavailableError,
)
from deepagents_redis.fs import RedisBackend
from deepagents_redis.testing import FaultProxy
from deepagents_redis.todos import RedisTodoRepository

DEADLINE = 1.0
GENEROUS = DEADLINE + 4.0


@pytest.fixture
def stalled(redis_url: str, fault_proxy: Callable[[str], FaultProxy]) -> FaultProxy:
    proxy = fault_proxy(redis_url)
    proxy.set_mode("blackhole")
    return proxy


def _settings(url: str) -> RedisSettings:
    return RedisSettings(url=url, deadline_seconds=DEADLINE, key_prefix="dl")


def _fails_in_time(call: Callable[[], object]) -> BaseException:
    start = time.monotonic()
    with pytest.raises(DeepAgentsRedisError) as info:
        call()
    assert time.monotonic() - start < GENEROUS
    return info.value


async def _afails_in_time(call: Callable[[], Awaitable[object]]) -> BaseException:
    start = time.monotonic()
    with pytest.raises(DeepAgentsRedisError) as info:
        await call()
    assert time.monotonic() - start < GENEROUS
    return info.value


def test_todos_calls_end_at_the_deadline(stalled: FaultProxy) -> None:
    repo = RedisTodoRepository(settings=_settings(stalled.url))
    try:
        # Never reached the server (the handshake stalled): nothing applied, not "unknown".
        err = _fails_in_time(lambda: repo.add("plan", "write the report"))
        assert type(err) is RedisUnavailableError
        _fails_in_time(lambda: repo.get("plan"))
    finally:
        repo.close()
    assert stalled.accepted_count <= 6


async def test_todos_async_calls_end_at_the_deadline(stalled: FaultProxy) -> None:
    repo = RedisTodoRepository(settings=_settings(stalled.url))
    try:
        err = await _afails_in_time(lambda: repo.aadd("plan", "write the report"))
        assert type(err) is RedisUnavailableError
        await _afails_in_time(lambda: repo.aget("plan"))
    finally:
        await repo.aclose()


def test_todos_write_sent_then_stalled_is_unknown_in_time(
    redis_url: str, fault_proxy: Callable[[str], FaultProxy]
) -> None:
    proxy = fault_proxy(redis_url)
    repo = RedisTodoRepository(settings=_settings(proxy.url))
    try:
        repo.add("plan", "first")  # connected, eviction policy checked: the next script is sent
        proxy.set_mode("blackhole")
        err = _fails_in_time(lambda: repo.add("plan", "write the report"))
        assert type(err) is OutcomeUnknownError
    finally:
        repo.close()


def test_fs_calls_end_at_the_deadline(stalled: FaultProxy) -> None:
    backend = RedisBackend(settings=_settings(stalled.url), deadline_seconds=DEADLINE)
    try:
        err = _fails_in_time(lambda: backend.write("/a.txt", "hello"))
        assert type(err) is RedisUnavailableError
        _fails_in_time(lambda: backend.edit("/a.txt", "hello", "bye"))
        _fails_in_time(lambda: backend.ls("/"))
        _fails_in_time(lambda: backend.read("/a.txt"))
    finally:
        backend.close()


async def test_fs_async_calls_end_at_the_deadline(stalled: FaultProxy) -> None:
    backend = RedisBackend(settings=_settings(stalled.url), deadline_seconds=DEADLINE)
    try:
        await _afails_in_time(lambda: backend.awrite("/a.txt", "hello"))
        await _afails_in_time(lambda: backend.aedit("/a.txt", "hello", "bye"))
        await _afails_in_time(lambda: backend.als("/"))
    finally:
        await backend.aclose()


def test_cache_lookups_miss_fast_and_open_the_breaker(stalled: FaultProxy) -> None:
    # Default cache settings: 1 s for the first (connecting) call, then 250 ms; breaker
    # after 3 failures.
    cache = RedisLLMCache(url=stalled.url)
    try:
        start = time.monotonic()
        for _ in range(3):
            assert cache.lookup("prompt", "llm") is None
        # 3 x 250 ms (cluster auto-detection included), not 3 x 6.2 s.
        assert time.monotonic() - start < 1.0 + 2 * 0.25 + 3.0
        assert cache.breaker.state.value == "open"
        start = time.monotonic()
        for _ in range(100):
            assert cache.lookup("prompt", "llm") is None
        assert time.monotonic() - start < 1.0  # refused by the breaker, no I/O
    finally:
        cache.close()


async def test_cache_async_lookups_miss_fast(stalled: FaultProxy) -> None:
    cache = RedisLLMCache(url=stalled.url)
    try:
        start = time.monotonic()
        for _ in range(3):
            assert await cache.alookup("prompt", "llm") is None
        assert time.monotonic() - start < 1.0 + 2 * 0.25 + 3.0
        assert cache.breaker.state.value == "open"
    finally:
        await cache.aclose()


def test_cli_health_ends_at_the_deadline(
    stalled: FaultProxy, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from deepagents_redis.cli import main

    monkeypatch.setenv("DEEPAGENTS_REDIS_DEADLINE_SECONDS", str(DEADLINE))
    start = time.monotonic()
    status = main(["health", "--url", stalled.url])
    assert time.monotonic() - start < GENEROUS
    assert status == 2  # unreachable
