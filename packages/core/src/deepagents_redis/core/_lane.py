"""A short path for the commands our sync standalone clients send.

redis-py 8.1's `Redis.execute_command` wraps each command's send and read in per-call
bookkeeping: a pool checkout that polls the socket for stray data (`can_read`: a non-blocking
`recv` and two `settimeout` calls), connection-count and duration hooks for its own
OpenTelemetry metrics that run even when those are off, and a release under the pool's lock.
On this project's machines that was ~13 µs of CPU per command on top of the ~26 µs the
connection's own send and read cost (benchmarks suite `core`, row "create_client() GET").

A `LaneRedis` (the client `create_client` builds for a standalone or unix-socket server) sends
plain commands on connections of its own lane instead, and keeps everything that decides what
a command does: the same connection class (deadline clamps, health checks, our RESP packer),
the same retry object and failure callback (disconnect, then retry within the deadline), the
same reply callbacks. What it drops is the poll for stray data, and it can drop it because a
lane connection is never handed to anyone else and is closed on every failure that could
leave a reply half read: only an error reply (read whole) keeps the socket.

The lane steps aside, and redis-py's own path runs, whenever its shortcut could change what
a caller sees: redis-py's OpenTelemetry metrics turned on, its `execute_command` wrapped by a
tracer, a client-side cache (`pool.cache`), a single-connection client, or the lane's share
of the pool used up.

A plain pipeline (no transaction, no WATCH, no script objects) takes the lane too
(`LaneRedis.lane_pipeline`): redis-py's own `_execute_pipeline` runs on a lane connection, so
packing, reply callbacks and "the first error reply is raised after every reply is read"
stay redis-py's; only the checkout's poll and the disabled metric hooks go (a two-command
pipeline ~40% less CPU, benchmarks suite `core`). The driver's `Pipeline` request goes one
step further (`LaneRedis.lane_commands`): the same packing, parsing and error rule without
building a redis-py `Pipeline` object at all, whose construction, queueing and reset cost
more than the round trip's own work. Transactions and pub/sub always use redis-py's pool.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Sequence
from typing import Any

import redis
import redis.exceptions as rexc

_log = logging.getLogger("deepagents_redis.core")

__all__ = [
    "IdleLane",
    "LaneRedis",
    "enable_lane",
    "lane_counts",
    "metrics_off",
    "plain_commands",
    "plain_pipeline",
]

_recorder: Any
_arecorder: Any
_otel: Any
try:  # redis-py's own metrics (8.x); the lanes step aside while they are on.
    from redis.asyncio.observability import recorder as _arecorder
    from redis.observability import recorder as _recorder
    from redis.observability.providers import get_observability_instance as _otel
except ImportError:  # pragma: no cover - older redis-py has no such hooks
    _recorder = _arecorder = _otel = None

# The attribute naming a pool count's state in redis-py's `get_connection_count()`.
_STATE_ATTRIBUTE = "db.client.connection.state"

# Bumped in a forked child: a lane's connections belong to the process that opened them.
_FORK_EPOCH = 0


def _forked() -> None:
    global _FORK_EPOCH
    _FORK_EPOCH += 1


os.register_at_fork(after_in_child=_forked)


# redis-py's own `Redis.execute_command`, as shipped. Tracers (OpenTelemetry's redis
# instrumentation, Datadog, Sentry) wrap that class attribute; the lane must not hide
# commands from them.
_SHIPPED_EXECUTE = inspect.unwrap(redis.Redis.__dict__["execute_command"])
# And its `Pipeline.execute`, which the same tracers wrap: a wrapped one keeps every
# pipeline on redis-py's path, where the tracer sees it.
_SHIPPED_PIPELINE = inspect.unwrap(redis.client.Pipeline.__dict__["execute"])


def lane_counts(
    counts: list[tuple[int, dict[str, Any]]], idle: int
) -> list[tuple[int, dict[str, Any]]]:
    """A pool's `get_connection_count()` with `idle` lane connections moved from used to idle.

    Lane connections are listed as in use by the pool (so its bound and its disconnect()
    cover them); an idle one is not lent to any command, and a gauge should say so.
    """
    if not idle:
        return counts
    out = []
    for count, attributes in counts:
        state = attributes.get(_STATE_ATTRIBUTE)
        if state == "idle":
            count += idle
        elif state == "used":
            count = max(0, count - idle)
        out.append((count, attributes))
    return out


def metrics_off() -> bool:
    """Whether redis-py's own OpenTelemetry metrics are off (sync and asyncio recorders)."""
    if _otel is None:
        return True
    return (
        _recorder._metrics_collector is None
        and getattr(_arecorder, "_async_metrics_collector", None) is None
        and _otel().get_provider_manager() is None
    )


