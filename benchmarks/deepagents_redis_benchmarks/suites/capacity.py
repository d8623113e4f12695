"""Suite ``capacity``: Redis server CPU per operation, beside the raw command it stands for.

Many workers share one Redis, and Redis runs commands on one thread: what bounds a fleet is
the server's CPU per operation, not one client's latency. Each row measures it for one of
our operations and for the raw command that moves the same bytes (``GET``/``SET`` of the
same size, an ``EVALSHA`` no-op, an ``XADD``): the main thread's ``used_cpu_user`` +
``used_cpu_sys`` (``INFO cpu``) over a block of calls, divided by the calls. It includes the
server reading and answering the requests, which is part of what an operation costs it.

The two sides run in alternating blocks and each side's value is the median of its blocks.
The timing columns of these rows are **server CPU seconds per call**, not latency; the notes
give the operations per second one fully busy Redis core would sustain. Run on the
benchmark's private server (the suite reads that server's own counters).
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Callable

import redis

from deepagents_redis_benchmarks._harness import BenchContext, Result, Timing, drop_prefix


def _cpu(raw: redis.Redis) -> float:
    info = raw.info("cpu")
    user = info.get("used_cpu_user_main_thread", info["used_cpu_user"])
    system = info.get("used_cpu_sys_main_thread", info["used_cpu_sys"])
    return float(user) + float(system)


def _server_cpu(
    raw: redis.Redis,
    ours: Callable[[], object],
    base: Callable[[], object],
    calls: int,
    blocks: int,
) -> tuple[Timing, Timing]:
    """Server CPU per call of `ours` and of `base`, alternating blocks of `calls` calls."""
    for fn in (ours, base):
        for _ in range(max(3, calls // 10)):
            fn()
    per: list[list[float]] = [[], []]
    for block in range(blocks):
        order = ((0, ours), (1, base)) if block % 2 == 0 else ((1, base), (0, ours))
        for side, fn in order:
            before = _cpu(raw)
            for _ in range(calls):
                fn()
            # the INFO call itself is in the delta: a few µs over a block of calls
            per[side].append((_cpu(raw) - before) / calls)
    timings = [Timing(statistics.median(values), max(values), calls * blocks) for values in per]
    return timings[0], timings[1]


def _row(name: str, base: str, timings: tuple[Timing, Timing], notes: str) -> Result:
    ours, theirs = timings
    rate = (
        f"one busy Redis core: ~{1 / ours.median:,.0f} of ours/s, ~{1 / theirs.median:,.0f} raw/s"
        if ours.median > 0 and theirs.median > 0
        else "below the counters' resolution"
    )
    return Result(
        f"server CPU per call: {name}",
        ours,
        f"server CPU per call: {base}",
        theirs,
        notes=f"{notes}; {rate} (INFO cpu, main thread, median of blocks)",
    )


def run(ctx: BenchContext) -> list[Result]:
    """Server CPU per call of each phase's main operations and of their raw commands."""
    prefix = f"bench-cap-{uuid.uuid4().hex[:8]}"
    raw = redis.Redis.from_url(ctx.url)
    calls, blocks = ctx.n(1_000), 1 if ctx.smoke else 7
    results: list[Result] = []
    try:
        results += _cache(ctx, raw, prefix, calls, blocks)
        results += _todos(ctx, raw, prefix, calls, blocks)
        results += _fs(ctx, raw, prefix, calls, blocks)
        results += _checkpoint(ctx, raw, prefix, calls, blocks)
        results += _coord(ctx, raw, prefix, calls, blocks)
    finally:
        raw.close()
        drop_prefix(ctx.url, prefix)
    return results


def _cache(
    ctx: BenchContext, raw: redis.Redis, prefix: str, calls: int, blocks: int
) -> list[Result]:
    from deepagents_redis.cache import RedisLLMCache
    from deepagents_redis.core import RedisSettings

    from deepagents_redis_benchmarks.suites.cache import LLM, _generation

    settings = RedisSettings(url=ctx.url, key_prefix=f"{prefix}-cache", cluster="off")
    cache = RedisLLMCache(settings=settings, namespace="cap", ttl=600)
    try:
        cache.update("hit", LLM, [_generation()])
        stored = raw.get(cache._keys("hit", LLM).entry)
        assert stored is not None
        key = f"{prefix}:cache-raw"
        raw.set(key, stored)
        hit = _server_cpu(
            raw, lambda: cache.lookup("hit", LLM), lambda: raw.get(key), calls, blocks
        )
        return [_row("RedisLLMCache hit", f"GET {len(stored)} B", hit, "the entry as stored")]
    finally:
        cache.close()


