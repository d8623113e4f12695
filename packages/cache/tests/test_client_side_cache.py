"""Client-side caching: hot entries served from memory, invalidated by Redis tracking."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from deepagents_redis.cache import RedisLLMCache
from deepagents_redis.core import ConfigurationError, RedisSettings
from langchain_core.outputs import Generation

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("_sf_worker.py")
PROMPT, LLM = "the same question", "model=fake"


def eventually(fn: Any, expected: Any, *, attempts: int = 250) -> Any:
    got = None
    for _ in range(attempts):  # bounded: 250 * 20 ms = 5 s
        got = fn()
        if got == expected:
            return got
        time.sleep(0.02)
    return got


@pytest.fixture
def near(redis_settings: RedisSettings) -> Any:
    cache = RedisLLMCache(settings=redis_settings, namespace="csc", client_side_cache=True)
    assert cache.client_side_cache is not None
    assert cache.client_side_cache.wait_ready(10)
    yield cache
    cache.close()


@pytest.fixture
def writer(redis_settings: RedisSettings) -> Any:
    cache = RedisLLMCache(settings=redis_settings, namespace="csc")
    yield cache
    cache.close()


def test_hot_entry_is_served_locally(near: Any, writer: Any, recorder: Any) -> None:
    writer.update(PROMPT, LLM, [Generation(text="v1")])
    assert near.lookup(PROMPT, LLM) == [Generation(text="v1")]  # from Redis, now cached
    # The invalidation caused by the writer's own SET reaches the tracking connection
    # asynchronously and may drop the first local copy: look up until one is served locally.
    assert eventually(
        lambda: (
            near.lookup(PROMPT, LLM) == [Generation(text="v1")]
            and recorder.total("cache.lookup_source", source="local") >= 1
        ),
        True,
    )
    # Callers get copies: mutating one does not change what the next caller sees.
    got = near.lookup(PROMPT, LLM)
    got[0].text = "mutated"
    assert near.lookup(PROMPT, LLM) == [Generation(text="v1")]


def test_update_by_another_client_is_seen(near: Any, writer: Any) -> None:
    writer.update(PROMPT, LLM, [Generation(text="v1")])
    assert near.lookup(PROMPT, LLM) == [Generation(text="v1")]
    writer.update(PROMPT, LLM, [Generation(text="v2")])
    assert eventually(lambda: near.lookup(PROMPT, LLM), [Generation(text="v2")]) == [
        Generation(text="v2")
    ]


@pytest.mark.timeout(300)
def test_update_by_another_process_is_seen(near: Any, writer: Any, redis_settings: Any) -> None:
    writer.update(PROMPT, LLM, [Generation(text="v1")])
    assert near.lookup(PROMPT, LLM) == [Generation(text="v1")]
    env = dict(os.environ)
    env["DEEPAGENTS_REDIS_URL"] = str(redis_settings.url)
    env["DEEPAGENTS_REDIS_KEY_PREFIX"] = redis_settings.key_prefix
    env["DEEPAGENTS_REDIS_CLUSTER"] = "off"
    done = subprocess.run(
        [sys.executable, str(WORKER), "write", "csc", "from another process"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    expected = [Generation(text="from another process")]
    assert eventually(lambda: near.lookup(PROMPT, LLM), expected) == expected


def test_clear_by_another_client_is_seen(near: Any, writer: Any) -> None:
    writer.update(PROMPT, LLM, [Generation(text="v1")])
    assert near.lookup(PROMPT, LLM) == [Generation(text="v1")]
    writer.clear()
    assert eventually(lambda: near.lookup(PROMPT, LLM), None) is None


def test_lost_tracking_connection_bypasses_the_layer(
    fault_proxy: Any, redis_url: str, key_prefix: str
) -> None:
    proxy = fault_proxy(redis_url)
    settings = RedisSettings(
        url=proxy.url, key_prefix=key_prefix, socket_timeout=0.3, retries=0, cluster="off"
    )
    cache = RedisLLMCache(settings=settings, namespace="csc", client_side_cache=True)
    try:
        near = cache.client_side_cache
        assert near is not None
        assert near.wait_ready(10)
        cache.update(PROMPT, LLM, [Generation(text="v1")])
        assert eventually(lambda: cache.lookup(PROMPT, LLM), [Generation(text="v1")])
        # The invalidation caused by our own update may arrive after the first lookup and
        # drop what it stored, so look up again while polling (not just len()).
        assert eventually(lambda: (cache.lookup(PROMPT, LLM), len(near))[1], 1) == 1
        proxy.set_mode("blackhole")
        # The heartbeat notices the silent network; the layer empties and is bypassed.
        assert eventually(lambda: near.ready, False, attempts=500) is False
        assert len(near) == 0
    finally:
        cache.close()


def test_cluster_is_refused(cluster_settings: RedisSettings) -> None:
    with pytest.raises(ConfigurationError):
        RedisLLMCache(settings=cluster_settings, client_side_cache=True)


async def test_async_hit_fills_the_local_layer(
    redis_settings: RedisSettings, writer: Any, recorder: Any
) -> None:
    # Before: alookup never filled the layer, so an async agent never got a local hit.
    cache = RedisLLMCache(settings=redis_settings, namespace="csc", client_side_cache=True)
    assert cache.client_side_cache is not None
    assert cache.client_side_cache.wait_ready(10)
    writer.update(PROMPT, LLM, [Generation(text="v1")])
    assert await cache.alookup(PROMPT, LLM) == [Generation(text="v1")]
    for _ in range(250):  # bounded: the writer's own invalidation may drop the first copy
        got = await cache.alookup(PROMPT, LLM)
        assert got == [Generation(text="v1")]
        if recorder.total("cache.lookup_source", source="local") >= 1:
            break
        await asyncio.sleep(0.02)
    assert recorder.total("cache.lookup_source", source="local") >= 1
    await cache.aclose()


def _reap(pid: int) -> int:
    """The exit status of child `pid`, killing it if it has not ended within ~30 s."""
    for _ in range(3000):  # bounded: 3000 * 10 ms
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("forked child did not finish")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_serve_what_was_cleared_after_the_fork(
    near: Any, writer: Any
) -> None:
    # gunicorn --preload or a multiprocessing fork: the child inherits the parent's entries
    # but not the thread that invalidates them, and `ready` still read set, so the child
    # served its copy however long after another client cleared the namespace.
    writer.update(PROMPT, LLM, [Generation(text="v1")])
    assert eventually(
        lambda: near.lookup(PROMPT, LLM) is not None and len(near.client_side_cache) == 1, True
    )
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: wait for the parent's clear, then look up once
        code = 1
        try:
            os.close(go_w)
            os.read(go_r, 1)
            got = near.lookup(PROMPT, LLM)
            ready = near.client_side_cache.wait_ready(10)
            os.write(out_w, f"{got is None} {ready}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(go_r)
    os.close(out_w)
    writer.clear()
    # The parent's own layer has seen the clear, so it reached Redis before the child looks.
    assert eventually(lambda: len(near.client_side_cache), 0) == 0
    os.write(go_w, b"x")
    os.close(go_w)
    reply = os.read(out_r, 64).decode()
    os.close(out_r)
    assert _reap(pid) == 0
    # A miss (the entry is gone) and the child's own tracking connection up.
    assert reply == "True True"


def test_the_layer_comes_up_with_a_plain_redis_py_client(
    redis_settings: RedisSettings, writer: Any
) -> None:
    # A `redis.Redis()` of the caller's carries redis-py 8's maintenance-notification
    # settings, which redis-py refuses on the RESP2 tracking connection: the layer never came
    # up (bypassed for good, a warning every second).
    import redis

    assert redis_settings.url is not None
    plain = redis.Redis.from_url(redis_settings.url)
    cache = RedisLLMCache(
        settings=redis_settings, client=plain, namespace="csc", client_side_cache=True
    )
    try:
        assert cache.client_side_cache is not None
        assert cache.client_side_cache.wait_ready(10)
        writer.update(PROMPT, LLM, [Generation(text="v1")])
        assert eventually(
            lambda: cache.lookup(PROMPT, LLM) is not None and len(cache.client_side_cache), 1
        )
        writer.update(PROMPT, LLM, [Generation(text="v2")])
        assert eventually(lambda: cache.lookup(PROMPT, LLM), [Generation(text="v2")]) == [
            Generation(text="v2")
        ]
    finally:
        cache.close()
        plain.close()


async def test_aclose_stops_the_layer_without_blocking_the_event_loop(
    redis_settings: RedisSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stopping the layer joins its thread (it wakes up to 200 ms later, longer while it
    # connects); aclose() did that on the event loop, which stood still meanwhile.
    import threading

    from deepagents_redis.cache import NearCache

    entered, release, finished = threading.Event(), threading.Event(), threading.Event()
    original = NearCache.close

    def held_close(self: NearCache) -> None:
        entered.set()
        release.wait(10)  # bounded: the blocking version holds the loop this long
        original(self)
        finished.set()

    cache = RedisLLMCache(settings=redis_settings, namespace="csc", client_side_cache=True)
    monkeypatch.setattr(NearCache, "close", held_close)
    closing = asyncio.create_task(cache.aclose())
    for _ in range(5000):  # bounded: until the layer's close has started
        if entered.is_set():
            break
        await asyncio.sleep(0.001)
    # This coroutine runs while the close is still held: the loop is not blocked by it.
    still_closing = not finished.is_set()
    release.set()
    await closing
    assert entered.is_set()
    assert still_closing
    assert finished.is_set()


def test_an_outage_of_the_tracking_connection_is_one_warning(
    fault_proxy: Any, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The tracking thread retries every reconnect_delay (1 s by default) and warned on each
    # attempt: a server down for an hour logged 3,600 lines per cache object.
    import logging

    import redis
    from deepagents_redis.cache import NearCache

    proxy = fault_proxy(redis_url)
    proxy.set_mode("reset")
    client = redis.Redis.from_url(proxy.url)
    caplog.set_level(logging.WARNING, logger="deepagents_redis.cache")
    near = NearCache(
        client, prefixes=["csc-outage:"], flush_keys=set(), max_entries=10, reconnect_delay=0.01
    )
    try:
        for _ in range(3000):  # bounded: until several connection attempts were refused
            if proxy.accepted_count >= 5:
                break
            time.sleep(0.01)
        assert proxy.accepted_count >= 5
        proxy.set_mode("pass")
        assert near.wait_ready(10)
        lines = [r.getMessage() for r in caplog.records if "tracking connection" in r.getMessage()]
        assert len([m for m in lines if "failed" in m]) == 1
        assert len([m for m in lines if "is back" in m]) == 1
    finally:
        near.close()
        client.close()


def test_refresh_on_hit_with_the_layer_is_refused(redis_settings: Any, monkeypatch: Any) -> None:
    # The expiry push is a write inside the read script, and Redis invalidates a tracked key
    # on every write: each hit evicted the copy it had just stored, so every lookup went to
    # Redis (50 lookups, 50 EVALSHA, measured) and the layer served nothing, silently.
    from deepagents_redis.cache import CacheSettings

    with pytest.raises(ConfigurationError, match="client_side_cache and refresh_on_hit"):
        RedisLLMCache(settings=redis_settings, client_side_cache=True, refresh_on_hit=True)
    monkeypatch.setenv("DEEPAGENTS_REDIS_CACHE_CLIENT_SIDE_CACHE", "true")
    monkeypatch.setenv("DEEPAGENTS_REDIS_CACHE_REFRESH_ON_HIT", "true")
    with pytest.raises(ConfigurationError, match="client_side_cache and refresh_on_hit"):
        CacheSettings()


@pytest.mark.parametrize(
    "override",
    [{"lease_ttl": -5}, {"wait_timeout": -1}, {"ttl": -3}, {"ttl": float("nan")}],
)
def test_keyword_overrides_are_validated_like_the_environment(
    redis_settings: Any, override: dict[str, Any]
) -> None:
    # Keyword overrides were stored as given (pydantic's model_copy does not validate): a
    # lease_ttl of -5 or a ttl of -3 reached Redis as a negative PX, failing every miss or
    # write (failing open), while the same values from the environment were refused.
    with pytest.raises(ConfigurationError):
        RedisLLMCache(settings=redis_settings, **override)


@pytest.mark.parametrize("default_ttl", [0, -1, float("inf"), float("nan"), "60", True])
def test_a_node_cache_default_ttl_must_be_positive_seconds(
    redis_settings: Any, default_ttl: Any
) -> None:
    # 0 or less kept entries 1 ms (nothing cached, silently); inf and NaN failed every set
    from deepagents_redis.cache import RedisNodeCache

    with pytest.raises(ConfigurationError, match="default_ttl"):
        RedisNodeCache(settings=redis_settings, default_ttl=default_ttl)


def test_an_entry_past_its_ttl_is_not_served_locally(
    redis_server_factory: Any, key_prefix: str, recorder: Any
) -> None:
    # Redis reports an expired key to tracking clients only when it deletes it: on access,
    # or when its active expiry cycle samples it, which in a large keyspace can be long
    # after the TTL (here switched off, so only access deletes). The layer, which never
    # asks Redis again, served an entry past its TTL until then.
    import redis

    server = redis_server_factory(debug=True)
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")
    settings = RedisSettings(url=server.url, key_prefix=key_prefix, cluster="off")
    ttl = 3.0
    cache = RedisLLMCache(settings=settings, namespace="csc-ttl", client_side_cache=True, ttl=ttl)
    try:
        assert cache.client_side_cache is not None
        assert cache.client_side_cache.wait_ready(10)
        cache.update(PROMPT, LLM, [Generation(text="v1")])
        # A key outside the layer's prefix, expiring just after the entry: once the server
        # says it is gone (asked of it, not of a clock here), the entry has expired too.
        admin.set("sentinel", b"1", px=int(ttl * 1000) + 50)
        served_locally = eventually(
            lambda: (
                cache.lookup(PROMPT, LLM) == [Generation(text="v1")]
                and recorder.total("cache.lookup_source", source="local") >= 1
            ),
            True,
        )
        assert served_locally
        assert eventually(lambda: admin.exists("sentinel"), 0, attempts=1_000) == 0
        assert cache.lookup(PROMPT, LLM) is None
    finally:
        cache.close()
        admin.close()


def test_a_write_missed_while_tracking_was_down_is_not_served_after_it_is_back(
    fault_proxy: Any, redis_url: str, key_prefix: str
) -> None:
    # Redis does not queue invalidations for a tracking connection that is gone: a write
    # made while it was down is never reported. The layer must not come back holding what
    # it held before (it empties when the connection is lost and again once it is back).
    proxy = fault_proxy(redis_url)
    settings = RedisSettings(
        url=proxy.url, key_prefix=key_prefix, socket_timeout=0.5, retries=0, cluster="off"
    )
    direct = RedisSettings(url=redis_url, key_prefix=key_prefix, cluster="off")
    cache = RedisLLMCache(settings=settings, namespace="csc-gap", client_side_cache=True)
    writer = RedisLLMCache(settings=direct, namespace="csc-gap")
    try:
        near = cache.client_side_cache
        assert near is not None
        assert near.wait_ready(10)
        writer.update(PROMPT, LLM, [Generation(text="v1")])
        assert eventually(lambda: (cache.lookup(PROMPT, LLM), len(near))[1], 1) == 1
        proxy.set_mode("reset")
        assert eventually(lambda: near.ready, False, attempts=500) is False
        writer.update(PROMPT, LLM, [Generation(text="v2")])  # its invalidation goes nowhere
        proxy.set_mode("pass")
        assert near.wait_ready(10)
        expected = [Generation(text="v2")]
        assert eventually(lambda: cache.lookup(PROMPT, LLM), expected) == expected
    finally:
        cache.close()
        writer.close()
