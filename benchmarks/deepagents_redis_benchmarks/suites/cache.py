"""Suite ``cache``: RedisLLMCache and RedisNodeCache against their baselines.

Rows (each one ``compare``, interleaved, same run):

* hit of a ~1 KB chat generation vs a raw redis-py GET of the very bytes we store, vs
  langgraph's ``RedisCache.get`` of the same generation, vs ``langchain_core``'s
  ``InMemoryCache``;
* where a hit's time goes, each vs the same raw GET: the read script alone (the round trip
  of a hit after a non-hit, no decoding), the two plain reads alone (the round trip of a hit
  while lookups hit), and a floor for a hit revalidated by the constructors: raw GET +
  MessagePack unpack + rebuilding the ``AIMessage``/``ChatGeneration`` with their validators
  (no key check, no codec checks, no bookkeeping; a hit of the common shape checks it field
  by field instead, see the cache page);
* miss (single-flight off: the read script; on: read script + the lease script) vs a raw GET
  of a missing key;
* client-side-cached hit vs ``InMemoryCache`` (both in process);
* async hit vs a raw asyncio GET of the same bytes;
* node cache batch get (10 keys) vs langgraph ``RedisCache.get``;
* lookup with the server blackholed: ours (breaker open) vs langgraph ``RedisCache`` on a
  redis-py client with its defaults (5 s socket timeout; redis-py does not retry timeouts
  by default, so ~5 s per call; that side runs once);
* 8 concurrent identical requests with a 50 ms model: ours (single-flight) vs single-flight
  off; the model call counts are in the notes.
"""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from typing import Any

import redis
import redis.asyncio

from deepagents_redis_benchmarks._harness import BenchContext, Result, drop_prefix

_TEXT = ("The plan has three steps: read the files, summarise them, write a report. " * 12)[:700]
LLM = "model=scripted temperature=0"


def _generation() -> Any:
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration

    return ChatGeneration(
        message=AIMessage(
            content=_TEXT,
            tool_calls=[{"name": "read_file", "args": {"path": "/notes.md"}, "id": "call_1"}],
            usage_metadata={"input_tokens": 512, "output_tokens": 120, "total_tokens": 632},
            response_metadata={"model_name": "scripted", "finish_reason": "tool_calls"},
        )
    )