def _todos(
    ctx: BenchContext, raw: redis.Redis, prefix: str, calls: int, blocks: int
) -> list[Result]:
    import itertools

    from deepagents_redis.core import LuaScript, RedisSettings
    from deepagents_redis.todos import RedisTodoRepository, TodosSettings

    from deepagents_redis_benchmarks.suites.todos import _ITEMS

    settings = RedisSettings(url=ctx.url, key_prefix=f"{prefix}-todos")
    repo = RedisTodoRepository(settings=settings, todos_settings=TodosSettings(op_ttl_seconds=600))
    try:
        repo.replace("cap", _ITEMS)
        plan_key = repo.plan_key("cap")
        size = len(raw.hget(plan_key, "items") or b"")
        key = f"{prefix}:todos-raw"
        raw.set(key, b"x" * size)
        noop = LuaScript("bench_noop", "return 0")
        statuses = itertools.cycle(["in_progress", "pending"])
        get = _server_cpu(raw, lambda: repo.get("cap"), lambda: raw.get(key), calls, blocks)
        update = _server_cpu(
            raw,
            lambda: repo.update("cap", "i3", status=next(statuses)),
            lambda: noop(raw, keys=[plan_key], args=[]),
            calls,
            blocks,
        )
        note = f"10-item plan ({size} B)"
        return [
            _row("todos get", f"GET {size} B", get, note),
            _row("todos update status", "EVALSHA no-op", update, note),
        ]
    finally:
        repo.close()


def _fs(ctx: BenchContext, raw: redis.Redis, prefix: str, calls: int, blocks: int) -> list[Result]:
    import tempfile

    from deepagents_redis.core import RedisSettings
    from deepagents_redis.fs import RedisBackend

    from deepagents_redis_benchmarks.suites.fs import _4KB

    backend = RedisBackend(
        settings=RedisSettings(url=ctx.url, key_prefix=f"{prefix}-fs"),
        namespace="cap",
        blob_dir=tempfile.mkdtemp(prefix="bench-cap-"),
    )
    big = ("a line of a generated report, long enough to matter\n" * 6_000)[: 300 * 1024]
    key = f"{prefix}:fs-raw"
    try:
        backend.write("/doc/4k.txt", _4KB)
        raw.set(key, _4KB)
        read = _server_cpu(
            raw, lambda: backend.read("/doc/4k.txt"), lambda: raw.get(key), calls, blocks
        )
        write = _server_cpu(
            raw,
            lambda: backend.write("/doc/4k.txt", _4KB),
            lambda: raw.set(key, _4KB),
            calls,
            blocks,
        )
        write_big = _server_cpu(
            raw,
            lambda: backend.write("/doc/300k.txt", big),
            lambda: raw.set(key, big),
            max(3, calls // 10),
            blocks,
        )
        return [
            _row("RedisBackend read 4 KB", "GET 4 KB", read, "inline file: one HMGET"),
            _row(
                "RedisBackend write 4 KB",
                "SET 4 KB",
                write,
                "one op-id write script (content in its call)",
            ),
            _row(
                "RedisBackend write 300 KB",
                "SET 300 KB",
                write_big,
                "chunked: chunks staged by MULTI, committed by the script's RENAME",
            ),
        ]
    finally:
        backend.delete("/")
        backend.close()


def _checkpoint(
    ctx: BenchContext, raw: redis.Redis, prefix: str, calls: int, blocks: int
) -> list[Result]:
    from deepagents_redis.checkpoint import RedisSaver
    from deepagents_redis.core import RedisSettings

    from deepagents_redis_benchmarks.suites.checkpoint import conversation, conversation_ops

    saver = RedisSaver(settings=RedisSettings(url=ctx.url, key_prefix=f"{prefix}-ckpt"))
    results: list[Result] = []
    try:
        for pairs in (10, 400):
            messages = conversation(pairs)
            blob = saver.serde.dumps_typed(messages)[1]
            put, get = conversation_ops(saver, f"cap-{pairs}", messages)
            key = f"{prefix}:ckpt-raw-{pairs}"
            n = calls if pairs < 100 else max(3, calls // 10)
            put_cpu = _server_cpu(
                raw, put, lambda key=key, blob=blob: raw.set(key, blob), n, blocks
            )
            get_cpu = _server_cpu(raw, get, lambda key=key: raw.get(key), n, blocks)
            size = f"{len(blob) // 1024} KB"
            note = f"{2 * pairs} messages, a {size} messages blob"
            results += [
                _row(f"RedisSaver put ({size} blob)", f"SET {size}", put_cpu, note),
                _row(f"RedisSaver get_tuple ({size} blob)", f"GET {size}", get_cpu, note),
            ]
            saver.delete_thread(f"cap-{pairs}")
        return results
    finally:
        saver.close()


def _coord(
    ctx: BenchContext, raw: redis.Redis, prefix: str, calls: int, blocks: int
) -> list[Result]:
    from deepagents_redis.coord import Event, EventBus
    from deepagents_redis.core import RedisSettings

    bus = EventBus(
        settings=RedisSettings(url=ctx.url, key_prefix=f"{prefix}-coord"), namespace="cap"
    )
    event = Event(source="dar://bench/cap", type="dev.bench.tick", data={"n": 1})
    stream = f"{prefix}:coord-raw"
    payload = b"x" * 200
    try:
        publish = _server_cpu(
            raw,
            lambda: bus.publish("cap", event),
            lambda: raw.xadd(stream, {"e": payload}, maxlen=1000, approximate=True),
            calls,
            blocks,
        )
        return [_row("EventBus publish", "XADD MAXLEN ~", publish, "an unkeyed event: one XADD")]
    finally:
        bus.close()
