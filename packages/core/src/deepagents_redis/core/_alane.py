"""The command lane of our asyncio standalone clients (the async twin of `_lane`).

redis-py 8.1's asyncio `Redis.execute_command` takes a connection from its pool under an
`asyncio.Lock`, polls it for stray data (`can_read`), awaits five metric hooks that do
nothing while its metrics are off, and gives it back under the lock again: ~22 µs of CPU per
command here on top of the ~35 µs of the send and read. `AsyncLaneRedis` serves plain
commands on connections of its own lane with the same rules as the sync lane (see
`_lane`): the same connection class, retry and disconnect-on-failure, redis-py's own
send-and-parse, and a socket closed on any failure but an error reply, so no stray data can
be waiting on a lane connection. A task cancelled between sending and reading (a timeout
around the call) closes the socket like any other interruption.

It steps aside like the sync lane: redis-py's metrics on, `redis.asyncio.Redis.execute_command`
wrapped by a tracer, a client-side cache, a single-connection client, or the lane's share of
the pool used up. Connections belong to the event loop that opened them, as in redis-py's pool.
Plain pipelines take the lane too (`AsyncLaneRedis.lane_pipeline`, as in `_lane`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio
import redis.exceptions as rexc
from deepagents_redis.core._lane import (
    IdleLane,
    lane_counts,
    metrics_off,
    plain_commands,
    plain_pipeline,
)

_log = logging.getLogger("deepagents_redis.core")

__all__ = ["AsyncLaneRedis", "enable_async_lane"]

_SHIPPED_EXECUTE = inspect.unwrap(redis.asyncio.Redis.__dict__["execute_command"])
_SHIPPED_PIPELINE = inspect.unwrap(redis.asyncio.client.Pipeline.__dict__["execute"])


class _AsyncLane(IdleLane):
    """The asyncio lane (its connections belong to the loop that opened them)."""

    __slots__ = ()

    def checkout(self) -> Any:
        """An idle lane connection, a new one, or None when the pool has none left.

        No await between the bound check and taking the connection: no other task of this
        loop can take the same slot.
        """
        conn = self.give_back()
        if conn is not None:
            return conn
        pool = self._pool
        if len(pool._in_use_connections) >= pool.max_connections:
            return None
        conn = pool.make_connection()
        # Listed as in use: counted against the bound, closed by the pool's disconnect().
        pool._in_use_connections.add(conn)
        return conn

    async def call(
        self, client: Any, conn: Any, args: tuple[Any, ...], options: dict[str, Any]
    ) -> Any:
        async def attempt() -> Any:
            return await client._send_command_parse_response(conn, args[0], *args, **options)

        return await self.run(conn, attempt)

    async def run(self, conn: Any, attempt: Any) -> Any:
        """Await `attempt()` on the lane connection `conn` with its retry, then check it in."""

        async def failed(error: BaseException, failures: int) -> None:
            await conn.disconnect()

        try:
            reply = await conn.retry.call_with_retry(attempt, failed, with_failure_count=True)
        except rexc.ResponseError:
            await self._checkin(conn)  # an error reply is read whole: the socket is clean
            raise
        except BaseException:
            # A timeout, a cancelled task, a bug in a callback: maybe half sent or half read.
            try:
                await conn.disconnect(nowait=True)
            except Exception as close_error:  # noqa: BLE001 - the call's own error is raised
                _log.debug("closing a failed lane connection failed: %r", close_error)
            finally:
                self._idle.append(conn)
            raise
        await self._checkin(conn)
        return reply

    async def _checkin(self, conn: Any) -> None:
        should_reconnect = getattr(conn, "should_reconnect", None)  # redis-py 6+
        try:
            if should_reconnect is not None and should_reconnect():
                await conn.disconnect()  # a maintenance notification asked for a fresh socket
        finally:
            # Back to the lane even when closing failed (redis-py's "Timed out closing
            # connection"): the pool lists it as in use, so a lost one was a slot lost for
            # good. A connection whose close failed reconnects on its next use.
            self._idle.append(conn)


class _AsyncLanePool(redis.asyncio.ConnectionPool):
    """The client's pool, which takes idle lane connections back when it is full."""

    _dar_lane: _AsyncLane | None = None

    def get_available_connection(self) -> Any:
        """redis-py's choice, or an idle lane connection when the pool is at its bound."""
        lane = self._dar_lane
        if (
            lane is not None
            and not self._available_connections
            and len(self._in_use_connections) >= self.max_connections
        ):
            conn = lane.give_back()
            if conn is not None:
                return conn  # already listed as in use
        return super().get_available_connection()  # type: ignore[no-untyped-call]

    def get_connection_count(self) -> list[tuple[int, dict[str, Any]]]:
        """redis-py's counts, with the lane's idle connections counted idle, not used."""
        lane = self._dar_lane
        return lane_counts(super().get_connection_count(), 0 if lane is None else len(lane._idle))