def run(ctx: BenchContext) -> list[Result]:
    """Measure the cache against raw GETs, langgraph's RedisCache and in-memory caches."""
    from deepagents_redis.cache import RedisLLMCache, RedisNodeCache
    from deepagents_redis.core import RedisSettings
    from langchain_core.caches import InMemoryCache
    from langgraph.cache.redis import RedisCache as LangGraphRedisCache

    # langgraph's RedisCache calls the deprecated setex; not a finding of this suite.
    warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*setex.*")
    results: list[Result] = []
    prefix = f"bench-cache-{uuid.uuid4().hex[:8]}"
    settings = RedisSettings(url=ctx.url, key_prefix=prefix, cluster="off")
    raw = redis.Redis.from_url(ctx.url)
    cache = RedisLLMCache(settings=settings, namespace="bench", ttl=600)
    nosf = RedisLLMCache(settings=settings, namespace="bench", ttl=600, single_flight=False)
    csc = RedisLLMCache(settings=settings, namespace="bench", ttl=600, client_side_cache=True)
    node: RedisNodeCache[Any] = RedisNodeCache(settings=settings)
    lg: LangGraphRedisCache[Any] = LangGraphRedisCache(raw, prefix=f"{prefix}:lg:")
    written: list[str] = []
    gen = _generation()
    try:
        prompt = "hit prompt"
        cache.update(prompt, LLM, [gen])
        entry = cache._keys(prompt, LLM).entry
        written += [entry, cache._gen_key]
        stored = raw.get(entry)
        assert stored is not None
        raw_key = f"{prefix}:raw"
        raw.set(raw_key, stored)
        written.append(raw_key)
        size = f"{len(stored)} B stored"

        o, b = ctx.compare(
            lambda: cache.lookup(prompt, LLM), lambda: raw.get(raw_key), iterations=ctx.n(5000)
        )
        results.append(
            Result("RedisLLMCache hit", o, "redis-py GET of the same bytes", b, notes=size)
        )

        lg.set({(("bench",), "k"): ([gen], 600)})
        o, b = ctx.compare(
            lambda: cache.lookup(prompt, LLM),
            lambda: lg.get([(("bench",), "k")]),
            iterations=ctx.n(3000),
        )
        results.append(
            Result(
                "RedisLLMCache hit",
                o,
                "langgraph RedisCache.get (same generation)",
                b,
                notes="langgraph: MGET + JsonPlus serde",
            )
        )

        results.extend(_hit_parts(ctx, cache, prompt, raw, raw_key))

        mem = InMemoryCache()
        mem.update(prompt, LLM, [gen])
        o, b = ctx.compare(
            lambda: cache.lookup(prompt, LLM),
            lambda: mem.lookup(prompt, LLM),
            iterations=ctx.n(3000),
        )
        results.append(
            Result(
                "RedisLLMCache hit",
                o,
                "langchain_core InMemoryCache hit",
                b,
                notes="in-process dict: the floor, not shared across workers",
            )
        )

        assert csc.client_side_cache is not None
        csc.client_side_cache.wait_ready(10)
        csc.lookup(prompt, LLM)  # warm the local layer
        o, b = ctx.compare(
            lambda: csc.lookup(prompt, LLM),
            lambda: mem.lookup(prompt, LLM),
            iterations=ctx.n(20000),
        )
        results.append(
            Result(
                "RedisLLMCache hit, client-side cache on",
                o,
                "langchain_core InMemoryCache hit",
                b,
                notes="local LRU kept correct by CLIENT TRACKING (BCAST); returns copies",
            )
        )

        missing_key = f"{prefix}:missing"
        o, b = ctx.compare(
            lambda: nosf.lookup("never stored", LLM),
            lambda: raw.get(missing_key),
            iterations=ctx.n(5000),
        )
        results.append(
            Result("RedisLLMCache miss, single-flight off", o, "redis-py GET (missing key)", b)
        )
        o, b = ctx.compare(
            lambda: cache.lookup("never stored either", LLM),
            lambda: raw.get(missing_key),
            iterations=ctx.n(3000),
        )
        written.append(cache._keys("never stored either", LLM).lease)
        results.append(
            Result(
                "RedisLLMCache miss, single-flight on",
                o,
                "redis-py GET (missing key)",
                b,
                notes="one script: read, then the lease (re-entered by the same thread each call)",
            )
        )

        results.append(_async_hit(ctx, settings, prompt, raw_key))
        results.append(_node_batch(ctx, node, lg, raw))
        results.append(_blackholed(ctx, prefix))
        results.append(_blackholed_defaults(ctx, prefix))
        results.append(_single_flight(ctx, settings))
    finally:
        csc.close()
        cache.close()
        nosf.close()
        node.close()
        if written:
            raw.delete(*written)
        raw.close()
        drop_prefix(ctx.url, prefix)  # our own random prefix
    return results


def _hit_parts(ctx: BenchContext, cache: Any, prompt: str, raw: Any, raw_key: str) -> list[Result]:
    import msgpack
    from deepagents_redis.cache._scripts import READ
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration

    keys = cache._keys(prompt, LLM)
    read_args = [cache._refresh_ms, cache._max_bytes]
    o, b = ctx.compare(
        lambda: READ(raw, keys=[keys.gen, keys.entry], args=read_args),
        lambda: raw.get(raw_key),
        iterations=ctx.n(5000),
    )
    parts = [
        Result(
            "cache_read script (a hit's round trip, no decoding)",
            o,
            "redis-py GET of the same bytes",
            b,
            notes="EVALSHA with one bulk reply",
        )
    ]
    # While lookups hit, a hit's round trip is two plain reads through core's driver instead.
    from deepagents_redis.cache._llm import _FAST_READ_BYTES
    from deepagents_redis.core import Pipeline, run_operation

    reads = (("GET", keys.gen), ("GETRANGE", keys.entry, 0, _FAST_READ_BYTES - 1))

    def plain() -> Any:
        reply = yield Pipeline(reads)
        return reply

    o, b = ctx.compare(
        lambda: run_operation(cache._connector, "bench.reads", plain(), deadline_seconds=5),
        lambda: raw.get(raw_key),
        iterations=ctx.n(5000),
    )
    parts.append(
        Result(
            "plain reads (a hit's round trip while lookups hit, no decoding)",
            o,
            "redis-py GET of the same bytes",
            b,
            notes="GET generation + GETRANGE of the entry, one round trip through core's driver",
        )
    )
    # The value is '<gen>:' + 4-byte envelope header + 8-byte key hash + MessagePack payload.
    skip = len(raw.get(raw_key).split(b":", 1)[0]) + 1 + 12

    def floor() -> list[ChatGeneration]:
        stored = msgpack.unpackb(raw.get(raw_key)[skip:])
        return [
            ChatGeneration(message=AIMessage.model_validate(g["m"]), generation_info=g["i"])
            for g in stored["g"]
        ]

    assert floor() == [_generation()]
    o, b = ctx.compare(floor, lambda: raw.get(raw_key), iterations=ctx.n(5000))
    parts.append(
        Result(
            "floor: GET + unpack + AIMessage/ChatGeneration rebuild",
            o,
            "redis-py GET of the same bytes",
            b,
            notes="the constructors' validation, no key check, no codec checks (a hit of the "
            "common shape checks it field by field instead: see the cache page)",
        )
    )
    return parts


