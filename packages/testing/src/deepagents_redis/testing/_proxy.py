"""A loopback TCP proxy that injects network faults between a client and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from deepagents_redis.core import Closing

__all__ = ["FaultMode", "FaultProxy"]

FaultMode = Literal["pass", "delay", "blackhole", "reset"]
_MODES: tuple[FaultMode, ...] = ("pass", "delay", "blackhole", "reset")
_T = TypeVar("_T")
_CHUNK = 65_536
_CLOSE_TIMEOUT = 5.0


class FaultProxy(Closing):
    """Forward 127.0.0.1:<proxy port> to a standalone Redis, with switchable faults.

    Modes (switch any time with `set_mode`; they apply to open and new connections):

    - `pass`: forward bytes both ways unchanged.
    - `delay`: forward, but sleep `delay` seconds before each chunk in either direction.
    - `blackhole`: accept and read, never forward or answer (the client sees timeouts), as
      in a partition: not even the server closing a connection or being down reaches the
      client while it lasts.
    - `reset`: abort every connection with a TCP RST (SO_LINGER 0); new connections are reset
      as soon as they are accepted (the client sees connection resets).

    The proxy runs its own asyncio loop in a daemon thread, so it serves sync and async
    clients alike. Only for standalone servers: a Cluster redirects clients to the real node
    ports (MOVED), around the proxy.
    """

    def __init__(self, target_url: str) -> None:
        """Start proxying to `target_url` (a `redis://host:port/...` URL).

        Args:
            target_url: URL of the server to forward to.
        """
        parts = urlsplit(target_url)
        if parts.hostname is None or parts.port is None:
            raise ValueError("fault proxy target needs an explicit host and port")
        self._target = (parts.hostname, parts.port)
        self._target_parts = parts
        self._mode: FaultMode = "pass"
        self._delay = 0.0
        self._conns: set[_Pipe] = set()
        self._accepted = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._mode_changed: asyncio.Event | None = None
        self._closed = False
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="dar-fault-proxy", daemon=True
        )
        self._thread.start()
        try:
            self._port = self._call(self._start())
        except BaseException:
            self._shutdown_loop()
            raise

    @property
    def port(self) -> int:
        """The proxy's port on 127.0.0.1."""
        return self._port

    @property
    def url(self) -> str:
        """The target URL with host and port replaced by the proxy's."""
        netloc = f"127.0.0.1:{self._port}"
        userinfo = self._target_parts.netloc.rpartition("@")
        if userinfo[1]:
            netloc = f"{userinfo[0]}@{netloc}"
        return urlunsplit(self._target_parts._replace(netloc=netloc))

    @property
    def mode(self) -> FaultMode:
        """The current mode."""
        return self._mode

    @property
    def delay(self) -> float:
        """Seconds added before each forwarded chunk in `delay` mode."""
        return self._delay

    @property
    def connection_count(self) -> int:
        """Number of client connections currently open through the proxy."""
        return len(self._conns)

    @property
    def accepted_count(self) -> int:
        """Number of client connections accepted since the proxy started (attempts seen)."""
        return self._accepted

    def set_mode(self, mode: FaultMode, *, delay: float = 0.0) -> None:
        """Switch the fault mode (takes effect immediately, also on open connections).

        Args:
            mode: `"pass"`, `"delay"`, `"blackhole"` or `"reset"`.
            delay: Seconds per chunk in `delay` mode.
        """
        if mode not in _MODES:
            raise ValueError(f"unknown fault mode {mode!r}; expected one of {_MODES}")
        if delay < 0:
            raise ValueError("delay must be >= 0")
        self._call(self._set_mode(mode, delay))

    def close(self) -> None:
        """Close every connection and the listener, then stop the proxy's thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self._close())
        finally:
            self._shutdown_loop()

    def __repr__(self) -> str:
        return f"FaultProxy(port={self._port}, target={self._target}, mode={self._mode!r})"

    # ------------------------------------------------------------------ loop side
    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=_CLOSE_TIMEOUT)

    def _shutdown_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_CLOSE_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()

    async def _start(self) -> int:
        self._mode_changed = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _set_mode(self, mode: FaultMode, delay: float) -> None:
        self._mode = mode
        self._delay = delay
        # Wake whoever waits for the blackhole to end (a fresh event for the next change).
        changed, self._mode_changed = self._mode_changed, asyncio.Event()
        if changed is not None:
            changed.set()
        if mode == "reset":
            for pipe in list(self._conns):
                pipe.reset()
                # A pump may sit in a delay sleep; cancel it so the connection ends now.
                if pipe.task is not None:
                    pipe.task.cancel()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in list(self._conns):
            pipe.reset()
        tasks = [pipe.task for pipe in self._conns if pipe.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pipe = _Pipe(self, writer)
        self._accepted += 1
        self._conns.add(pipe)
        pipe.task = asyncio.current_task()
        try:
            if self._mode == "reset":
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
            except OSError:
                # The server is down: a blackhole hides that too (read, drop, never answer).
                with contextlib.suppress(OSError):
                    while self._mode == "blackhole" and await reader.read(_CHUNK):
                        pass
                return
            pipe.upstream = up_writer
            await asyncio.gather(
                self._pump(reader, up_writer),
                self._pump(up_reader, writer, from_server=True),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            # Cancelled by reset/close on purpose. Ending normally matters: CPython 3.11's
            # streams callback calls task.exception() on this task and would print the
            # CancelledError as an "unhandled exception in client_connected_cb".
            return
        finally:
            self._conns.discard(pipe)
            pipe.reset()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        from_server: bool = False,
    ) -> None:
        try:
            with contextlib.suppress(OSError):  # a peer that resets has left, as one closing
                await self._forward(reader, writer)
            if from_server:
                # The server closed (or died): in a blackhole the client must not learn it
                # before the blackhole ends. Only after the forwarding ended by itself: a
                # cancellation (reset, close) was delivered there and ends the pump now.
                while self._mode == "blackhole" and self._mode_changed is not None:
                    await self._mode_changed.wait()
        finally:
            # Either side closing ends the whole connection, like a real TCP peer would.
            with contextlib.suppress(Exception):
                writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                return
            if self._mode == "blackhole":
                continue
            if self._mode == "delay" and self._delay > 0:
                await asyncio.sleep(self._delay)
            if self._mode in ("blackhole", "reset"):
                continue
            writer.write(data)
            await writer.drain()


class _Pipe:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: FaultProxy, client: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is None or writer.transport.is_closing():
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
