"""Connection classes that honour the current deadline (see `_deadline`).

Our client factory installs these in place of redis-py's own connection classes. Each one
cuts the connect timeout and every read and write timeout to the time left before the current
`deadline(...)`, refuses to send once the deadline is spent, and marks failures that
happened before a command could reach the server (connect, handshake, health-check `PING`)
so callers can tell "nothing was applied" from "outcome unknown" by a flag, not by parsing
redis-py's message text.

Hooks used (redis-py 8.1): `connect_check_health`, `check_health`, `send_packed_command` and
`read_response(timeout=...)` of the sync and asyncio connection classes. A test drives each
hook through a blackholing listener, so an upstream rename fails loudly.

They also pack commands with `_resp.pack_command` (one chunk per command instead of one per
6,000 bytes; the same bytes), through `_construct_command_packer` (sync; only when redis-py
would use its pure-Python packer, not hiredis's) and `pack_command` (asyncio, which always
packs in Python). A test checks that our connections use it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio.connection as aconn
import redis.asyncio.sentinel
import redis.connection as sconn
import redis.exceptions as rexc
import redis.sentinel
from deepagents_redis.core._deadline import clamp, deadline_exceeded, mark_not_sent, remaining
from deepagents_redis.core._errors import TRANSPORT_EXCEPTIONS
from deepagents_redis.core._resp import RespPacker, pack_command, strict_utf8
from redis.utils import HIREDIS_AVAILABLE

__all__ = [
    "async_connection_class",
    "install_async",
    "install_sentinels",
    "install_sync",
    "sync_connection_class",
]

# Authentication and LOADING are ConnectionError subclasses but are answers, not transport
# failures; they keep their own meaning (and are not retried into a deadline).
_NOT_TRANSPORT = (rexc.AuthenticationError, rexc.AuthenticationWrongNumberOfArgsError)
_TRANSPORT = TRANSPORT_EXCEPTIONS
# redis-py's "no timeout given" marker for sync reads (not in its public exports).
_SENTINEL: Any = getattr(sconn, "SENTINEL")  # noqa: B009
# How far a sync socket's timeout may be from the bound a call needs (seconds) and still be
# left as it is: a read or write may end up to this much before or after the deadline.
_SLACK = 0.002


def _spent(what: str) -> None:
    left = remaining()
    if left is not None and left <= 0:
        raise deadline_exceeded(what)


class _SyncDeadline:
    """Mixin for `redis.connection.AbstractConnection` subclasses."""

    socket_connect_timeout: float | None
    socket_timeout: float | None
    encoder: Any
    _buffer_cutoff: int
    _sock: Any

    def _construct_command_packer(self, packer: Any) -> Any:
        if packer is None and not HIREDIS_AVAILABLE:
            return RespPacker(
                self._buffer_cutoff, self.encoder.encode, utf8=strict_utf8(self.encoder)
            )
        return super()._construct_command_packer(packer)  # type: ignore[misc]

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if getattr(self, "_sock", None) is not None:
            # Connected: redis-py returns at once too. The pool asks this before every
            # command; a spent deadline is refused by `send_packed_command` next.
            return
        _spent("connecting")
        saved = self.socket_connect_timeout
        self.socket_connect_timeout = clamp(saved)
        try:
            super().connect_check_health(check_health, retry_socket_connect)  # type: ignore[misc]
        except _NOT_TRANSPORT:
            raise
        except _TRANSPORT as exc:
            mark_not_sent(exc)
            raise
        finally:
            self.socket_connect_timeout = saved

    def check_health(self) -> None:
        try:
            super().check_health()  # type: ignore[misc]
        except _NOT_TRANSPORT:
            raise
        except _TRANSPORT as exc:
            mark_not_sent(exc)
            raise

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        _spent("sending")
        # Connected: bound the write by the deadline. Not connected yet: redis-py connects
        # first (the connect timeout is bounded above), and that first write runs under
        # `socket_timeout`, as before.
        if self._sock is not None:
            self._bound_socket()
        super().send_packed_command(command, check_health)  # type: ignore[misc]

    def read_response(
        self, disable_decoding: bool = False, *, timeout: Any = _SENTINEL, **kwargs: Any
    ) -> Any:
        if timeout is _SENTINEL:
            # An explicit timeout (pub/sub polling) is redis-py's to set and restore.
            self._bound_socket()
        return super().read_response(disable_decoding, timeout=timeout, **kwargs)  # type: ignore[misc]

    def _bound_socket(self) -> None:
        """Give the socket the timeout the next write or read needs, if it has not got it.

        That is `socket_timeout`, cut to the time left before the current deadline. redis-py
        reads with an explicit timeout by setting it and then `socket_timeout` back on the
        socket: two `settimeout` calls, each a syscall, per read (~3.4 µs of CPU of a
        ~50 µs GET on this VM, measured). The bound is kept on the socket instead and set
        only when it changes: under a deadline, when it moved by more than `_SLACK` (one
        call after another with the same budget needs the same bound, give or take the
        microseconds between them); without one, back to `socket_timeout` exactly.
        Writes are bounded the same way (redis-py wrote under `socket_timeout` whatever the
        deadline), so a bound left on the socket by one call never cuts a later call short.
        """
        sock = self._sock
        if sock is None:
            return
        want = self.socket_timeout
        left = remaining()
        have = sock.gettimeout()
        if left is None:
            if have != want:
                sock.settimeout(want)
            return
        if left < 0.001:
            left = 0.001
        if want is None or left < want:
            want = left
        if have is None or abs(have - want) > _SLACK:
            sock.settimeout(want)


class _AsyncDeadline:
    """Mixin for `redis.asyncio.connection.AbstractConnection` subclasses."""

    _strict_utf8: bool | None
    socket_connect_timeout: float | None
    socket_timeout: float | None
    encoder: Any
    _buffer_cutoff: int

    def pack_command(self, *args: Any) -> list[Any]:
        utf8 = getattr(self, "_strict_utf8", None)
        if utf8 is None:
            # The encoder is set once, in the constructor: look at it once.
            utf8 = self._strict_utf8 = strict_utf8(self.encoder)
        return pack_command(self.encoder.encode, self._buffer_cutoff, args, utf8=utf8)

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if getattr(self, "is_connected", False):
            # As in the sync mixin: connected, nothing to bound here.
            return
        _spent("connecting")
        saved = self.socket_connect_timeout
        self.socket_connect_timeout = clamp(saved)
        try:
            await super().connect_check_health(check_health, retry_socket_connect)  # type: ignore[misc]
        except _NOT_TRANSPORT:
            raise
        except _TRANSPORT as exc:
            mark_not_sent(exc)
            raise
        finally:
            self.socket_connect_timeout = saved

    async def check_health(self) -> None:
        try:
            await super().check_health()  # type: ignore[misc]
        except _NOT_TRANSPORT:
            raise
        except _TRANSPORT as exc:
            mark_not_sent(exc)
            raise

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        _spent("sending")
        saved = self.socket_timeout
        if not saved and remaining() is None:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        # redis-py bounds the write with `asyncio.wait_for`, which runs it as a task of its
        # own: two more event-loop turns per command. An `asyncio.timeout` scope in this
        # task bounds it the same. Connecting and the health check run first, outside the
        # scope, with their own timeouts and "not sent" marks, as in redis-py's order.
        if not self.is_connected:  # type: ignore[attr-defined]
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()
        # Cut to the deadline, as the sync connection cuts its writes (`_bound_socket`): the
        # write was bounded by `socket_timeout` alone, so a big value sent to a server that
        # had stopped reading (DEBUG SLEEP, a stall) held a 0.5 s operation until the server
        # read again (4 s, seen), past its deadline.
        bound = clamp(saved or None)
        self.socket_timeout = None  # redis-py's unwrapped branch: writelines + drain
        try:
            async with asyncio.timeout(bound):
                await super().send_packed_command(command, False)  # type: ignore[misc]
        except TimeoutError:
            # redis-py closed the socket (its BaseException branch saw the cancellation).
            raise rexc.TimeoutError("Timeout writing to socket") from None
        finally:
            self.socket_timeout = saved

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - redis-py's signature
        **kwargs: Any,
    ) -> Any:
        if timeout is not None or remaining() is None:
            return await super().read_response(disable_decoding, timeout, **kwargs)  # type: ignore[misc]
        # Not `timeout=`: redis-py's asyncio read returns None on an explicit timeout (the
        # pub/sub polling contract) and leaves the reply pending on the connection. Its own
        # socket_timeout path disconnects and raises TimeoutError, which is what we need.
        saved = self.socket_timeout
        self.socket_timeout = clamp(saved)
        try:
            return await super().read_response(disable_decoding, None, **kwargs)  # type: ignore[misc]
        finally:
            self.socket_timeout = saved


class DeadlineConnection(_SyncDeadline, sconn.Connection):
    """TCP connection bounded by the current deadline."""


class DeadlineSSLConnection(_SyncDeadline, sconn.SSLConnection):
    """TLS connection bounded by the current deadline."""


class DeadlineUnixConnection(_SyncDeadline, sconn.UnixDomainSocketConnection):
    """Unix-socket connection bounded by the current deadline."""


class DeadlineSentinelConnection(_SyncDeadline, redis.sentinel.SentinelManagedConnection):
    """Sentinel-managed master connection bounded by the current deadline."""


class DeadlineSentinelSSLConnection(_SyncDeadline, redis.sentinel.SentinelManagedSSLConnection):
    """Sentinel-managed TLS master connection bounded by the current deadline."""


class AsyncDeadlineConnection(_AsyncDeadline, aconn.Connection):
    """asyncio TCP connection bounded by the current deadline."""


class AsyncDeadlineSSLConnection(_AsyncDeadline, aconn.SSLConnection):
    """asyncio TLS connection bounded by the current deadline."""


class AsyncDeadlineUnixConnection(_AsyncDeadline, aconn.UnixDomainSocketConnection):
    """asyncio Unix-socket connection bounded by the current deadline."""


class AsyncDeadlineSentinelConnection(
    _AsyncDeadline, redis.asyncio.sentinel.SentinelManagedConnection
):
    """asyncio Sentinel-managed master connection bounded by the current deadline."""


class AsyncDeadlineSentinelSSLConnection(
    _AsyncDeadline, redis.asyncio.sentinel.SentinelManagedSSLConnection
):
    """asyncio Sentinel-managed TLS master connection bounded by the current deadline."""


_SYNC: dict[type[Any], type[Any]] = {
    sconn.Connection: DeadlineConnection,
    sconn.SSLConnection: DeadlineSSLConnection,
    sconn.UnixDomainSocketConnection: DeadlineUnixConnection,
    redis.sentinel.SentinelManagedConnection: DeadlineSentinelConnection,
    redis.sentinel.SentinelManagedSSLConnection: DeadlineSentinelSSLConnection,
}
_ASYNC: dict[type[Any], type[Any]] = {
    aconn.Connection: AsyncDeadlineConnection,
    aconn.SSLConnection: AsyncDeadlineSSLConnection,
    aconn.UnixDomainSocketConnection: AsyncDeadlineUnixConnection,
    redis.asyncio.sentinel.SentinelManagedConnection: AsyncDeadlineSentinelConnection,
    redis.asyncio.sentinel.SentinelManagedSSLConnection: AsyncDeadlineSentinelSSLConnection,
}


def sync_connection_class(cls: type[Any]) -> type[Any]:
    """Our deadline-aware twin of redis-py's sync connection class `cls` (or `cls`)."""
    return _SYNC.get(cls, cls)


