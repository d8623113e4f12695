"""Suite ``coord``: remote tasks and events against their floors, arq and Celery.

* submit -> result of a no-op task, one in-process worker: ours vs a raw Streams round trip
  (client ``XADD``; worker ``XREADGROUP`` + ``XADD`` reply; client ``XREAD BLOCK``: the floor
  any Streams queue pays), vs arq 0.25 (its own environment, polling its result every
  1 ms, the fastest it allows) and vs Celery 5.5 on its Redis broker and result backend (its
  own environment, one ``--pool solo`` worker process); both skipped in ``--smoke``.
* the same raw floor with its worker on asyncio (``redis.asyncio``), beside the sync floor and
  beside ours: what an asyncio worker pays whatever the queue (ours runs on asyncio).
* event publish -> receive by a live listener: `EventBus.publish` + `tail` vs raw
  ``XADD``/``XREAD BLOCK`` and vs pub/sub ``PUBLISH``/``SUBSCRIBE``.
* throughput of no-op tasks with 1, 2 and 4 worker processes (how it grows).

The no-op task is an ``async def`` in every row compared with arq (arq's own job is an
``async def``, and a worker runs an async agent on its event loop). A sync agent runs on a
thread (`asyncio.to_thread`, so a blocking agent never stalls the worker): the rows marked
"sync no-op agent" measure that hop, and compare only with our own floor.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from deepagents_redis_benchmarks._harness import BenchContext, Result, Timing


def _wait(cond: Callable[[], bool], seconds: float = 30) -> None:
    end = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("benchmark setup did not settle")
        time.sleep(0.002)


class _InProcessWorker:
    """A `Worker` on its own thread and event loop."""

    def __init__(self, settings: Any, agents: dict[str, Any], **options: Any) -> None:
        import asyncio

        from deepagents_redis.coord import Worker
        from deepagents_redis.core import RedisConnector

        self.conn = RedisConnector(settings=settings)
        self.worker = Worker(connector=self.conn, agents=agents, **options)

        async def serve() -> None:
            try:
                await self.worker.arun()
            finally:
                await self.conn.aclose()

        self.thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.worker.stop()
        self.thread.join(timeout=30)


def _raw_floor(
    url: str, prefix: str, *, on_asyncio: bool = False
) -> tuple[Callable[[], object], Callable[[], None]]:
    """A raw Streams request/reply: the least a Streams task queue can cost.

    Args:
        url: The server.
        prefix: Key prefix of the run.
        on_asyncio: Run the worker on an asyncio loop (``redis.asyncio``), as ours is: the
            same four commands, so what it adds to the sync floor is what asyncio itself
            costs a worker, whatever the queue on top of it.
    """
    import asyncio

    import redis.asyncio

    client = redis.Redis.from_url(url)
    kind = "a" if on_asyncio else ""
    queue, reply = f"{prefix}:raw{kind}q", f"{prefix}:raw{kind}r"
    client.xgroup_create(queue, "g", "0", mkstream=True)
    stop = threading.Event()

    def serve() -> None:
        server = redis.Redis.from_url(url)
        try:
            while not stop.is_set():
                got = server.xreadgroup("g", "w", {queue: ">"}, count=1, block=100)
                for _stream, rows in got or ():
                    for eid, _fields in rows:
                        server.xack(queue, "g", eid)
                        server.xadd(reply, {"r": b"1"})
        finally:
            server.close()

    async def aserve() -> None:
        server = redis.asyncio.Redis.from_url(url)
        try:
            while not stop.is_set():
                got = await server.xreadgroup("g", "w", {queue: ">"}, count=1, block=100)
                for _stream, rows in got or ():
                    for eid, _fields in rows:
                        await server.xack(queue, "g", eid)
                        await server.xadd(reply, {"r": b"1"})
        finally:
            await server.aclose()

    target = (lambda: asyncio.run(aserve())) if on_asyncio else serve
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    last = ["0-0"]

    def roundtrip() -> object:
        client.xadd(queue, {"t": b"x"})
        got = client.xread({reply: last[0]}, count=1, block=5_000)
        last[0] = got[0][1][0][0].decode()
        return got

    def close() -> None:
        stop.set()
        thread.join(timeout=5)
        client.close()

    return roundtrip, close


def _probe(
    what: str, requirement: str, script: str, *args: str
) -> tuple[dict[str, Any] | None, str]:
    """Run a probe script in its own environment (`requirement` installed on the fly, never in
    our workspace); its JSON, or None and why not."""
    uv = shutil.which("uv")
    if uv is None:
        return None, f"{what} not measured: uv not on PATH"
    probe = Path(__file__).resolve().parent.parent / script
    proc = subprocess.run(
        [uv, "run", "--quiet", "--no-project", "--with", requirement, "python", str(probe), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        return None, f"{what} not measured: {proc.stderr.strip().splitlines()[-1:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), ""


def _arq_probe(*args: str) -> tuple[dict[str, Any] | None, str]:
    """arq 0.25 (see `_arq_probe.py` for why that version and why its own environment)."""
    return _probe("arq", "arq==0.25.0", "_arq_probe.py", *args)


def _celery(url: str, n: int, warmup: int) -> tuple[Timing | None, str]:
    data, why = _probe(
        "Celery", "celery[redis]==5.5.*", "_celery_probe.py", url, str(n), str(warmup)
    )
    if data is None:
        return None, why
    return Timing.from_samples(data["samples"]), (
        "Celery 5.5 in its own env: Redis broker and result backend, 1 worker process "
        "(--pool solo), the client waits on AsyncResult.get()"
    )


def _arq(url: str, n: int, warmup: int) -> tuple[Timing | None, str]:
    data, why = _arq_probe(url, str(n), str(warmup))
    if data is None:
        return None, why
    return Timing.from_samples(data["samples"]), "arq 0.25 in its own env, result polled every 1 ms"


def _events(ctx: BenchContext, settings: Any, prefix: str) -> list[Result]:
    from deepagents_redis.coord import Event, EventBus

    bus = EventBus(settings=settings, namespace="bench")
    raw = redis.Redis.from_url(ctx.url)
    listener = redis.Redis.from_url(ctx.url)
    seen: dict[str, threading.Event] = {
        "ours": threading.Event(),
        "raw": threading.Event(),
        "pubsub": threading.Event(),
    }
    stop = threading.Event()
    raw_stream, channel = f"{prefix}:rawev", f"{prefix}:chan"

    def tail_ours() -> None:
        for _ in bus.tail("bench", block=0.1):
            seen["ours"].set()
            if stop.is_set():
                return

    def tail_raw() -> None:
        last = "$"
        while not stop.is_set():
            got = listener.xread({raw_stream: last}, count=100, block=100)
            for _s, rows in got or ():
                last = rows[-1][0].decode()
                seen["raw"].set()

    pubsub = raw.pubsub()
    pubsub.subscribe(channel)
    pubsub.get_message(timeout=1)

    def tail_pubsub() -> None:
        while not stop.is_set():
            if pubsub.get_message(timeout=0.1):
                seen["pubsub"].set()

    threads = [threading.Thread(target=f, daemon=True) for f in (tail_ours, tail_raw, tail_pubsub)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    event = Event(source="dar://bench/b", type="dev.bench.tick", data={"n": 1})
    sender = redis.Redis.from_url(ctx.url)

    def one(kind: str, send: Callable[[], object]) -> Callable[[], None]:
        def go() -> None:
            seen[kind].clear()
            send()
            if not seen[kind].wait(5):
                raise TimeoutError(kind)

        return go

    ours_fn = one("ours", lambda: bus.publish("bench", event))
    raw_fn = one("raw", lambda: sender.xadd(raw_stream, {"e": b"x" * 200}))
    pub_fn = one("pubsub", lambda: sender.publish(channel, b"x" * 200))
    n = ctx.n(2_000)
    o, b = ctx.compare(ours_fn, raw_fn, iterations=n, warmup=ctx.n(200))
    _, p = ctx.compare(ours_fn, pub_fn, iterations=n, warmup=ctx.n(200))
    stop.set()
    bus.publish("bench", event)  # wakes the EventBus listener so it sees `stop`
    for t in threads:
        t.join(timeout=5)
    pubsub.close()
    for c in (raw, listener, sender):
        c.close()
    bus.close()
    note = (
        "publish to a live listener's wake-up, sequential; listener in a thread of the same process"
    )
    return [
        Result("event publish -> receive (EventBus)", o, "raw XADD -> XREAD BLOCK", b, notes=note),
        Result(
            "event publish -> receive (EventBus)",
            o,
            "pub/sub PUBLISH -> listener (lossy)",
            p,
            notes="pub/sub loses messages without a listener; Streams keep them",
        ),
    ]


_WORKER_SCRIPT = """
import sys
from deepagents_redis.coord import Worker
from deepagents_redis.core import RedisSettings

