"""Keys of the caches that someone else wrote: counters INCR refuses, entries of another type."""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.cache._scripts import ACQUIRE
from deepagents_redis.core import SerializationError
from langchain_core.outputs import Generation

pytestmark = pytest.mark.integration

PROMPT, LLM = "a question", "model=fake"
ANSWER = [Generation(text="an answer")]

# What INCR refuses, each left as it is by a refused clear: text, a number INCR never writes
# (not canonical; the largest 64-bit one, whose INCR would overflow), a '1:2' the readers
# already treat as corrupt, and a key of another type (WRONGTYPE).
PLANTED = [b"abc", b"007", b"9223372036854775807", b"1:2", "hash"]
PLANTED_IDS = ["text", "leading-zero", "int64-max", "colon", "hash"]


def _plant(client: Any, key: str, planted: bytes | str) -> None:
    client.delete(key)
    if planted == "hash":
        client.hset(key, "f", "v")
    else:
        client.set(key, planted)


def _dump(client: Any, key: str) -> Any:
    return client.hgetall(key) if client.type(key) == b"hash" else client.get(key)


async def _clear(cache: Any, use_async: bool, *args: Any) -> None:
    if use_async:
        await cache.aclear(*args)
    else:
        cache.clear(*args)


@pytest.mark.parametrize("planted", PLANTED, ids=PLANTED_IDS)
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_clear_of_a_corrupt_counter_is_a_serialization_error_and_changes_nothing(
    make_llm_cache: Any,
    make_node_cache: Any,
    redis_target: Any,
    planted: bytes | str,
    use_async: bool,
) -> None:
    # A generation counter someone else wrote: INCR refused it and clear() raised the base
    # DeepAgentsRedisError ("Redis error: ResponseError: value is not an integer"), which no
    # caller can tell from any other server error. Now SerializationError (corrupt stored
    # data, as WRONGTYPE already was), with nothing changed. The node cache's clear of
    # several namespaces checks every counter before bumping any: the pipeline of INCRs
    # bumped the sound namespaces listed before the corrupt one, then raised.
    client = redis_target.client
    cache = make_llm_cache(namespace=f"clear-bad-{use_async}")
    gen = cache.redis_keys(PROMPT, LLM)["generation"]
    _plant(client, gen, planted)
    before = _dump(client, gen)
    with pytest.raises(SerializationError):
        await _clear(cache, use_async)
    assert _dump(client, gen) == before

    node = make_node_cache()
    sound, bad = ("sound", str(use_async)), ("bad", str(use_async))
    node.set({(sound, "k"): ({"v": 1}, 60), (bad, "k"): ({"v": 2}, 60)})
    sound_gen = node.redis_keys(sound, "k")["generation"]
    bad_gen = node.redis_keys(bad, "k")["generation"]
    client.set(sound_gen, b"5")
    _plant(client, bad_gen, planted)
    bad_before = _dump(client, bad_gen)
    for namespaces in ([sound, bad], None):  # the ones named, and every registered one
        with pytest.raises(SerializationError):
            await _clear(node, use_async, namespaces)
        assert client.get(sound_gen) == b"5"
        assert _dump(client, bad_gen) == bad_before


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_clear_still_bumps_sound_counters(
    make_llm_cache: Any, make_node_cache: Any, redis_target: Any, use_async: bool
) -> None:
    # The check before the node cache's INCRs lets through every counter INCR takes: absent,
    # negative, the smallest 64-bit one.
    client = redis_target.client
    node = make_node_cache()
    spaces = [("absent",), ("negative",), ("smallest",)]
    gens = [node.redis_keys(ns, "k")["generation"] for ns in spaces]
    client.set(gens[1], b"-5")
    client.set(gens[2], b"-9223372036854775808")
    await _clear(node, use_async, spaces)
    assert [client.get(g) for g in gens] == [b"1", b"-4", b"-9223372036854775807"]


