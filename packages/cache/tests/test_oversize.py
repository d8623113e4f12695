"""Entries over ``max_entry_bytes`` are neither served nor stored (issue 8, cache read bound).

Before: a lookup read whatever value sat under its key, so a planted 200 MiB value cost
each lookup 1.3 s and a 64 MiB one +254 MB of memory in the agent's process.
"""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.cache import CacheSettings
from langchain_core.outputs import Generation

pytestmark = pytest.mark.integration

PROMPT, LLM = "a question", "model=fake"
LIMIT = 1_048_576
BOUNDED = CacheSettings(max_entry_bytes=LIMIT, deadline_seconds=5.0, connect_deadline_seconds=10.0)


def _sent_bytes(client: Any) -> int:
    """Bytes the server has sent to all clients (INFO stats; the test's private server)."""
    return int(client.info("stats")["total_net_output_bytes"])


def _plant(cache: Any, client: Any, size: int) -> None:
    """A well-formed entry of ``size`` bytes under the lookup's own key (an attacker, or a
    writer with a larger limit)."""
    cache.update(PROMPT, LLM, [Generation(text="small")])
    keys = cache.redis_keys(PROMPT, LLM)
    value = client.get(keys["entry"])
    client.set(keys["entry"], value + b"\x00" * (size - len(value)))


@pytest.mark.parametrize("single_flight", [False, True])
def test_an_oversize_entry_is_a_miss_and_is_not_transferred(
    make_llm_cache: Any, redis_target: Any, recorder: Any, single_flight: bool
) -> None:
    cache = make_llm_cache(namespace="big", cache_settings=BOUNDED, single_flight=single_flight)
    client = redis_target.client
    _plant(cache, client, 4 * LIMIT)
    before = _sent_bytes(client) if not redis_target.is_cluster else 0
    assert cache.lookup(PROMPT, LLM) is None
    if not redis_target.is_cluster:
        assert _sent_bytes(client) - before < 64_000  # the 4 MiB value stayed on the server
    outcome = "oversize" if not single_flight else "miss"
    assert recorder.total("cache.lookup", outcome=outcome) >= 1
    if single_flight:
        # The caller got the lease (an oversize entry counts as absent): its update with a
        # normal value replaces the planted one.
        cache.update(PROMPT, LLM, [Generation(text="fresh")])
        assert cache.lookup(PROMPT, LLM) == [Generation(text="fresh")]


async def test_async_lookup_has_the_same_bound(
    make_llm_cache: Any, redis_target: Any, recorder: Any
) -> None:
    cache = make_llm_cache(namespace="abig", cache_settings=BOUNDED, single_flight=False)
    _plant(cache, redis_target.client, 2 * LIMIT)
    assert await cache.alookup(PROMPT, LLM) is None
    assert recorder.total("cache.lookup", outcome="oversize") == 1


