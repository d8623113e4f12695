"""The namespace generation counter as both caches read it, in Python and in Lua."""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.cache._scripts import ACQUIRE
from langchain_core.outputs import Generation

pytestmark = pytest.mark.integration

PROMPT, LLM = "a question", "model=fake"
ANSWER = [Generation(text="an answer")]


@pytest.mark.parametrize("written", ["before", "after"])
def test_an_empty_generation_counter_reads_as_zero_on_every_path(
    make_llm_cache: Any, make_node_cache: Any, redis_target: Any, written: str
) -> None:
    # A counter holding '' (no INCR writes it; a restore or another tool can): the Lua
    # scripts took it as the generation '' (values written ':<envelope>') and the Python
    # reads as '0', so an entry written by one path was a miss (counted corrupt) by the other.
    # Both now read '' as an absent counter, generation '0'.
    client = redis_target.client
    writer = make_llm_cache(namespace=f"gen-empty-{written}")
    gen_key = writer.redis_keys(PROMPT, LLM)["generation"]
    node = make_node_cache()
    node_gen = node.redis_keys(("gen-empty", written), "k")["generation"]
    if written == "after":
        client.set(gen_key, b"")
        client.set(node_gen, b"")
    writer.update(PROMPT, LLM, ANSWER)  # cache_write (Lua)
    node.set({(("gen-empty", written), "k"): ({"v": 1}, 60)})  # cache_write_many (Lua)
    if written == "before":
        client.set(gen_key, b"")
        client.set(node_gen, b"")
    reader = make_llm_cache(namespace=f"gen-empty-{written}")
    assert reader.lookup(PROMPT, LLM) == ANSWER  # the lookup script (Lua)
    assert reader.lookup(PROMPT, LLM) == ANSWER  # after a hit: the plain reads (Python)
    assert node.get([(("gen-empty", written), "k")]) == {(("gen-empty", written), "k"): {"v": 1}}
    # cache_acquire (Lua), as a waiter's poll reads it.
    keys = reader.redis_keys(PROMPT, LLM)
    reply = ACQUIRE(client, keys=[gen_key, keys["entry"], keys["lease"]], args=["t", 1000, 1 << 20])
    assert reply[0] == 1


def _bytes_sent(target: Any) -> int:
    """Bytes the target's primaries have sent to clients so far (INFO stats)."""
    client = target.client
    nodes = (
        [client.get_redis_connection(n) for n in client.get_primaries()]
        if target.is_cluster
        else [client]
    )
    return sum(int(node.info("stats")["total_net_output_bytes"]) for node in nodes)


HUGE = b"9" * (4 << 20)  # 4 MiB of digits: no counter INCR writes is longer than 20 bytes


