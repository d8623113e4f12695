"""`watch()`: observable gauges read when the exporter collects (a scrape, an export tick).

What a counter cannot say because it is state, not events: how much work waits on a coord
queue, how much is claimed and unacknowledged, how many dead letters sit there, and whether a
cache's circuit breaker is open. Each gauge callback reads Redis (a few commands per queue),
so it runs at the collection interval, not per operation; a failing read is skipped for that
collection (and logged), never raised into the exporter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from deepagents_redis.core import BreakerState
from deepagents_redis.observe._otel import PREFIX
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

__all__ = ["watch"]

log = logging.getLogger("deepagents_redis.observe")
_BREAKER = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


def _int(value: Any) -> int:
    if isinstance(value, bytes):
        value = value.decode()
    return int(value or 0)


def _group_info(reply: Any) -> dict[str, Any]:
    """XINFO GROUPS' entry for the workers' group (RESP2 flat list or RESP3 map)."""
    for group in reply or []:
        row = group if isinstance(group, dict) else dict(zip(group[::2], group[1::2], strict=False))
        row = {k.decode() if isinstance(k, bytes) else k: v for k, v in row.items()}
        name = row.get("name")
        if (name.decode() if isinstance(name, bytes) else name) == "workers":
            return row
    return {}


def watch(
    *,
    tasks: Any = None,
    agents: Sequence[str] = (),
    caches: Iterable[Any] = (),
    meter_provider: Any = None,
) -> Any:
    """Register observable gauges for coord queues and cache breakers.

    Args:
        tasks: A coord `TaskClient` (its connection and namespace are read).
        agents: The agents whose queues to watch.
        caches: `RedisLLMCache` / `RedisNodeCache` objects whose breaker state to report.
        meter_provider: Where the gauges go (default: the global provider).

    Returns:
        The meter (keep it alive as long as you want the gauges).

    Gauges (attributes: ``deepagents_redis.agent``, or ``deepagents_redis.cache``):
        ``deepagents_redis.coord.backlog``: tasks waiting for a worker (the group's lag);
        ``deepagents_redis.coord.pending``: tasks claimed and not yet acknowledged;
        ``deepagents_redis.coord.delayed``: retries waiting for their backoff;
        ``deepagents_redis.coord.dead_letters``: entries in the dead-letter stream;
        ``deepagents_redis.cache.breaker_state``: 0 closed, 1 half-open, 2 open.
    """
    meter = metrics.get_meter(f"{PREFIX}.gauges", meter_provider=meter_provider)
    watched = list(agents)

    memo: dict[str, Any] = {"at": -1.0, "rows": []}

    def queues(options: CallbackOptions) -> list[tuple[str, Observation]]:
        # one read of each queue per collection, shared by the four gauges' callbacks
        now = time.monotonic()
        if now - memo["at"] < 0.5:
            return list(memo["rows"])
        out: list[tuple[str, Observation]] = []
        memo["at"], memo["rows"] = now, out
        if tasks is None:
            return out
        client = tasks.connector.client()
        for agent in watched:
            keys = tasks.keys.queue(agent)
            attrs = {f"{PREFIX}.agent": agent}
            try:
                groups = (
                    client.execute_command("XINFO", "GROUPS", keys.stream)
                    if client.exists(keys.stream)
                    else []
                )
                group = _group_info(groups)
                # no group yet (no worker ever started): every entry waits
                lag = group.get("lag") if group else client.xlen(keys.stream)
                if lag is None:  # the server cannot tell (entries deleted): count them all
                    lag = client.xlen(keys.stream)
                out += [
                    ("backlog", Observation(_int(lag), attrs)),
                    ("pending", Observation(_int(group.get("pending")), attrs)),
                    ("delayed", Observation(_int(client.zcard(keys.delayed)), attrs)),
                    ("dead_letters", Observation(_int(client.xlen(keys.dlq)), attrs)),
                ]
            except Exception as exc:  # noqa: BLE001 - a collection must never fail the exporter
                log.warning(
                    "observe: could not read the queue of %r: %s", agent, type(exc).__name__
                )
        return out

    def gauge(kind: str, description: str) -> None:
        def callback(options: CallbackOptions) -> list[Observation]:
            return [obs for name, obs in queues(options) if name == kind]

        meter.create_observable_gauge(
            f"{PREFIX}.coord.{kind}", callbacks=[callback], unit="{task}", description=description
        )

    gauge("backlog", "Tasks waiting for a worker (the consumer group's lag).")
    gauge("pending", "Tasks claimed by a worker and not yet acknowledged.")
    gauge("delayed", "Retries waiting for their backoff.")
    gauge("dead_letters", "Entries in the dead-letter stream.")
    watched_caches = list(caches)

    def breakers(options: CallbackOptions) -> list[Observation]:
        return [
            Observation(
                _BREAKER[cache.breaker.state],
                {f"{PREFIX}.cache": f"{type(cache).__name__}#{index}"},
            )
            for index, cache in enumerate(watched_caches)
        ]

    meter.create_observable_gauge(
        f"{PREFIX}.cache.breaker_state",
        callbacks=[breakers],
        unit="1",
        description="A cache's circuit breaker: 0 closed, 1 half-open, 2 open.",
    )
    return meter