def test_an_oversize_update_is_skipped_and_counted(
    make_llm_cache: Any, redis_target: Any, recorder: Any
) -> None:
    cache = make_llm_cache(namespace="bigw", cache_settings=BOUNDED)
    assert cache.lookup(PROMPT, LLM) is None  # takes the single-flight lease
    cache.update(PROMPT, LLM, [Generation(text="x" * (2 * LIMIT))])
    assert recorder.total("cache.update", outcome="oversize") == 1
    keys = cache.redis_keys(PROMPT, LLM)
    assert redis_target.client.exists(keys["entry"]) == 0
    assert redis_target.client.exists(keys["lease"]) == 0  # waiters need not wait it out
    # An entry just under the limit is stored and served.
    cache.update(PROMPT, LLM, [Generation(text="y" * (LIMIT // 2))])
    assert cache.lookup(PROMPT, LLM) == [Generation(text="y" * (LIMIT // 2))]


# -- RedisNodeCache honours the same bound on writes (it ignored max_entry_bytes: a node's
# 2 MiB result was stored under a 1 MiB limit) -------------------------------------------
NS = ("graph", "node")


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_node_cache_skips_an_oversize_entry_and_stores_the_rest(
    make_node_cache: Any, redis_target: Any, recorder: Any, caplog: Any, use_async: bool
) -> None:
    cache = make_node_cache(cache_settings=BOUNDED)
    big, small, other = (NS, "big"), (NS, "small"), (("other",), "k")
    pairs = {big: ("x" * (2 * LIMIT), 60), small: ("fits", 60), other: ([1, 2], None)}
    with caplog.at_level("WARNING", logger="deepagents_redis.cache"):
        if use_async:
            await cache.aset(pairs)
            got = await cache.aget(list(pairs))
        else:
            cache.set(pairs)
            got = cache.get(list(pairs))
    assert got == {small: "fits", other: [1, 2]}
    assert redis_target.client.exists(cache.redis_keys(*big)["entry"]) == 0
    assert recorder.total("node_cache.set", outcome="oversize") == 1
    assert recorder.total("node_cache.set", outcome="ok") == 2
    assert any("max_entry_bytes" in r.getMessage() for r in caplog.records)


def test_node_cache_entry_just_under_the_bound_is_stored(
    make_node_cache: Any, recorder: Any
) -> None:
    cache = make_node_cache(cache_settings=BOUNDED)
    value = "y" * (LIMIT // 2)
    cache.set({(NS, "k"): (value, 60)})
    assert cache.get([(NS, "k")]) == {(NS, "k"): value}
    assert recorder.total("node_cache.set", outcome="oversize") == 0


def test_fits_entry_counts_the_generation_prefix_at_the_bound(recorder: Any, caplog: Any) -> None:
    # Both caches decide through one helper: a payload fits when it and the widest
    # '<generation>:' prefix (21 bytes) are within the bound, to the byte.
    from deepagents_redis.cache._common import fits_entry, make_guard
    from deepagents_redis.cache._settings import CacheSettings

    guard = make_guard(CacheSettings(), metric_prefix="cache", breaker=None)
    assert fits_entry(guard, "update", 100 - 21, 100, "cache update")
    assert recorder.total("cache.update", outcome="oversize") == 0
    with caplog.at_level("WARNING", logger="deepagents_redis.cache"):
        assert not fits_entry(guard, "update", 100 - 20, 100, "cache update")
    assert recorder.total("cache.update", outcome="oversize") == 1
    assert [r.getMessage() for r in caplog.records] == [
        "cache update skipped: 80 bytes exceed max_entry_bytes=100"
    ]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_node_cache_does_not_serve_an_entry_over_the_bound(
    make_node_cache: Any, recorder: Any, use_async: bool
) -> None:
    # A writer with a larger max_entry_bytes (the default 8 MiB) stores a 2 MiB result; a
    # reader bounded at 1 MiB served it whole: the bound held for set only.
    writer = make_node_cache()
    reader = make_node_cache(cache_settings=BOUNDED)
    big, small = (NS, "big-read"), (NS, "small-read")
    writer.set({big: ("x" * (2 * LIMIT), 60), small: ("fits", 60)})
    keys = [big, small]
    got = await reader.aget(keys) if use_async else reader.get(keys)
    assert got == {small: "fits"}
    assert recorder.total("node_cache.get", outcome="oversize") == 1
    assert recorder.total("node_cache.get", outcome="miss") == 1
    assert (await writer.aget([big]) if use_async else writer.get([big])) == {
        big: "x" * (2 * LIMIT)
    }


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_skipped_updates_are_each_counted_but_logged_once_per_interval(
    make_llm_cache: Any, make_node_cache: Any, recorder: Any, caplog: Any, use_async: bool
) -> None:
    # A model whose answers are too big logged a WARNING line per update (hundreds a second
    # on a busy worker); Redis failures were already one line per warn_interval_seconds.
    quiet = BOUNDED.with_overrides(warn_interval_seconds=3_600)  # no clock in the test
    cache = make_llm_cache(namespace="bigw-log", cache_settings=quiet)
    node = make_node_cache(cache_settings=quiet)
    too_big = [Generation(text="x" * (2 * LIMIT))]
    with caplog.at_level("WARNING", logger="deepagents_redis.cache"):
        for i in range(5):
            if use_async:
                await cache.aupdate(f"{PROMPT} {i}", LLM, too_big)
                await node.aset({(NS, f"k{i}"): ("x" * (2 * LIMIT), 60)})
            else:
                cache.update(f"{PROMPT} {i}", LLM, too_big)
                node.set({(NS, f"k{i}"): ("x" * (2 * LIMIT), 60)})
    assert recorder.total("cache.update", outcome="oversize") == 5
    assert recorder.total("node_cache.set", outcome="oversize") == 5
    lines = [r.getMessage() for r in caplog.records if "max_entry_bytes" in r.getMessage()]
    assert len(lines) == 2  # one per cache object and interval
    assert {line.split(" skipped")[0] for line in lines} == {"cache update", "node cache set"}


def test_a_bound_over_the_codecs_limit_is_refused() -> None:
    # Up to 512 MiB was accepted, but the codec refuses envelopes over 64 MiB: an answer
    # between the two passed the cache's check and failed in the codec, counted as
    # "unserialisable" with the codec's message, never stored.
    from deepagents_redis.core import Codec, ConfigurationError

    CacheSettings(max_entry_bytes=Codec().max_size)
    with pytest.raises(ConfigurationError, match="max_entry_bytes"):
        CacheSettings(max_entry_bytes=Codec().max_size + 1)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_value_over_the_codecs_own_limit_is_counted_oversize(
    make_llm_cache: Any, make_node_cache: Any, recorder: Any, caplog: Any, use_async: bool
) -> None:
    # A codec with a smaller max_size than max_entry_bytes refuses the envelope first: that
    # is a value too big to store, and is counted and logged as one (outcome=oversize).
    from deepagents_redis.core import Codec

    small = Codec(max_size=4_096)
    cache = make_llm_cache(namespace="over-codec", codec=small)
    node = make_node_cache(codec=small)
    big = [Generation(text="x" * 8_192)]
    pairs = {(("over-codec",), "k"): ("x" * 8_192, 60)}
    if use_async:
        await cache.aupdate(PROMPT, LLM, big)
        await node.aset(pairs)
    else:
        cache.update(PROMPT, LLM, big)
        node.set(pairs)
    assert recorder.total("cache.update", outcome="oversize") == 1
    assert recorder.total("node_cache.set", outcome="oversize") == 1
    assert recorder.total("cache.update", outcome="unserializable") == 0
    assert recorder.total("node_cache.set", outcome="unserializable") == 0
    assert "exceed the codec's max_size=4096" in caplog.text