@pytest.mark.parametrize("planted", [HUGE, b"1:2", b"abc"], ids=["huge", "colon", "text"])
async def test_a_corrupt_generation_counter_is_a_counted_miss_and_stores_nothing(
    make_llm_cache: Any,
    make_node_cache: Any,
    redis_target: Any,
    recorder: Any,
    caplog: pytest.LogCaptureFixture,
    planted: bytes,
) -> None:
    # A generation counter holding something INCR never writes. A huge one was read whole
    # (by each lookup script, by the plain reads' GET, by the node cache's MGET) and every
    # write stored '<counter>:<envelope>': a 4 MiB counter made each 200-byte answer a
    # 4 MiB entry. Other values were served by one path and missed by another ('1:2').
    # Now every path reads at most 21 bytes of it, lookups miss (counted corrupt), and
    # updates and sets store nothing (counted, logged).
    client = redis_target.client
    cache = make_llm_cache(namespace=f"gen-bad-{len(planted)}-{planted[:1]!r}")
    keys = cache.redis_keys(PROMPT, LLM)
    node = make_node_cache()
    nkey = (("gen-bad", repr(planted[:4])), "k")
    node_keys = node.redis_keys(*nkey)
    cache.update("warm", LLM, ANSWER)
    assert cache.lookup("warm", LLM) == ANSWER  # the next lookup takes the plain reads
    client.set(keys["generation"], planted)
    client.set(node_keys["generation"], planted)
    # An entry stored the way a writer under this counter stored it.
    envelope = client.get(cache.redis_keys("warm", LLM)["entry"]).split(b":", 1)[1]
    client.set(keys["entry"], planted + b":" + envelope)
    sent = _bytes_sent(redis_target)
    assert cache.lookup(PROMPT, LLM) is None  # plain reads, then the lookup script
    sent = _bytes_sent(redis_target) - sent
    cache.update(PROMPT, LLM, ANSWER)
    assert await cache.alookup(PROMPT, LLM) is None  # the lookup script
    await cache.aupdate(PROMPT, LLM, ANSWER)
    assert client.get(keys["entry"]) == planted + b":" + envelope  # nothing stored
    assert client.exists(keys["lease"]) == 0  # each caller's own lease is dropped all the same
    node.set({nkey: ({"v": 1}, 60)})
    assert client.exists(node_keys["entry"]) == 0
    client.set(node_keys["entry"], planted + b":" + b"x")
    assert node.get([nkey]) == {}
    assert recorder.total("cache.lookup", outcome="corrupt") == 2
    assert recorder.total("cache.lookup", outcome="hit") == 1
    assert recorder.total("cache.update", outcome="corrupt") == 2
    assert recorder.total("node_cache.set", outcome="corrupt") == 1
    assert recorder.total("node_cache.get", outcome="corrupt") == 1
    assert "generation counter" in caplog.text
    if planted is HUGE:
        # The plain reads transferred the whole counter (GET); now its first 21 bytes.
        assert sent < len(HUGE) // 4


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_huge_foreign_lease_is_never_read_whole(
    make_llm_cache: Any, redis_target: Any, recorder: Any, use_async: bool
) -> None:
    # The scripts compared a lease with the caller's token by GET: a 4 MiB value planted
    # under the lease key was copied into the script on every lookup of that prompt (and by
    # every update). Now its length is compared first (STRLEN), and a token is ~40 bytes.
    client = redis_target.client
    cache = make_llm_cache(namespace="lease-huge", wait_timeout=0)
    keys = cache.redis_keys(PROMPT, LLM)
    client.set(keys["lease"], HUGE, px=60_000)
    gets = int(redis_target.command_calls("get"))
    got = await cache.alookup(PROMPT, LLM) if use_async else cache.lookup(PROMPT, LLM)
    assert got is None
    if use_async:
        await cache.aupdate(PROMPT, LLM, ANSWER)
    else:
        cache.update(PROMPT, LLM, ANSWER)
    # The lookup script's GET of the (absent) entry; never one of the lease (nor of the
    # absent counter: its STRLEN of 0 says generation 0).
    assert int(redis_target.command_calls("get")) - gets == 1
    assert client.strlen(keys["lease"]) == len(HUGE)  # not ours: left alone
    assert recorder.total("cache.single_flight", outcome="wait_timeout") == 1


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_lease_key_of_another_type_is_taken_over(
    make_llm_cache: Any, redis_target: Any, recorder: Any, use_async: bool
) -> None:
    # A list under the lease key (another tool, a key-name clash): reading it raised
    # WRONGTYPE inside the scripts, so every miss of that prompt failed open as an error
    # and single flight never worked for it. It holds no token, has no expiry, and is taken
    # over like a lease without one.
    client = redis_target.client
    cache = make_llm_cache(namespace=f"lease-type-{use_async}")
    keys = cache.redis_keys(PROMPT, LLM)
    client.rpush(keys["lease"], b"x")
    got = await cache.alookup(PROMPT, LLM) if use_async else cache.lookup(PROMPT, LLM)
    assert got is None
    assert recorder.total("cache.single_flight", outcome="leader") == 1
    assert recorder.total("cache.lookup", outcome="error") == 0
    if use_async:
        await cache.aupdate(PROMPT, LLM, ANSWER)
    else:
        cache.update(PROMPT, LLM, ANSWER)
    assert client.exists(keys["lease"]) == 0
    assert recorder.total("cache.update", outcome="ok") == 1
    assert cache.lookup(PROMPT, LLM) == ANSWER
