"""`watch()`: observable gauges read when the exporter collects (a scrape, an export tick).

What a counter cannot say because it is state, not events: how much work waits on a coord
queue, how much is claimed and unacknowledged, how many dead letters sit there, whether a
cache's circuit breaker is open, and how many connections each pool holds and lends. The
queue gauges read Redis (a few commands per queue), so they run at the collection interval,
not per operation; a failing read is skipped for that collection (and logged), never raised
into the exporter. The breaker and pool gauges read process memory only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis
from deepagents_redis.core import BreakerState
from deepagents_redis.observe._otel import PREFIX
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

__all__ = ["pool_observations", "watch"]

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


def _pools(client: Any) -> list[Any]:
    """The connection pools behind a client: one, or one per node of a sync Cluster client.

    redis-py's asyncio Cluster client keeps connections per node without a pool object that
    can count them, so it reports none (documented on the observe page).
    """
    if isinstance(client, redis.RedisCluster):
        nodes: list[Any] = cast(Any, client).get_nodes()
        return [
            node.redis_connection.connection_pool
            for node in nodes
            if node.redis_connection is not None
        ]
    pool = getattr(client, "connection_pool", None)
    return [] if pool is None else [pool]


def pool_observations(connectors: Iterable[Any]) -> list[Observation]:
    """Connections per pool and state (`idle`, `used`) of the connectors' open clients.

    Uses redis-py's own `get_connection_count()` (its OpenTelemetry attributes: the pool's
    name and `db.client.connection.state`); creates no client and sends nothing.

    Args:
        connectors: `RedisConnector` objects.

    Returns:
        One observation per pool and state.
    """
    out: list[Observation] = []
    for connector in connectors:
        for flavour, client in connector.open_clients():
            for pool in _pools(client):
                try:
                    counts = pool.get_connection_count()
                except Exception as exc:  # noqa: BLE001 - a collection must never fail
                    log.debug("observe: pool not readable: %s", type(exc).__name__)
                    continue
                for count, attributes in counts:
                    attrs = {k: v for k, v in attributes.items() if isinstance(v, str | int)}
                    attrs[f"{PREFIX}.client"] = flavour
                    out.append(Observation(count, attrs))
    return out


def watch(
    *,
    tasks: Any = None,
    agents: Sequence[str] = (),
    caches: Iterable[Any] = (),
    connectors: Iterable[Any] = (),
    meter_provider: Any = None,
) -> Any:
    """Register observable gauges for coord queues, cache breakers and connection pools.

    Args:
        tasks: A coord `TaskClient` (its connection and namespace are read).
        agents: The agents whose queues to watch.
        caches: `RedisLLMCache` / `RedisNodeCache` objects whose breaker state to report.
        connectors: `RedisConnector` objects whose pools to report (e.g. `agent`'s shared
            one, `tasks.connector`).
        meter_provider: Where the gauges go (default: the global provider).

    Returns:
        The meter (keep it alive as long as you want the gauges).

    Gauges (attributes: ``deepagents_redis.agent``, ``deepagents_redis.cache``, or the
    pool's):
        ``deepagents_redis.coord.backlog``: tasks waiting for a worker (the group's lag);
        ``deepagents_redis.coord.pending``: tasks claimed and not yet acknowledged;
        ``deepagents_redis.coord.delayed``: retries waiting for their backoff;
        ``deepagents_redis.coord.dead_letters``: entries in the dead-letter stream;
        ``deepagents_redis.cache.breaker_state``: 0 closed, 1 half-open, 2 open;
        ``deepagents_redis.pool.connections``: connections of a pool by
        ``db.client.connection.state`` (``idle``, ``used``).
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
    watched_connectors = list(connectors)
    meter.create_observable_gauge(
        f"{PREFIX}.pool.connections",
        callbacks=[lambda options: pool_observations(watched_connectors)],
        unit="{connection}",
        description="Connections of a pool, idle or used (lent to a command).",
    )
    return meter
