"""Run one workload through one fault and record what happened."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deepagents_redis_benchmarks.chaos._faults import FAULTS, Stage
from deepagents_redis_benchmarks.chaos._workloads import WORKLOADS

__all__ = ["Row", "Timing", "run_pair"]


@dataclass(frozen=True)
class Timing:
    """Seconds before, during and after the fault, and the pause between operations."""

    before: float = 2.0
    during: float = 3.0
    after: float = 3.0
    pace: float = 0.005


SHORT = Timing(before=0.4, during=0.8, after=0.8)


@dataclass
class Row:
    """The record of one (workload, fault) pair."""

    workload: str
    fault: str
    ops: int = 0
    acked: int = 0
    lost: int = 0
    duplicates: int = 0
    retried_ok: int = 0
    still_failed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    recovery_s: float | None = None
    window: tuple[float, float] = (0.0, 0.0)
    samples: list[tuple[float, float, str]] = field(default_factory=list)
    """(seconds since start, latency ms, outcome) of every operation."""


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


_AOF = {"appendonly": "yes", "appendfsync": "always"}
HEAL_LIMIT_S = 30.0
"""Longest a failover fault's window may last waiting for the topology to heal."""


@contextlib.contextmanager
def _topology(kind: str) -> Iterator[tuple[Stage, str, Literal["on", "off"]]]:
    """Private servers of one kind: `(stage, url the clients use, cluster setting)`."""
    import redis
    from deepagents_redis.core.embedded import EmbeddedRedis
    from deepagents_redis.testing import FaultProxy, LocalCluster, SentinelTopology

    if kind == "single":
        config = {**_AOF, "enable-debug-command": "local"}
        with (
            EmbeddedRedis(config=config, allow_fallback=False) as server,
            FaultProxy(server.url) as proxy,
        ):
            admin = redis.Redis.from_url(server.url, socket_timeout=10)
            try:
                yield Stage(server=server, proxy=proxy, admin=admin), proxy.url, "off"
            finally:
                admin.close()
        return
    if kind == "cluster":
        with LocalCluster(replicas=1, node_timeout_ms=1000) as cluster:
            yield Stage(cluster=cluster), cluster.url, "on"
        return
    servers: list[Any] = []

    def factory(config: dict[str, str] | None = None) -> Any:
        server = EmbeddedRedis(config={**_AOF, **(config or {})}, allow_fallback=False)
        servers.append(server)
        return server.start()

    with tempfile.TemporaryDirectory(prefix="chaos-sentinel-") as home:
        topo = None
        try:
            topo = SentinelTopology.start(
                factory, Path(home), replicas=1, sentinels=3, down_after_ms=1000
            )
            yield Stage(sentinel=topo), topo.url, "off"
        finally:
            if topo is not None:
                topo.stop()
            for server in servers:
                server.close()


def run_pair(workload_name: str, fault_name: str, timing: Timing) -> Row:
    """Start private servers (the fault's topology), run, fault, recover, verify.

    Returns:
        The row.
    """
    from deepagents_redis.core import RedisConnector, RedisSettings

    fault = FAULTS[fault_name]
    row = Row(workload_name, fault_name)
    with _topology(fault.topology) as (stage, url, cluster):
        settings = RedisSettings(
            url=url,
            key_prefix="chaos",
            cluster=cluster,
            deadline_seconds=1.0,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
        )
        connector = RedisConnector(settings=settings)
        workload = WORKLOADS[workload_name](connector)
        stage.hot_key = workload.hot_key
        acked: dict[int, Any] = {}
        failed: list[int] = []
        t0 = time.monotonic()
        phase = "before"
        counter = 0
        phases: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        outcomes: Counter[str] = Counter()

        def step() -> str:
            nonlocal counter
            i, counter = counter, counter + 1
            start = time.monotonic()
            try:
                token = workload.op(i)
                outcome = "miss" if token is False else "ok"
                acked[i] = token
            except Exception as exc:
                failed.append(i)
                outcome = type(exc).__name__
            latency = (time.monotonic() - start) * 1000
            row.samples.append((start - t0, latency, outcome))
            phases[phase].append(latency)
            outcomes[outcome] += 1
            return outcome

        def until(seconds: float) -> str | None:
            last = None
            while time.monotonic() - t0 < seconds:
                last = step()
                time.sleep(timing.pace)
            return last

        try:
            until(timing.before)
            phase = "during"
            fault_start = time.monotonic() - t0
            fault.start(stage)
            until(timing.before + timing.during)
            if fault.healed is not None:
                # a failover takes as long as it takes: the window lasts until it is done
                limit = time.monotonic() + HEAL_LIMIT_S
                while not fault.healed(stage) and time.monotonic() < limit:
                    step()
                    time.sleep(timing.pace)
            fault.stop(stage)
            fault_end = time.monotonic() - t0
            row.window = (fault_start, fault_end)
            phase = "after"
            while time.monotonic() - t0 < fault_end + timing.after:
                if step() == "ok" and row.recovery_s is None:
                    row.recovery_s = max(0.0, row.samples[-1][0] - fault_end)
                time.sleep(timing.pace)
            # the caller's retry of every failed operation, now that the server is back
            for i in failed:
                try:
                    acked[i] = workload.op(i)
                    row.retried_ok += 1
                except Exception:
                    row.still_failed += 1
            row.lost, row.duplicates = workload.verify(
                [token for token in acked.values() if token is not False]
            )
        finally:
            workload.close()
            connector.close()
    row.ops = counter
    row.acked = len(acked)
    row.outcomes = dict(outcomes)
    row.latency_ms = {
        name: {"p50": _percentile(values, 0.5), "p99": _percentile(values, 0.99)}
        for name, values in phases.items()
    }
    return row