def plain_pipeline(pipe: Any) -> bool:
    """Whether a filled pipeline (sync or asyncio) has nothing but commands.

    No MULTI, no WATCH, no script objects to load; its transaction flag (named differently
    in the two) is checked by the caller.
    """
    return bool(pipe.command_stack) and not (
        pipe.explicit_transaction or pipe.watching or pipe.scripts
    )


# Commands a redis-py pipeline treats specially (WATCH runs at once, the others end or start
# a transaction, HIMPORT prepares fieldsets first): a request holding one builds a real
# `Pipeline` and takes redis-py's path.
_PIPELINE_SPECIAL = frozenset({"WATCH", "UNWATCH", "MULTI", "EXEC", "DISCARD", "HIMPORT"})


def plain_commands(cmds: Sequence[tuple[Any, ...]]) -> bool:
    """Whether `cmds` may be sent as a plain pipeline without a redis-py `Pipeline` object."""
    if not cmds:
        return False
    for cmd in cmds:
        name = cmd[0]
        if not isinstance(name, str) or name.upper() in _PIPELINE_SPECIAL:
            return False
    return True


def _untouched() -> bool:
    """Whether the lane may serve: redis-py's metrics off and nobody wraps its commands."""
    return redis.Redis.__dict__["execute_command"] is _SHIPPED_EXECUTE and metrics_off()


class IdleLane:
    """The idle connections of one client's lane (LIFO; list pop/append are atomic)."""

    __slots__ = ("_idle", "_pool")

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._idle: list[Any] = []

    def give_back(self) -> Any:
        """An idle lane connection for the pool to use as its own, or None."""
        try:
            return self._idle.pop()
        except IndexError:
            return None


