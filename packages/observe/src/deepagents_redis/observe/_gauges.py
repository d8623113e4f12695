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
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis
from deepagents_redis.core import BreakerState, InvalidInputError
from deepagents_redis.observe._otel import PREFIX
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

__all__ = ["pool_observations", "unwatch", "watch"]

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


class _Queues:
    """One `watch()` call's coord queues, read once per collection for its four gauges."""

    def __init__(self, tasks: Any, agents: Sequence[str]) -> None:
        self.tasks = tasks
        self._agents = list(agents)
        self._at = -1.0
        self._rows: list[tuple[str, Observation]] = []

    def without(self, agents: Sequence[str]) -> _Queues | None:
        """These queues less `agents` (all of them when empty); None when none is left."""
        left = [a for a in self._agents if a not in agents] if agents else []
        return _Queues(self.tasks, left) if left else None

    def rows(self) -> list[tuple[str, Observation]]:
        # One read of each queue per collection, shared by the four gauges' callbacks. The
        # memo starts when the read ENDS: stamped at its start, a read slower than the memo
        # (a blackholed server: timeouts and retries) was done again by each gauge.
        if time.monotonic() - self._at < 0.5:
            return list(self._rows)
        out: list[tuple[str, Observation]] = []
        try:
            # May contact the server (cluster auto-detection) and raise: never into the SDK.
            client = self.tasks.connector.client()
        except Exception as exc:  # noqa: BLE001 - a collection must never fail the exporter
            log.warning("observe: no client for the coord queues: %s", type(exc).__name__)
            self._at, self._rows = time.monotonic(), out
            return []
        for i, agent in enumerate(self._agents):
            try:
                out += _queue_rows(self.tasks, client, agent)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # Every queue is on this one server: after one has timed out the others
                # would each cost the same timeouts, and the exporter waits for all of them.
                log.warning(
                    "observe: Redis unreachable reading the coord queues (%s); %d queue(s) "
                    "not reported this collection",
                    type(exc).__name__,
                    len(self._agents) - i,
                )
                break
        self._at, self._rows = time.monotonic(), out
        return list(out)


def _queue_rows(tasks: Any, client: Any, agent: str) -> list[tuple[str, Observation]]:
    """One queue's four gauges; [] if it could not be read (logged).

    Raises:
        redis.ConnectionError: The server is unreachable (the caller stops reading).
        redis.TimeoutError: Likewise.
    """
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
        return [
            ("backlog", Observation(_int(lag), attrs)),
            ("pending", Observation(_int(group.get("pending")), attrs)),
            ("delayed", Observation(_int(client.zcard(keys.delayed)), attrs)),
            ("dead_letters", Observation(_int(client.xlen(keys.dlq)), attrs)),
        ]
    except (redis.ConnectionError, redis.TimeoutError):
        raise
    except Exception as exc:  # noqa: BLE001 - a collection must never fail the exporter
        log.warning("observe: could not read the queue of %r: %s", agent, type(exc).__name__)
        return []


