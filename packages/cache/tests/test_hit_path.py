"""The plain-read hit path: while lookups hit, a lookup is two plain reads, no script.

After a hit, `RedisLLMCache` reads the namespace's generation and the entry's first 32 KiB
(`GET` + `GETRANGE`, one round trip) and serves a fresh entry that fits from them. Anything
else goes on to the lookup script, which decides it and takes the lease, and the next lookup
starts with the script again. Every outcome must be what the script alone gave.
"""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.cache import CacheSettings
from deepagents_redis.cache._llm import _FAST_READ_BYTES
from langchain_core.outputs import Generation

pytestmark = pytest.mark.integration

LLM = "model=fake"


def _warm(cache: Any) -> None:
    """One hit, so the next lookup takes the plain reads."""
    cache.update("warm", LLM, [Generation(text="warm")])
    assert cache.lookup("warm", LLM) == [Generation(text="warm")]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_hits_after_a_hit_are_two_plain_reads(
    make_llm_cache: Any, redis_target: Any, recorder: Any, use_async: bool
) -> None:
    cache = make_llm_cache(namespace="hp-hits")
    _warm(cache)
    cache.update("q", LLM, [Generation(text="answer")])
    scripts, reads = (
        redis_target.command_calls("evalsha", "eval"),
        redis_target.command_calls("getrange"),
    )
    for _ in range(3):
        got = await cache.alookup("q", LLM) if use_async else cache.lookup("q", LLM)
        assert got == [Generation(text="answer")]
    assert redis_target.command_calls("evalsha", "eval") == scripts  # no script
    # Two per lookup: the generation counter's first 21 bytes and the entry's first 32 KiB.
    assert redis_target.command_calls("getrange") - reads == 2 * 3
    assert recorder.total("cache.lookup", outcome="hit") == 4


async def test_a_miss_after_a_hit_still_takes_the_lease_and_the_next_goes_to_the_script(
    make_llm_cache: Any, redis_target: Any, recorder: Any
) -> None:
    cache = make_llm_cache(namespace="hp-miss")
    _warm(cache)
    scripts, reads = (
        redis_target.command_calls("evalsha", "eval"),
        redis_target.command_calls("getrange"),
    )
    assert cache.lookup("new", LLM) is None  # plain reads, then the script: lease taken
    assert redis_target.command_calls("getrange") - reads == 2  # counter and entry
    assert redis_target.command_calls("evalsha", "eval") - scripts == 1
    assert recorder.total("cache.lookup", outcome="miss") == 1  # counted once
    assert recorder.total("cache.single_flight", outcome="leader") == 1
    other = make_llm_cache(namespace="hp-miss", wait_timeout=0.1)
    assert await other.alookup("new", LLM) is None
    assert recorder.total("cache.single_flight", outcome="wait_timeout") == 1
    # After a miss the script goes first: a run of misses costs one round trip each.
    scripts, reads = (
        redis_target.command_calls("evalsha", "eval"),
        redis_target.command_calls("getrange"),
    )
    assert cache.lookup("newer", LLM) is None
    assert redis_target.command_calls("getrange") == reads
    assert redis_target.command_calls("evalsha", "eval") - scripts == 1


def test_a_stale_entry_after_a_hit_is_stale(make_llm_cache: Any, recorder: Any) -> None:
    cache = make_llm_cache(namespace="hp-stale")
    cache.update("q", LLM, [Generation(text="old")])
    _warm(cache)
    cache.clear()  # a new generation: every entry is stale
    assert cache.lookup("q", LLM) is None
    assert recorder.total("cache.lookup", outcome="stale") == 1


def test_an_entry_bigger_than_the_plain_read_is_served_whole(
    make_llm_cache: Any, redis_target: Any
) -> None:
    cache = make_llm_cache(namespace="hp-big")
    text = "x" * (2 * _FAST_READ_BYTES)
    cache.update("big", LLM, [Generation(text=text)])
    _warm(cache)
    scripts = redis_target.command_calls("evalsha", "eval")
    assert cache.lookup("big", LLM) == [Generation(text=text)]
    assert redis_target.command_calls("evalsha", "eval") - scripts == 1  # the script served it