def async_connection_class(cls: type[Any]) -> type[Any]:
    """Our deadline-aware twin of redis-py's asyncio connection class `cls` (or `cls`)."""
    return _ASYNC.get(cls, cls)


def _swap_pool(pool: Any, twin: Any) -> None:
    pool.connection_class = twin(pool.connection_class)


def install_sync(client: Any) -> None:
    """Give a freshly built sync `redis.Redis` (no I/O yet) our connection classes.

    A `RedisCluster` is built with `connection_class=` by the factory instead (its nodes are
    created inside its constructor).

    Args:
        client: The client, before its first command.
    """
    _swap_pool(client.connection_pool, sync_connection_class)


def install_async(client: Any) -> None:
    """Give a freshly built asyncio client (no I/O yet) our connection classes.

    Handles `redis.asyncio.Redis` (standalone, unix, Sentinel master) and
    `redis.asyncio.RedisCluster`, whose nodes read `connection_class` from the node
    manager's kwargs when they first connect (redis-py 8.1).

    Args:
        client: The client, before its first command.
    """
    manager = getattr(client, "nodes_manager", None)
    if manager is not None:
        twin = async_connection_class(manager.connection_kwargs.get("connection_class"))
        manager.connection_kwargs["connection_class"] = twin
        for node in manager.startup_nodes.values():
            node.connection_class = async_connection_class(node.connection_class)
        return
    _swap_pool(client.connection_pool, async_connection_class)


def install_sentinels(sentinel: Any, *, is_async: bool) -> None:
    """Give the Sentinel clients of a `Sentinel` manager (no I/O yet) our connection classes.

    Args:
        sentinel: A `redis.sentinel.Sentinel` or `redis.asyncio.sentinel.Sentinel`.
        is_async: Whether it is the asyncio one.
    """
    twin = async_connection_class if is_async else sync_connection_class
    for sentinel_client in sentinel.sentinels:
        _swap_pool(sentinel_client.connection_pool, twin)