class _Lane(IdleLane):
    """The sync lane: its connections, the process that opened them."""

    __slots__ = ("_epoch",)

    def __init__(self, pool: Any) -> None:
        super().__init__(pool)
        self._epoch = _FORK_EPOCH

    def checkout(self) -> Any:
        """An idle lane connection, a new one, or None when the pool has none left."""
        pool = self._pool
        if self._epoch != _FORK_EPOCH:
            # A forked child: the parent's sockets are not ours to use. The pool forgets
            # them too (its own pid check), before the lane counts against its bound.
            self._idle = []
            self._epoch = _FORK_EPOCH
            pool._checkpid()
        conn = self.give_back()
        if conn is not None:
            return conn
        with pool._lock:
            try:
                # Counted against max_connections like any of the pool's connections, and
                # listed as in use so the pool's disconnect() (client.close()) closes it.
                conn = redis.ConnectionPool.make_connection(pool)
            except rexc.MaxConnectionsError:
                return None
            pool._in_use_connections.add(conn)
        return conn

    def checkin(self, conn: Any) -> None:
        should_reconnect = getattr(conn, "should_reconnect", None)  # redis-py 6+
        try:
            if should_reconnect is not None and should_reconnect():
                conn.disconnect()  # a maintenance notification asked for a fresh socket
        finally:
            # Back to the lane even when closing failed: the pool lists it as in use, so a
            # lost one was a slot lost for good (it reconnects on its next use).
            self._idle.append(conn)

    def call(self, client: Any, conn: Any, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        def attempt() -> Any:
            # redis-py's own send-and-parse of one command on a connection it was handed:
            # reply callbacks, reply options (NEVER_DECODE, EMPTY_RESPONSE, keys) and its
            # per-connection commands (HIMPORT SET) behave exactly as on its pool path.
            return client._send_command_parse_response(conn, args[0], *args, **options)

        return self.run(conn, attempt)

    def run(self, conn: Any, attempt: Any) -> Any:
        """Run `attempt` on the lane connection `conn` with its retry, then check it in."""

        def failed(error: BaseException, failures: int) -> None:
            conn.disconnect()

        try:
            reply = conn.retry.call_with_retry(attempt, failed, with_failure_count=True)
        except rexc.ResponseError:
            # An error reply is read whole: the socket is clean.
            self.checkin(conn)
            raise
        except BaseException:
            # Anything else (a timeout, an interrupt, a bug in a callback) may have left a
            # command half sent or a reply half read: the socket goes.
            try:
                conn.disconnect()
            except Exception as close_error:  # noqa: BLE001 - the call's own error is raised
                _log.debug("closing a failed lane connection failed: %r", close_error)
            finally:
                self.checkin(conn)
            raise
        self.checkin(conn)
        return reply


class _LanePool(redis.ConnectionPool):
    """The client's pool, which takes idle lane connections back when it is full.

    Without this a burst of threads on the lane would leave its connections idle in the
    lane and a pipeline would find the pool at `max_connections`. A lane connection is
    clean whenever it is idle, so the pool can use it as one of its own from then on.
    """

    _dar_lane: _Lane | None = None

    def make_connection(self) -> Any:
        """A new connection, or an idle lane connection when the pool is at its bound."""
        lane = self._dar_lane
        if lane is not None and self._created_connections >= self.max_connections:
            conn = lane.give_back()
            if conn is not None:
                return conn
        return super().make_connection()

    def get_connection_count(self) -> list[tuple[int, dict[str, Any]]]:
        """redis-py's counts, with the lane's idle connections counted idle, not used."""
        lane = self._dar_lane
        return lane_counts(super().get_connection_count(), 0 if lane is None else len(lane._idle))


class LaneRedis(redis.Redis):
    """A `redis.Redis` whose plain commands take the lane (see the module docstring)."""

    _dar_lane: _Lane | None = None

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run one command: on the lane when it can, else redis-py's own path."""
        lane = self._dar_lane
        if lane is not None and _untouched():
            conn = lane.checkout()
            if conn is not None:
                return lane.call(self, conn, args, options)
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def lane_pipeline(self, pipe: Any) -> list[Any] | None:
        """Run a filled plain pipeline of this client on the lane; None when it cannot.

        Args:
            pipe: ``self.pipeline(transaction=False)`` with its commands queued; the caller
                still resets it.

        Returns:
            The replies (the first error reply raised, as `Pipeline.execute` does), or None
            when the lane is off or full, or the pipeline is not a plain one (a transaction,
            a WATCH, script objects to load): then run ``pipe.execute()``.
        """
        lane = self._dar_lane
        if (
            lane is None
            or type(pipe) is not redis.client.Pipeline
            or redis.client.Pipeline.__dict__["execute"] is not _SHIPPED_PIPELINE
            or getattr(pipe, "transaction", True) is not False  # an attribute: a bool
            or not plain_pipeline(pipe)
            or not _untouched()
        ):
            return None
        conn = lane.checkout()
        if conn is None:
            return None
        stack = pipe.command_stack
        # The same call `Pipeline.execute` retries (its failure callback also disconnects;
        # raising WatchError needs a WATCH, excluded above).
        return lane.run(conn, lambda: pipe._execute_pipeline(conn, stack, True))  # type: ignore[no-any-return,no-untyped-call]

    def lane_commands(self, cmds: Sequence[tuple[Any, ...]]) -> list[Any] | None:
        """Send plain commands in one round trip on the lane; None when it cannot.

        What `lane_pipeline` does for a filled `Pipeline`, without building one: a
        `Pipeline` object, its command stack and its reset cost more than the round trip's
        own packing and parsing (a two-read request ~1.35x one GET through it, ~1.0x
        without, on one connection). Packing, reply callbacks, and "every reply is read,
        then the first error reply is raised, annotated" are redis-py's own, as its
        `Pipeline._execute_pipeline` does them.

        Args:
            cmds: The commands, each a tuple of its name and arguments.

        Returns:
            The replies, or None when the lane is off or full, a tracer wraps redis-py's
            pipelines, or a command needs a real pipeline (`plain_commands`): then build
            one.
        """
        lane = self._dar_lane
        if (
            lane is None
            or redis.client.Pipeline.__dict__["execute"] is not _SHIPPED_PIPELINE
            or not plain_commands(cmds)
            or not _untouched()
        ):
            return None
        conn = lane.checkout()
        if conn is None:
            return None

        def attempt() -> list[Any]:
            conn.send_packed_command(conn.pack_commands(cmds))
            replies: list[Any] = []
            for cmd in cmds:
                try:
                    replies.append(self.parse_response(conn, cmd[0]))  # type: ignore[no-untyped-call]
                except rexc.ResponseError as exc:
                    replies.append(exc)
            for number, reply in enumerate(replies, 1):
                if isinstance(reply, rexc.ResponseError):
                    # redis-py's own wording; `annotate_exception` does not use its `self`.
                    annotate: Any = redis.client.Pipeline.annotate_exception
                    annotate(None, reply, number, cmds[number - 1])
                    raise reply
            return replies

        return lane.run(conn, attempt)  # type: ignore[no-any-return]


def enable_lane(client: LaneRedis) -> None:
    """Give `client` its lane, unless redis-py's own path has work the lane would skip.

    Args:
        client: A freshly built `LaneRedis` (after its connection class is installed).
    """
    pool = client.connection_pool
    if (
        client.connection is not None  # single_connection_client
        or getattr(pool, "cache", None) is not None  # redis-py's client-side cache
        or type(pool) is not redis.ConnectionPool  # blocking/sentinel pools manage their own
        or not hasattr(pool, "_in_use_connections")
        or not hasattr(pool, "_lock")
        or not hasattr(pool, "_checkpid")
        or not hasattr(client, "_send_command_parse_response")
    ):
        return
    lane = _Lane(pool)
    pool.__class__ = _LanePool  # a subclass adding two methods: the same object
    pool._dar_lane = lane  # type: ignore[attr-defined]
    client._dar_lane = lane