class AsyncLaneRedis(redis.asyncio.Redis):
    """A `redis.asyncio.Redis` whose plain commands take the lane (see the module docstring)."""

    _dar_lane: _AsyncLane | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run one command: on the lane when it can, else redis-py's own path."""
        lane = self._dar_lane
        if (
            lane is not None
            and redis.asyncio.Redis.__dict__["execute_command"] is _SHIPPED_EXECUTE
            and metrics_off()
        ):
            conn = lane.checkout()
            if conn is not None:
                return await lane.call(self, conn, args, options)
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    async def lane_pipeline(self, pipe: Any) -> list[Any] | None:
        """Run a filled plain pipeline of this client on the lane; None when it cannot.

        The asyncio twin of `LaneRedis.lane_pipeline` (same conditions, same replies).
        """
        lane = self._dar_lane
        if (
            lane is None
            or type(pipe) is not redis.asyncio.client.Pipeline
            or redis.asyncio.client.Pipeline.__dict__["execute"] is not _SHIPPED_PIPELINE
            or redis.asyncio.Redis.__dict__["execute_command"] is not _SHIPPED_EXECUTE
            or pipe.is_transaction
            or not plain_pipeline(pipe)
            or not metrics_off()
        ):
            return None
        conn = lane.checkout()
        if conn is None:
            return None
        stack = pipe.command_stack
        return await lane.run(conn, lambda: pipe._execute_pipeline(conn, stack, True))  # type: ignore[no-any-return]

    async def lane_commands(self, cmds: Sequence[tuple[Any, ...]]) -> list[Any] | None:
        """Send plain commands in one round trip on the lane; None when it cannot.

        The asyncio twin of `LaneRedis.lane_commands` (same conditions, same replies and
        errors as redis-py's asyncio pipeline).
        """
        lane = self._dar_lane
        if (
            lane is None
            or redis.asyncio.client.Pipeline.__dict__["execute"] is not _SHIPPED_PIPELINE
            or redis.asyncio.Redis.__dict__["execute_command"] is not _SHIPPED_EXECUTE
            or not plain_commands(cmds)
            or not metrics_off()
        ):
            return None
        conn = lane.checkout()
        if conn is None:
            return None

        async def attempt() -> list[Any]:
            await conn.send_packed_command(conn.pack_commands(cmds))
            replies: list[Any] = []
            for cmd in cmds:
                try:
                    replies.append(await self.parse_response(conn, cmd[0]))
                except rexc.ResponseError as exc:
                    replies.append(exc)
            for number, reply in enumerate(replies, 1):
                if isinstance(reply, rexc.ResponseError):
                    # redis-py's own wording; `annotate_exception` does not use its `self`.
                    annotate: Any = redis.asyncio.client.Pipeline.annotate_exception
                    annotate(None, reply, number, cmds[number - 1])
                    raise reply
            return replies

        return await lane.run(conn, attempt)  # type: ignore[no-any-return]


def enable_async_lane(client: AsyncLaneRedis) -> None:
    """Give `client` its lane, unless redis-py's own path has work the lane would skip.

    Args:
        client: A freshly built `AsyncLaneRedis` (after its connection class is installed).
    """
    pool = client.connection_pool
    if (
        client.single_connection_client
        or getattr(pool, "cache", None) is not None
        or type(pool) is not redis.asyncio.ConnectionPool
        or not hasattr(pool, "_in_use_connections")
        or not hasattr(pool, "get_available_connection")
        or not hasattr(client, "_send_command_parse_response")
    ):
        return
    lane = _AsyncLane(pool)
    pool.__class__ = _AsyncLanePool  # a subclass adding two methods: the same object
    pool._dar_lane = lane  # type: ignore[attr-defined]
    client._dar_lane = lane