def _async_hit(ctx: BenchContext, settings: Any, prompt: str, raw_key: str) -> Result:
    from deepagents_redis.cache import RedisLLMCache

    state: dict[str, Any] = {}

    async def setup() -> None:
        state["cache"] = RedisLLMCache(settings=settings, namespace="bench", ttl=600)
        state["raw"] = redis.asyncio.Redis.from_url(str(settings.url))

    async def teardown() -> None:
        await state["cache"].aclose()
        await state["raw"].aclose()

    o, b = ctx.acompare(
        lambda: state["cache"].alookup(prompt, LLM),
        lambda: state["raw"].get(raw_key),
        iterations=ctx.n(3000),
        setup=setup,
        teardown=teardown,
    )
    return Result("RedisLLMCache alookup hit", o, "redis.asyncio GET of the same bytes", b)


def _node_batch(ctx: BenchContext, node: Any, lg: Any, raw: Any) -> Result:
    keys = [(("__pregel_ns_writes", "mod.fn", "node"), f"k{i}") for i in range(10)]
    value = [("messages", _TEXT)]
    node.set({k: (value, 600) for k in keys})
    lg.set({k: (value, 600) for k in keys})
    o, b = ctx.compare(lambda: node.get(keys), lambda: lg.get(keys), iterations=ctx.n(3000))
    return Result(
        "RedisNodeCache.get, 10 keys",
        o,
        "langgraph RedisCache.get, 10 keys",
        b,
        notes="ours: one MGET per namespace in one pipeline (on Cluster too); langgraph: one MGET",
    )


def _blackholed(ctx: BenchContext, prefix: str) -> Result:
    from deepagents_redis.cache import CacheSettings, RedisLLMCache
    from deepagents_redis.core import BreakerState, RedisSettings
    from deepagents_redis.testing import FaultProxy
    from langgraph.cache.redis import RedisCache as LangGraphRedisCache

    proxy = FaultProxy(ctx.url)
    ours = RedisLLMCache(
        settings=RedisSettings(
            url=proxy.url, key_prefix=prefix, socket_timeout=0.25, retries=0, cluster="off"
        ),
        cache_settings=CacheSettings(breaker_reset_seconds=3600, warn_interval_seconds=3600),
        namespace="bench",
    )
    # redis-py's own defaults, as langgraph's docs construct the client.
    base_client = redis.Redis.from_url(proxy.url)
    lg: LangGraphRedisCache[Any] = LangGraphRedisCache(base_client, prefix=f"{prefix}:lg:")
    try:
        ours.lookup("warm", LLM)
        base_client.ping()
        proxy.set_mode("blackhole")
        opened = time.perf_counter()
        for _ in range(10):
            ours.lookup("p", LLM)
            if ours.breaker.state is BreakerState.OPEN:
                break
        opened = time.perf_counter() - opened
        o, _ = ctx.compare(lambda: ours.lookup("p", LLM), None, iterations=ctx.n(20000))
        _, b = ctx.compare(
            lambda: None, lambda: lg.get([(("bench",), "k")]), iterations=1, warmup=0
        )
        assert b is not None
        return Result(
            "RedisLLMCache lookup, server blackholed (breaker open)",
            o,
            "langgraph RedisCache.get, redis-py defaults",
            b,
            notes=(
                f"opening the breaker took {opened:.2f} s (3 timeouts of 0.25 s); "
                f"baseline measured once: {b.median:.1f} s per call"
            ),
        )
    finally:
        ours.close()
        base_client.close()
        proxy.close()