@pytest.mark.parametrize("spread", ["one-namespace", "two-namespaces"])
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_node_entry_of_another_type_is_a_counted_miss_and_the_rest_is_served(
    make_node_cache: Any,
    redis_target: Any,
    recorder: Any,
    caplog: pytest.LogCaptureFixture,
    spread: str,
    use_async: bool,
) -> None:
    # A hash under one entry's key. On Cluster the batch read with GETs in a pipeline and
    # the WRONGTYPE reply of that one failed the whole batch (every key a miss, counted
    # error, and raised with strict); standalone's MGET answered nil for it: an uncounted,
    # unlogged miss. Both now serve every other key and count the foreign one corrupt
    # (logged, rate-limited), and the next set overwrites it.
    client = redis_target.client
    node = make_node_cache()
    ns_a = ("wrongtype", spread, str(use_async))
    ns_b = ns_a if spread == "one-namespace" else (*ns_a, "b")
    keys = [(ns_a, "k1"), (ns_a, "k2"), (ns_b, "k3")]
    node.set({k: ({"v": i}, 60) for i, k in enumerate(keys)})
    planted = node.redis_keys(*keys[1])["entry"]
    client.delete(planted)
    client.hset(planted, "f", "v")
    asked = [*keys, (ns_a, "absent")]
    got = await node.aget(asked) if use_async else node.get(asked)
    assert got == {keys[0]: {"v": 0}, keys[2]: {"v": 2}}
    assert recorder.total("node_cache.get", outcome="corrupt") == 1
    assert recorder.total("node_cache.get", outcome="miss") == 2
    assert recorder.total("node_cache.get", outcome="hit") == 2
    assert recorder.total("node_cache.get", outcome="error") == 0
    assert "another data type" in caplog.text
    node.set({keys[1]: ({"v": 1}, 60)})
    assert node.get([keys[1]]) == {keys[1]: {"v": 1}}


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_strict_node_cache_serves_the_rest_of_a_batch_with_a_foreign_entry(
    make_node_cache: Any, redis_target: Any, use_async: bool
) -> None:
    # With strict=True the Cluster batch raised SerializationError for all keys (WRONGTYPE
    # of one GET); a foreign entry is data, not an unavailable server: a miss, as the
    # standalone MGET always answered.
    client = redis_target.client
    node = make_node_cache(strict=True)
    ns = ("strict-wrongtype", str(use_async))
    node.set({(ns, "a"): ("A", 60), (ns, "b"): ("B", 60)})
    client.delete(node.redis_keys(ns, "b")["entry"])
    client.rpush(node.redis_keys(ns, "b")["entry"], b"x")
    asked = [(ns, "a"), (ns, "b")]
    got = await node.aget(asked) if use_async else node.get(asked)
    assert got == {(ns, "a"): "A"}