class _Watched:
    """Everything the `watch()` calls on one meter asked for; its gauges report all of it.

    OpenTelemetry keeps the first instrument of a name on a meter and drops a second
    registration's callbacks, so a second `watch()` (a process that is both a worker and
    an agent) was silently never reported. The gauges are created once per meter and read
    this, which every call extends.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queues: list[_Queues] = []
        self.caches: list[tuple[str, Any]] = []
        self.connectors: list[Any] = []

    def add(
        self, tasks: Any, agents: Sequence[str], caches: Iterable[Any], connectors: Iterable[Any]
    ) -> None:
        with self.lock:
            if tasks is not None:
                self.queues.append(_Queues(tasks, agents))
            for cache in caches:
                # numbered across calls, so two calls' caches never share a label
                label = f"{type(cache).__name__}#{len(self.caches)}"
                self.caches.append((label, cache))
            self.connectors.extend(connectors)

    def remove(
        self, tasks: Any, agents: Sequence[str], caches: Iterable[Any], connectors: Iterable[Any]
    ) -> None:
        # By identity, not equality: two equal-looking caches are two breakers.
        drop_caches = {id(cache) for cache in caches}
        drop_connectors = {id(connector) for connector in connectors}
        with self.lock:
            if tasks is not None:
                kept: list[_Queues] = []
                for queues in self.queues:
                    left = queues.without(agents) if queues.tasks is tasks else queues
                    if left is not None:
                        kept.append(left)
                self.queues = kept
            self.caches = [(n, c) for n, c in self.caches if id(c) not in drop_caches]
            self.connectors = [c for c in self.connectors if id(c) not in drop_connectors]

    def queue_rows(self) -> list[tuple[str, Observation]]:
        with self.lock:
            queues = list(self.queues)
        return [row for q in queues for row in q.rows()]

    def breakers(self) -> list[Observation]:
        with self.lock:
            caches = list(self.caches)
        return [
            Observation(_BREAKER[cache.breaker.state], {f"{PREFIX}.cache": label})
            for label, cache in caches
        ]

    def pools(self) -> list[Observation]:
        with self.lock:
            connectors = list(self.connectors)
        return pool_observations(connectors)


_registry_lock = threading.Lock()
_registry: weakref.WeakKeyDictionary[Any, _Watched] = weakref.WeakKeyDictionary()
"""What each meter provider's gauges report (held weakly: a provider shut down and dropped
takes its entry with it)."""


def _register_gauges(meter: Any, watched: _Watched) -> None:
    def gauge(kind: str, description: str) -> None:
        def callback(options: CallbackOptions) -> list[Observation]:
            return [obs for name, obs in watched.queue_rows() if name == kind]

        meter.create_observable_gauge(
            f"{PREFIX}.coord.{kind}", callbacks=[callback], unit="{task}", description=description
        )

    gauge("backlog", "Tasks waiting for a worker (the consumer group's lag).")
    gauge("pending", "Tasks claimed by a worker and not yet acknowledged.")
    gauge("delayed", "Retries waiting for their backoff.")
    gauge("dead_letters", "Entries in the dead-letter stream.")
    meter.create_observable_gauge(
        f"{PREFIX}.cache.breaker_state",
        callbacks=[lambda options: watched.breakers()],
        unit="1",
        description="A cache's circuit breaker: 0 closed, 1 half-open, 2 open.",
    )
    meter.create_observable_gauge(
        f"{PREFIX}.pool.connections",
        callbacks=[lambda options: watched.pools()],
        unit="{connection}",
        description="Connections of a pool, idle or used (lent to a command).",
    )


def _checked(
    tasks: Any, agents: Any, caches: Any, connectors: Any
) -> tuple[list[str], list[Any], list[Any]]:
    """`watch()`'s arguments as lists, or `InvalidInputError` before anything is registered.

    Bad arguments went unnoticed until a collection: a str for `agents` watched one queue
    per letter, agents without `tasks` were never watched, and a cache or connector of the
    wrong type raised in every collection (the SDK logs "Callback failed" and drops the
    gauge's other observations).
    """
    for name, value in (("agents", agents), ("caches", caches), ("connectors", connectors)):
        if isinstance(value, str | bytes):
            raise InvalidInputError(f"watch({name}=...) takes a list, not a single {value!r}")
    agents, caches, connectors = list(agents), list(caches), list(connectors)
    for agent in agents:
        if not isinstance(agent, str) or not agent:
            raise InvalidInputError(f"watch(agents=...): {agent!r} is not an agent name")
    if agents and tasks is None:
        raise InvalidInputError("watch(agents=...) needs tasks= (the TaskClient to read with)")
    for cache in caches:
        if not isinstance(getattr(getattr(cache, "breaker", None), "state", None), BreakerState):
            raise InvalidInputError(
                f"watch(caches=...): {type(cache).__name__} has no circuit breaker "
                "(pass RedisLLMCache or RedisNodeCache objects)"
            )
    for connector in connectors:
        if not callable(getattr(connector, "open_clients", None)):
            raise InvalidInputError(
                f"watch(connectors=...): {type(connector).__name__} is not a RedisConnector"
            )
    return agents, caches, connectors


def watch(
    *,
    tasks: Any = None,
    agents: Sequence[str] = (),
    caches: Iterable[Any] = (),
    connectors: Iterable[Any] = (),
    meter_provider: Any = None,
) -> Any:
    """Register observable gauges for coord queues, cache breakers and connection pools.

    Calling it again (with the same meter provider) adds to what is reported: a process that
    runs a worker and an agent can watch the worker's queues and the agent's caches in two
    calls.

    Args:
        tasks: A coord `TaskClient` (its connection and namespace are read).
        agents: The agents whose queues to watch.
        caches: `RedisLLMCache` / `RedisNodeCache` objects whose breaker state to report.
        connectors: `RedisConnector` objects whose pools to report (e.g. `agent`'s shared
            one, `tasks.connector`).
        meter_provider: Where the gauges go (default: the global provider).

    Returns:
        The meter (keep it alive as long as you want the gauges).

    Raises:
        InvalidInputError: An argument of the wrong kind (a str for a list, agents without
            `tasks`, a cache without a breaker, something that is not a connector); nothing
            is registered.

    Gauges (attributes: ``deepagents_redis.agent``, ``deepagents_redis.cache``, or the
    pool's):
        ``deepagents_redis.coord.backlog``: tasks waiting for a worker (the group's lag);
        ``deepagents_redis.coord.pending``: tasks claimed and not yet acknowledged;
        ``deepagents_redis.coord.delayed``: retries waiting for their backoff;
        ``deepagents_redis.coord.dead_letters``: entries in the dead-letter stream;
        ``deepagents_redis.cache.breaker_state``: 0 closed, 1 half-open, 2 open
        (``deepagents_redis.cache`` is the class and a number, counted across calls);
        ``deepagents_redis.pool.connections``: connections of a pool by
        ``db.client.connection.state`` (``idle``, ``used``).
    """
    agents, caches, connectors = _checked(tasks, agents, caches, connectors)
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    meter = metrics.get_meter(f"{PREFIX}.gauges", meter_provider=provider)
    with _registry_lock:
        # Keyed by provider: the SDK's hands back one meter per name, but the global proxy
        # provider (before an SDK is set) a new one per call.
        watched = _registry.get(provider)
        if watched is None:
            watched = _registry[provider] = _Watched()
            _register_gauges(meter, watched)
    watched.add(tasks, agents, caches, connectors)
    return meter


def unwatch(
    *,
    tasks: Any = None,
    agents: Sequence[str] = (),
    caches: Iterable[Any] = (),
    connectors: Iterable[Any] = (),
    meter_provider: Any = None,
) -> None:
    """Stop reporting what `watch()` was given: the gauges let go of those objects.

    `watch()` keeps what it reports (a process that builds a cache per tenant and drops it
    would otherwise keep every one alive and reported for good). Objects are matched by
    identity; what was never watched is ignored, so calling it twice is harmless. The gauges
    themselves stay registered (OpenTelemetry cannot take an instrument back) and report
    what is still watched.

    Args:
        tasks: A coord `TaskClient` given to `watch()`: its queues are no longer read.
        agents: Only these agents' queues of `tasks` (default: all of them).
        caches: Caches whose breaker state is no longer reported.
        connectors: Connectors whose pools are no longer reported.
        meter_provider: The provider given to `watch()` (default: the global provider).

    Raises:
        InvalidInputError: An argument of the wrong kind, as `watch()` checks them.
    """
    agents, caches, connectors = _checked(tasks, agents, caches, connectors)
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    with _registry_lock:
        watched = _registry.get(provider)
    if watched is not None:
        watched.remove(tasks, agents, caches, connectors)