def _blackholed_defaults(ctx: BenchContext, prefix: str) -> Result:
    """The lookups that open the breaker, with DEFAULT settings (issue 9 §3).

    Before the deadlines, one such lookup stalled 6.2 s (2 s timeout x 3 attempts) and the
    breaker needed three of them. Ours: the three stalled lookups of a warm cache (each
    bounded by `CacheSettings.deadline_seconds`); the cold first lookup (connect included,
    bounded by `connect_deadline_seconds`) is in the notes.
    """
    from deepagents_redis.cache import RedisLLMCache
    from deepagents_redis.core import BreakerState, RedisSettings
    from deepagents_redis.testing import FaultProxy
    from langgraph.cache.redis import RedisCache as LangGraphRedisCache

    proxy = FaultProxy(ctx.url)
    defaults = RedisSettings(url=proxy.url, key_prefix=prefix, cluster="off")
    warm = RedisLLMCache(settings=defaults, namespace="bench-defaults")
    cold = RedisLLMCache(settings=defaults, namespace="bench-defaults")
    base_client = redis.Redis.from_url(proxy.url)
    lg: LangGraphRedisCache[Any] = LangGraphRedisCache(base_client, prefix=f"{prefix}:lg:")
    try:
        warm.lookup("warm", LLM)
        base_client.ping()
        proxy.set_mode("blackhole")
        o, _ = ctx.compare(lambda: warm.lookup("p", LLM), None, iterations=3, warmup=0)
        assert warm.breaker.state is BreakerState.OPEN
        started = time.perf_counter()
        cold.lookup("p", LLM)
        cold_s = time.perf_counter() - started
        _, b = ctx.compare(
            lambda: None, lambda: lg.get([(("bench",), "k")]), iterations=1, warmup=0
        )
        assert b is not None
        return Result(
            "RedisLLMCache lookup, server blackholed, DEFAULT settings (3 open the breaker)",
            o,
            "langgraph RedisCache.get, redis-py defaults",
            b,
            notes=(
                f"each bounded by deadline_seconds=0.25; a cold cache's first lookup "
                f"(connecting) took {cold_s:.2f} s (connect_deadline_seconds=1.0); "
                f"baseline measured once"
            ),
        )
    finally:
        warm.close()
        cold.close()
        base_client.close()
        proxy.close()


def _single_flight(ctx: BenchContext, settings: Any) -> Result:
    from deepagents_redis.cache import RedisLLMCache
    from langchain_core.outputs import Generation

    n = 8
    counters = {"ours": 0, "off": 0}
    batches = {"ours": 0, "off": 0}
    sf = RedisLLMCache(settings=settings, namespace="bench-sf", ttl=600)
    off = RedisLLMCache(settings=settings, namespace="bench-sf", ttl=600, single_flight=False)

    def batch(cache: Any, label: str) -> None:
        batches[label] += 1
        prompt = f"{label} {batches[label]} {uuid.uuid4().hex}"
        barrier = threading.Barrier(n)
        lock = threading.Lock()

        def one() -> None:
            barrier.wait()
            if cache.lookup(prompt, LLM) is None:
                with lock:
                    counters[label] += 1
                time.sleep(0.05)  # the model
                cache.update(prompt, LLM, [Generation(text="answer")])

        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    try:
        iterations = 3 if ctx.smoke else 20
        o, b = ctx.compare(
            lambda: batch(sf, "ours"), lambda: batch(off, "off"), iterations=iterations, warmup=0
        )
        assert b is not None
        return Result(
            f"{n} concurrent identical requests, single-flight",
            o,
            f"{n} concurrent identical requests, single-flight off",
            b,
            notes=(
                f"model calls per batch: ours {counters['ours'] / batches['ours']:.1f}, "
                f"off {counters['off'] / batches['off']:.1f} (model takes 50 ms)"
            ),
        )
    finally:
        sf.clear()
        sf.close()
        off.close()