async def noop(_x):
    return 1

settings = RedisSettings(url=sys.argv[1], key_prefix=sys.argv[2])
agent = (lambda _x: 1) if sys.argv[3] == "sync" else noop
Worker(settings=settings, agents={"noop": agent}, namespace="bench-tp", concurrency=8,
       block_seconds=0.5).run()
"""


async def _noop(_x: object) -> int:
    return 1


def _throughput(ctx: BenchContext, prefix: str) -> list[Result]:
    """Tasks per second that 1, 2 and 4 worker processes drain from a full queue.

    The queue is filled first (no worker running), then the workers start; the rate is
    measured on the server's clock, from the first run's start to the last run's end (the
    task records), so neither process start-up nor the submitting client is counted.
    """
    from deepagents_redis.coord import TaskClient
    from deepagents_redis.core import RedisSettings

    runs = [(1, "async")] if ctx.smoke else [(1, "async"), (2, "async"), (4, "async"), (1, "sync")]
    n = ctx.n(4_000)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(_WORKER_SCRIPT)
        for workers, kind in runs:
            ns_prefix = f"{prefix}-tp{workers}{kind}"
            client = TaskClient(
                settings=RedisSettings(url=ctx.url, key_prefix=ns_prefix),
                namespace="bench-tp",
                check_agents=False,
                max_backlog=1_000_000,
            )
            ids = [client.submit("noop", None) for _ in range(n)]
            procs = [
                subprocess.Popen([sys.executable, str(script), ctx.url, ns_prefix, kind])
                for _ in range(workers)
            ]
            try:
                infos = [client.join(task_id, timeout=300) for task_id in ids]
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait(timeout=30)
                client.close()
            first = min(i.started_at for i in infos if i.started_at)
            last = max(i.ended_at for i in infos if i.ended_at)
            took = max((last - first).total_seconds(), 1e-3)
            per = took / n
            baseline, base_timing, vs = None, None, ""
            if workers == 1 and kind == "async" and not ctx.smoke:
                data, why = _arq_probe("throughput", ctx.url, str(n))
                if data is None:
                    vs = f"; {why}"
                else:
                    arq_per = float(data["seconds"]) / int(data["done"])
                    baseline = "arq 0.25, 1 worker process (max_jobs 8, burst)"
                    base_timing = Timing(arq_per, arq_per, int(data["done"]))
                    vs = f"; arq: {int(data['done']) / float(data['seconds']):,.0f} tasks/s"
            what = "async no-op" if kind == "async" else "sync no-op agent (on a thread)"
            results.append(
                Result(
                    f"throughput, {workers} worker process(es)"
                    + ("" if kind == "async" else ", sync no-op agent"),
                    Timing(per, per, n),
                    baseline,
                    base_timing,
                    notes=(
                        f"{n / took:,.0f} tasks/s ({n} {what} tasks drained from a full queue, "
                        f"concurrency 8 per worker, first start to last end){vs}"
                    ),
                )
            )
    return results


def run(ctx: BenchContext) -> list[Result]:
    """Measure remote tasks and events against their floors, arq and Celery."""
    # Client, worker and listener share one process here: with CPython's default 5 ms GIL
    # switch interval every thread hand-off would cost milliseconds that a real deployment
    # (separate processes) never pays, on our side and the baselines' alike.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    try:
        return _run(ctx)
    finally:
        sys.setswitchinterval(previous)


def _run(ctx: BenchContext) -> list[Result]:
    from deepagents_redis.coord import TaskClient
    from deepagents_redis.core import RedisSettings

    prefix = f"bench-coord-{uuid.uuid4().hex[:8]}"
    settings = RedisSettings(url=ctx.url, key_prefix=prefix)
    results: list[Result] = []
    worker = _InProcessWorker(
        settings,
        {"noop": _noop, "noop_sync": lambda _x: 1},
        namespace="bench",
        concurrency=4,
        block_seconds=0.5,
    )
    client = TaskClient(settings=settings, namespace="bench", max_backlog=1_000_000)
    floor, close_floor = _raw_floor(ctx.url, prefix)
    async_floor, close_async_floor = _raw_floor(ctx.url, prefix, on_asyncio=True)
    try:
        _wait(lambda: bool(client.workers()))
        roundtrip = lambda: client.result(client.submit("noop", None), timeout=10)  # noqa: E731
        n = ctx.n(1_000)
        o, b = ctx.compare(roundtrip, floor, iterations=n, warmup=ctx.n(100))
        results.append(
            Result(
                "submit -> result, no-op task, 1 worker",
                o,
                "raw XADD -> XREADGROUP -> XADD -> XREAD",
                b,
                notes=(
                    "async no-op agent; ours: create record + enqueue, claim (fence, lease), "
                    "finish (fenced), ack; the client wakes on the task's end list "
                    "(BLMOVE) and reads its outcome in the same round trip"
                ),
            )
        )

        # The floor with an asyncio worker, beside the sync one and beside ours: how much of
        # the distance to the sync floor asyncio itself takes.
        af, f2 = ctx.compare(async_floor, floor, iterations=n, warmup=ctx.n(100))
        results.append(
            Result(
                "floor: raw request/reply, asyncio worker",
                af,
                "raw XADD -> XREADGROUP -> XADD -> XREAD",
                f2,
                notes="the same four commands; the worker's client is redis.asyncio",
            )
        )
        o3, af3 = ctx.compare(roundtrip, async_floor, iterations=n, warmup=ctx.n(100))
        results.append(
            Result(
                "submit -> result, no-op task, 1 worker",
                o3,
                "raw request/reply, asyncio worker",
                af3,
                notes="ours beside the floor whose worker also runs on asyncio",
            )
        )

        def sync_trip() -> object:
            return client.result(client.submit("noop_sync", None), timeout=10)

        o_sync, b_sync = ctx.compare(sync_trip, floor, iterations=n, warmup=ctx.n(100))
        results.append(
            Result(
                "submit -> result, sync no-op agent (on a thread), 1 worker",
                o_sync,
                "raw XADD -> XREADGROUP -> XADD -> XREAD",
                b_sync,
                notes="a sync agent runs on a thread (asyncio.to_thread): the hop's cost",
            )
        )
        if ctx.smoke:
            results.append(
                Result(
                    "submit -> result vs arq",
                    o,
                    "arq",
                    None,
                    notes="arq not measured in --smoke (it is installed on the fly)",
                )
            )
        else:
            arq, note = _arq(ctx.url, n, ctx.n(100))
            results.append(
                Result(
                    "submit -> result, no-op task, 1 worker",
                    o,
                    "arq enqueue_job -> job.result",
                    arq,
                    notes=note,
                )
            )
            celery, note = _celery(ctx.url, n, ctx.n(100))
            results.append(
                Result(
                    "submit -> result, no-op task, 1 worker",
                    o,
                    "Celery delay() -> AsyncResult.get()",
                    celery,
                    notes=note,
                )
            )
    finally:
        close_floor()
        close_async_floor()
        worker.close()
        client.close()
    results += _events(ctx, settings, prefix)
    results += _throughput(ctx, prefix)
    _cleanup(ctx.url, prefix)
    return results


def _cleanup(url: str, prefix: str) -> None:
    raw = redis.Redis.from_url(url)
    try:
        for key in raw.scan_iter(match=f"{prefix}*", count=1_000):
            raw.delete(key)
    finally:
        raw.close()
