"""Timing primitives: ``Timing``, ``Result`` and the ``BenchContext`` suites receive."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Summary of one measured operation, in seconds per call.

    Attributes:
        median: Median seconds per call.
        p99: 99th percentile seconds per call (nearest rank).
        samples: How many calls were measured.
    """

    median: float
    p99: float
    samples: int

    @classmethod
    def from_samples(cls, samples: list[float]) -> Timing:
        """Summarise raw per-call durations."""
        ordered = sorted(samples)
        rank = max(0, min(len(ordered) - 1, round(0.99 * len(ordered)) - 1))
        return cls(median=statistics.median(ordered), p99=ordered[rank], samples=len(ordered))


@dataclass
class Result:
    """One row of the results table.

    Attributes:
        suite: Suite name (filled in by the runner).
        name: What was measured ("ours"), e.g. ``"RedisLLMCache hit 1 KB"``.
        ours: Timing of ``name``.
        baseline: What it is compared with, e.g. ``"redis-py GET 1 KB"``; None for rows that
            just state a physical limit.
        baseline_timing: Timing of the baseline, measured interleaved in the same run.
        notes: Anything a reader needs to interpret the row (sizes, counts, caveats).
    """

    name: str
    ours: Timing
    baseline: str | None = None
    baseline_timing: Timing | None = None
    notes: str = ""
    suite: str = ""

    @property
    def ratio(self) -> float | None:
        """``ours.median / baseline.median`` (below 1 means we are faster)."""
        if self.baseline_timing is None or self.baseline_timing.median == 0:
            return None
        return self.ours.median / self.baseline_timing.median

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, ratio included."""
        data = asdict(self)
        data["ratio"] = self.ratio
        return data


@dataclass
class BenchContext:
    """What a suite's ``run(ctx)`` receives.

    Attributes:
        url: URL of the Redis server to use (a private one unless ``--url`` was given; use
            your own key prefix and delete what you write either way).
        smoke: Tiny iteration counts (CI); numbers are then only a sanity check.
        iterations: Default measured calls per operation (smaller when ``smoke``).
        warmup: Default unmeasured calls before measuring.
        scratch: Free-form per-suite storage.
    """

    url: str
    smoke: bool = False
    iterations: int = 2000
    warmup: int = 200
    scratch: dict[str, Any] = field(default_factory=dict)

    def n(self, full: int) -> int:
        """Scale an iteration count: ``full`` normally, a handful in smoke mode."""
        return max(3, full // 200) if self.smoke else full

    def measure(
        self, fn: Callable[[], object], *, iterations: int | None = None, warmup: int | None = None
    ) -> Timing:
        """Time one callable on its own."""
        return self.compare(fn, None, iterations=iterations, warmup=warmup)[0]

    def compare(
        self,
        ours: Callable[[], object],
        baseline: Callable[[], object] | None,
        *,
        iterations: int | None = None,
        warmup: int | None = None,
    ) -> tuple[Timing, Timing | None]:
        """Time two callables side by side, interleaved call by call.

        Interleaving (and swapping which goes first every other round) spreads CPU
        frequency changes, other tenants' load and GC over both equally, which is what makes
        the ratio meaningful on a shared machine. GC is paused while measuring.

        Args:
            ours: Our operation.
            baseline: The baseline operation, or None to time ``ours`` alone.
            iterations: Measured calls of each; defaults to ``ctx.iterations``.
            warmup: Unmeasured calls of each first; defaults to ``ctx.warmup``.

        Returns:
            ``(ours, baseline)`` timings; baseline is None when not given.
        """
        iterations = self.iterations if iterations is None else iterations
        warmup = self.warmup if warmup is None else warmup
        fns = [ours] if baseline is None else [ours, baseline]
        for _ in range(warmup):
            for fn in fns:
                fn()
        samples: list[list[float]] = [[] for _ in fns]
        clock = time.perf_counter
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for i in range(iterations):
                order = range(len(fns)) if i % 2 == 0 else reversed(range(len(fns)))
                for index in order:
                    start = clock()
                    fns[index]()
                    samples[index].append(clock() - start)
        finally:
            if gc_was_enabled:
                gc.enable()
        timings = [Timing.from_samples(s) for s in samples]
        return timings[0], (timings[1] if baseline is not None else None)

    def acompare(
        self,
        ours: Callable[[], Awaitable[object]],
        baseline: Callable[[], Awaitable[object]] | None,
        *,
        iterations: int | None = None,
        warmup: int | None = None,
        setup: Callable[[], Awaitable[object]] | None = None,
        teardown: Callable[[], Awaitable[object]] | None = None,
    ) -> tuple[Timing, Timing | None]:
        """Like :meth:`compare` for coroutine functions, in one fresh event loop.

        Args:
            ours: Our coroutine function.
            baseline: The baseline coroutine function, or None.
            iterations: Measured calls of each.
            warmup: Unmeasured calls of each first.
            setup: Awaited once inside the loop before anything (create async clients here).
            teardown: Awaited once inside the loop at the end (close them here).

        Returns:
            ``(ours, baseline)`` timings.
        """
        iterations = self.iterations if iterations is None else iterations
        warmup = self.warmup if warmup is None else warmup

        async def main() -> tuple[Timing, Timing | None]:
            if setup is not None:
                await setup()
            try:
                fns = [ours] if baseline is None else [ours, baseline]
                for _ in range(warmup):
                    for fn in fns:
                        await fn()
                samples: list[list[float]] = [[] for _ in fns]
                clock = time.perf_counter
                for i in range(iterations):
                    order = range(len(fns)) if i % 2 == 0 else reversed(range(len(fns)))
                    for index in order:
                        start = clock()
                        await fns[index]()
                        samples[index].append(clock() - start)
                timings = [Timing.from_samples(s) for s in samples]
                return timings[0], (timings[1] if baseline is not None else None)
            finally:
                if teardown is not None:
                    await teardown()

        return asyncio.run(main())


def drop_prefix(url: str, prefix: str) -> int:
    """Delete every key under a suite's own random key prefix (``<prefix>:*``).

    SCAN with a MATCH (never ``KEYS``) and UNLINK in unpipelined batches of 500, so it works on
    a big namespace and, key by key, on a Cluster URL too.

    Args:
        url: The server the suite wrote to.
        prefix: The suite's prefix (random per run: nothing else can live under it).

    Returns:
        How many keys were deleted.
    """
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1_000))
        for start in range(0, len(keys), 500):
            pipe = client.pipeline(transaction=False)
            for key in keys[start : start + 500]:
                pipe.unlink(key)
            pipe.execute()
        return len(keys)
    finally:
        client.close()