def test_an_oversize_value_after_a_hit_is_not_transferred(
    make_llm_cache: Any, redis_target: Any, recorder: Any
) -> None:
    limit = 1_048_576
    cache = make_llm_cache(
        namespace="hp-oversize",
        cache_settings=CacheSettings(
            max_entry_bytes=limit, deadline_seconds=5.0, connect_deadline_seconds=10.0
        ),
    )
    client = redis_target.client
    cache.update("q", LLM, [Generation(text="small")])
    entry = cache.redis_keys("q", LLM)["entry"]
    client.set(entry, client.get(entry) + b"\x00" * (4 * limit))
    _warm(cache)
    before = (
        int(client.info("stats")["total_net_output_bytes"]) if not redis_target.is_cluster else 0
    )
    assert cache.lookup("q", LLM) is None
    if not redis_target.is_cluster:
        sent = int(client.info("stats")["total_net_output_bytes"]) - before
        assert sent < _FAST_READ_BYTES + 16_384  # the plain read's cap, not the 4 MiB
    assert recorder.total("cache.lookup", outcome="miss") == 1


@pytest.mark.parametrize("after_a_hit", [False, True], ids=["script", "plain-reads"])
def test_a_fresh_entry_that_does_not_decode_is_corrupt_and_takes_the_lease(
    make_llm_cache: Any, redis_target: Any, recorder: Any, after_a_hit: bool
) -> None:
    # Both paths. By the script alone it was counted corrupt twice (the lookup's reply, then
    # the same bytes from the lease call), as a late hit, and no lease was taken.
    cache = make_llm_cache(namespace="hp-corrupt")
    client = redis_target.client
    cache.update("q", LLM, [Generation(text="fine")])
    keys = cache.redis_keys("q", LLM)
    gen = client.get(keys["generation"]) or b"0"
    client.set(keys["entry"], gen + b":not an envelope")
    if after_a_hit:
        _warm(cache)
    assert cache.lookup("q", LLM) is None
    assert recorder.total("cache.lookup", outcome="corrupt") == 1
    assert recorder.total("cache.single_flight", outcome="late_hit") == 0
    assert recorder.total("cache.single_flight", outcome="leader") == 1
    assert client.get(keys["lease"]) is not None  # this caller computes the value
    cache.update("q", LLM, [Generation(text="again")])
    assert cache.lookup("q", LLM) == [Generation(text="again")]


def test_without_single_flight_a_corrupt_entry_after_a_hit_is_a_miss(
    make_llm_cache: Any, redis_target: Any, recorder: Any
) -> None:
    cache = make_llm_cache(namespace="hp-nosf", single_flight=False)
    client = redis_target.client
    cache.update("q", LLM, [Generation(text="fine")])
    keys = cache.redis_keys("q", LLM)
    client.set(keys["entry"], (client.get(keys["generation"]) or b"0") + b":garbage")
    _warm(cache)
    scripts = redis_target.command_calls("evalsha", "eval")
    assert cache.lookup("q", LLM) is None
    assert redis_target.command_calls("evalsha", "eval") == scripts
    assert recorder.total("cache.lookup", outcome="corrupt") == 1
    assert recorder.total("cache.lookup", outcome="miss") == 1


def test_refresh_on_hit_keeps_the_script_that_pushes_the_ttl(
    make_llm_cache: Any, redis_target: Any
) -> None:
    cache = make_llm_cache(namespace="hp-refresh", ttl=100, refresh_on_hit=True)
    _warm(cache)
    entry = cache.redis_keys("warm", LLM)["entry"]
    redis_target.client.pexpire(entry, 5_000)
    reads = redis_target.command_calls("getrange")
    assert cache.lookup("warm", LLM) == [Generation(text="warm")]
    assert redis_target.command_calls("getrange") == reads
    assert redis_target.client.pttl(entry) > 50_000  # pushed back to the 100 s TTL