@pytest.mark.parametrize("strict", [False, True], ids=["fail-open", "strict"])
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_an_llm_entry_of_another_type_is_a_corrupt_miss_that_takes_the_lease(
    make_llm_cache: Any, redis_target: Any, recorder: Any, strict: bool, use_async: bool
) -> None:
    # A hash under an entry's key raised WRONGTYPE out of the lookup script (and the waiters'
    # cache_acquire) on every lookup of that prompt: no lease, so no single flight for it;
    # with strict=True every lookup raised, so the model was never called and the update that
    # overwrites the key never came. Foreign bytes there are a counted miss: so is this now,
    # taking the lease; the update overwrites it.
    client = redis_target.client
    cache = make_llm_cache(namespace=f"entry-type-{strict}-{use_async}", strict=strict)
    keys = cache.redis_keys(PROMPT, LLM)
    client.hset(keys["entry"], "f", "v")

    async def lookup() -> Any:
        return await cache.alookup(PROMPT, LLM) if use_async else cache.lookup(PROMPT, LLM)

    assert await lookup() is None
    assert recorder.total("cache.lookup", outcome="corrupt") == 1
    assert recorder.total("cache.lookup", outcome="error") == 0
    assert recorder.total("cache.single_flight", outcome="leader") == 1
    # A waiter's poll (cache_acquire) sees no entry either, and re-enters its own lease.
    reply = ACQUIRE(
        client, keys=[keys["generation"], keys["entry"], keys["lease"]], args=["t", 1000, 1 << 20]
    )
    assert reply[0] == 3
    if use_async:
        await cache.aupdate(PROMPT, LLM, ANSWER)
    else:
        cache.update(PROMPT, LLM, ANSWER)
    assert await lookup() == ANSWER


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_strict_lookup_that_raised_does_not_keep_taking_the_plain_reads(
    make_llm_cache: Any, redis_target: Any, use_async: bool
) -> None:
    # While lookups hit, a lookup first tries two plain reads (GETRANGE), which raise WRONGTYPE
    # for an entry of another type. With strict=True that raised out of the lookup and the
    # cache kept preferring the plain reads, so that prompt raised on every lookup for as
    # long as other lookups hit. Now a lookup that raised sends the next to the script.
    client = redis_target.client
    cache = make_llm_cache(namespace=f"strict-plain-{use_async}", strict=True)
    cache.update("warm", LLM, ANSWER)

    async def lookup(prompt: str) -> Any:
        return await cache.alookup(prompt, LLM) if use_async else cache.lookup(prompt, LLM)

    assert await lookup("warm") == ANSWER
    assert await lookup("warm") == ANSWER  # plain reads: lookups hit
    client.hset(cache.redis_keys(PROMPT, LLM)["entry"], "f", "v")
    with pytest.raises(SerializationError):
        await lookup(PROMPT)
    assert await lookup(PROMPT) is None  # the script: a corrupt miss, with the lease


@pytest.mark.parametrize("strict", [False, True], ids=["fail-open", "strict"])
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_generation_counter_of_another_type_is_a_corrupt_counter(
    make_llm_cache: Any,
    make_node_cache: Any,
    redis_target: Any,
    recorder: Any,
    strict: bool,
    use_async: bool,
) -> None:
    # A hash under a namespace's generation counter: every script's STRLEN of it raised
    # WRONGTYPE, so each lookup and update of the namespace failed (an error, and with
    # strict=True raised out of every lookup) and each node set too. A corrupt string
    # counter is a counted miss and stores nothing (test_generation.py): so is this now.
    client = redis_target.client
    cache = make_llm_cache(namespace=f"gen-type-{strict}-{use_async}", strict=strict)
    gen = cache.redis_keys(PROMPT, LLM)["generation"]
    client.hset(gen, "f", "v")
    if use_async:
        assert await cache.alookup(PROMPT, LLM) is None
        await cache.aupdate(PROMPT, LLM, ANSWER)
    else:
        assert cache.lookup(PROMPT, LLM) is None
        cache.update(PROMPT, LLM, ANSWER)
    assert client.exists(cache.redis_keys(PROMPT, LLM)["entry"]) == 0
    assert recorder.total("cache.single_flight", outcome="leader") == 1  # a miss, with the lease
    assert recorder.total("cache.update", outcome="corrupt") == 1
    assert recorder.total("cache.lookup", outcome="error") == 0
    assert recorder.total("cache.update", outcome="error") == 0

    node = make_node_cache(strict=strict)
    nkey = (("gen-type", str(strict), str(use_async)), "k")
    node_gen = node.redis_keys(*nkey)["generation"]
    client.hset(node_gen, "f", "v")
    if use_async:
        await node.aset({nkey: ("V", 60)})
    else:
        node.set({nkey: ("V", 60)})
    assert client.exists(node.redis_keys(*nkey)["entry"]) == 0
    assert recorder.total("node_cache.set", outcome="corrupt") == 1
    assert recorder.total("node_cache.set", outcome="error") == 0
