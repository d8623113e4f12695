"""`RedisConnector`: one connection (sync and asyncio clients, key space, settings), shared.

Every component takes a connector (or builds one from `url=`/`settings=`/`client=`/
`async_client=`); an agent builds one for all its phases. It creates clients lazily through
the factory (`_clients.py`) and closes only the clients it created.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import AsyncGenerator
from functools import partial
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio
from deepagents_redis.core._clients import (
    AsyncClient,
    SyncClient,
    _build_async,
    _check_mode,
    create_async_client,
    create_client,
    ready_async,
)
from deepagents_redis.core._deadline import clear_deadline, deadline, remaining
from deepagents_redis.core._errors import ConfigurationError, RedisUnavailableError, redis_errors
from deepagents_redis.core._settings import RedisSettings
from deepagents_redis.core._urls import parse_redis_url

if TYPE_CHECKING:
    from deepagents_redis.core._keys import KeySpace

__all__ = ["RedisConnector"]

log = logging.getLogger("deepagents_redis.core")


class RedisConnector:
    """A ready client (sync and/or async) or the settings to create one, lazily.

    Every component takes a connector so callers can hand over clients they already own or
    just a URL. Clients passed in are never closed by the connector; clients it creates are
    closed by `close` / `aclose` (or the ``with`` / ``async with`` forms).

    Args:
        url: Redis URL (overrides ``settings.url``).
        settings: Settings; defaults to ``RedisSettings()`` (environment variables).
        client: A ready synchronous client.
        async_client: A ready asyncio client.

    Raises:
        ConfigurationError: Nothing to connect with: no client, no URL and no
            ``DEEPAGENTS_REDIS_URL`` (we never silently use localhost).
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        settings: RedisSettings | None = None,
        client: SyncClient | None = None,
        async_client: AsyncClient | None = None,
    ) -> None:
        if settings is None:
            settings = RedisSettings() if url is None else RedisSettings(url=url)
        elif url is not None:
            settings = settings.with_overrides(url=url)
        if settings.url is None and client is None and async_client is None:
            raise ConfigurationError(
                "RedisConnector needs a client, an async client, a URL or settings with a url "
                "(or DEEPAGENTS_REDIS_URL); it never assumes localhost"
            )
        if settings.url is not None:
            parsed = parse_redis_url(settings.url)  # fail now, not on first use
            _check_mode(settings, parsed)
        self._settings = settings
        self._telemetry: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._sync = client
        self._owns_sync = False
        self._async = async_client
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._owns_async = False
        self._is_cluster: bool | None = None
        if client is not None:
            self._is_cluster = isinstance(client, redis.RedisCluster)
        elif async_client is not None:
            self._is_cluster = isinstance(async_client, redis.asyncio.RedisCluster)
        elif settings.cluster != "auto":
            self._is_cluster = settings.cluster == "on"
        self._keyspace: KeySpace | None = None
        # One gate per event loop (asyncio primitives belong to the loop they wait on).
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        # Per loop, the started async generator that closes the asyncio client this connector
        # created in it when that loop shuts down (see `_close_with_loop`).
        self._closers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncGenerator[None, None]
        ] = weakref.WeakKeyDictionary()
        # Per loop, the task creating the asyncio client while one is under way (`aclient`).
        self._creating: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Task[AsyncClient]
        ] = weakref.WeakKeyDictionary()

    def async_gate(self) -> asyncio.Semaphore:
        """The running loop's bound on requests in flight on the asyncio client.

        redis-py's asyncio pools fail at once when every connection is busy ("Too many
        connections"), so an asyncio fan-out wider than the pool (a graph running 60 nodes in
        parallel, each writing its checkpoint) would fail although nothing is wrong. Each
        request of an operation first takes a slot here, waiting within the operation's
        deadline: the pool is never asked for more connections than it has. The bound is
        ``max_connections`` (for a client you passed: its pool's, when it has one); requests
        sent on the client outside the driver are not counted.

        Returns:
            The semaphore of the running loop (created on first use).
        """
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(self._pool_bound())
        return gate

    def _pool_bound(self) -> int:
        pool = getattr(self._async, "connection_pool", None)
        bound = getattr(pool, "max_connections", None)
        if self._async is not None and not self._owns_async and isinstance(bound, int):
            return max(1, min(bound, 2**16))
        return self._settings.max_connections

    @property
    def settings(self) -> RedisSettings:
        """The settings this connector was built from (or read from the environment)."""
        return self._settings

    @property
    def keyspace(self) -> KeySpace:
        """The `KeySpace` for ``settings.key_prefix`` (built once)."""
        if self._keyspace is None:
            from deepagents_redis.core._keys import KeySpace

            self._keyspace = KeySpace(self._settings.key_prefix)
        return self._keyspace

    @property
    def telemetry(self) -> dict[str, Any]:
        """Span attributes naming the server (OpenTelemetry database conventions).

        ``db.system.name``, ``server.address``, ``server.port`` and ``db.namespace`` (the
        database number), from the URL; never the user name or password. Computed once.
        """
        if self._telemetry is None:
            attrs: dict[str, Any] = {"db.system.name": "redis"}
            try:
                parsed = parse_redis_url(self._settings.url) if self._settings.url else None
            except ConfigurationError:
                parsed = None
            if parsed is not None:
                if parsed.kind == "unix" and parsed.path:
                    attrs["server.address"] = parsed.path
                elif parsed.kind == "sentinel" and parsed.service:
                    attrs["server.address"] = parsed.service
                elif parsed.hosts:
                    attrs["server.address"], attrs["server.port"] = parsed.hosts[0]
                attrs["db.namespace"] = str(parsed.db)
            self._telemetry = attrs
        return self._telemetry

    def open_clients(self) -> list[tuple[str, Any]]:
        """The clients this connector holds now, created or given: `("sync" | "async", client)`.

        Creates nothing and does no I/O: for gauges that report on pools (observe's
        `watch(connectors=...)`) without opening connections of their own.

        Returns:
            Zero, one or two pairs.
        """
        held: list[tuple[str, Any]] = []
        if self._sync is not None:
            held.append(("sync", self._sync))
        if self._async is not None:
            held.append(("async", self._async))
        return held

    @property
    def cluster_hint(self) -> bool | None:
        """Whether the target is a Redis Cluster, if that is known without I/O (else None).

        None only with ``cluster="auto"`` before any client was created. For code that picks
        a faster command shape when it can (MGET on one server) and a shape that works on
        both otherwise, without contacting the server to find out.
        """
        return self._is_cluster

    @property
    def is_cluster(self) -> bool:
        """Whether the target is a Redis Cluster.

        Known without I/O when a client was passed or ``settings.cluster`` is pinned; with
        ``"auto"`` it creates the sync client (one ``INFO cluster`` round trip).
        """
        if self._is_cluster is None:
            self.client()
        assert self._is_cluster is not None
        return self._is_cluster

    def _settings_for_creation(self, what: str) -> RedisSettings:
        if self._settings.url is None:
            raise ConfigurationError(
                f"this connector was given no URL and no {what} client; pass one of them"
            )
        if self._is_cluster is not None and self._settings.cluster == "auto":
            # Already detected: skip the second probe.
            return self._settings.with_overrides(cluster="on" if self._is_cluster else "off")
        return self._settings

    def client(self) -> SyncClient:
        """The synchronous client, created on first use (thread-safe).

        Returns:
            The client passed in, or one created from the settings.

        Raises:
            ConfigurationError: There is neither a sync client nor a URL.
            RedisUnavailableError: Cluster auto-detection could not reach the server.
        """
        if self._sync is not None:
            return self._sync
        with self._lock:
            if self._sync is None:
                client = create_client(self._settings_for_creation("sync"))
                self._is_cluster = isinstance(client, redis.RedisCluster)
                self._sync = client
                self._owns_sync = True
            return self._sync

    async def aclient(self) -> AsyncClient:
        """The asyncio client, created on first use inside the running event loop.

        With ``cluster="auto"`` the mode is detected with the asyncio client, so the event
        loop is never blocked. A new event loop (a second ``asyncio.run``) gets a fresh
        client: asyncio clients are bound to the loop that created them. Tasks asking at once
        share one creation (each waits within its own deadline).

        Returns:
            The async client passed in, or one created from the settings.

        Raises:
            ConfigurationError: There is neither an async client nor a URL.
            RedisUnavailableError: Cluster auto-detection could not reach the server, or
                the client was not ready within the caller's deadline.
        """
        client = self._current_async()
        if client is not None:
            return client
        # Creating a cluster client awaits its slot map (and "auto" awaits its probe): a
        # fan-out's first requests all got here meanwhile and each built, initialized and
        # closed a client of its own (24 for 24 tasks), and a loser's close timing out under
        # load ("Timed out closing connection after 2.0") failed its operation. One task
        # creates, the others wait for it.
        loop = asyncio.get_running_loop()
        creating = self._creating.get(loop)
        if creating is None:
            creating = loop.create_task(self._create_async())
            self._creating[loop] = creating
            creating.add_done_callback(partial(self._created, loop))
        left = remaining()
        if left is None:
            return await asyncio.shield(creating)
        try:
            async with asyncio.timeout(max(0.0, left)) as scope:
                # Shielded: a waiter giving up does not cancel the others' client.
                return await asyncio.shield(creating)
        except TimeoutError as exc:
            if scope.expired():
                raise RedisUnavailableError(
                    "deadline exceeded before the asyncio client was ready"
                ) from exc
            raise

    def _created(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
        if self._creating.get(loop) is task:
            del self._creating[loop]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have given up before it ended

    async def _create_async(self) -> AsyncClient:
        # Bounded by `settings.deadline_seconds` below, not by the deadline of whichever
        # caller came first: the client serves every waiter.
        clear_deadline()
        if self._is_cluster is None:
            created = await create_async_client(self._settings_for_creation("async"))
            self._is_cluster = isinstance(created, redis.asyncio.RedisCluster)
        else:
            created = self._build_async_now()
            if self._is_cluster:
                # a cluster client learns its slots before it is shared (see ready_async)
                with deadline(self._settings.deadline_seconds):
                    created = await ready_async(created)
        current = self._current_async()
        if current is not None:  # another thread's loop won the race while we awaited
            try:
                await created.aclose()
            except (redis.RedisError, OSError) as exc:  # ours is unused: log only
                log.debug("closing a spare asyncio client: %r", exc)
            return current
        adopted = self._adopt_async(created)
        await self._close_with_loop(adopted)
        return adopted

    async def _close_with_loop(self, client: AsyncClient) -> None:
        """Close `client` when the running loop shuts down, while that loop still runs.

        An asyncio client dies with its loop: after `asyncio.run` returns, its sockets can
        no longer be closed through their transports (`aclose()` raised "Event loop is
        closed") and were left to garbage collection. `asyncio.run`, pytest-asyncio and
        every `asyncio.Runner` end with `loop.shutdown_asyncgens()`, which closes each
        open async generator inside the loop: this one's `finally` closes the client then.
        """

        async def closer() -> AsyncGenerator[None, None]:
            try:
                yield
            finally:
                if self._async is client:
                    self._async, self._owns_async, self._async_loop = None, False, None
                try:
                    await client.aclose()
                except (redis.RedisError, OSError) as exc:  # the loop is ending: log only
                    log.debug("closing the asyncio client at loop shutdown: %r", exc)

        gen = closer()
        await gen.__anext__()  # started: the loop now finalizes it at shutdown
        # The loop holds its async generators weakly; this keeps it until the loop goes.
        self._closers[asyncio.get_running_loop()] = gen

    def _current_async(self) -> AsyncClient | None:
        if self._async is None:
            return None
        if not self._owns_async:
            return self._async
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and self._async_loop is not None and loop is not self._async_loop:
            # asyncio clients are bound to the loop that created them; a new loop (a second
            # asyncio.run) gets a fresh client. The old one died with its loop.
            self._async = None
            return None
        return self._async

    def _build_async_now(self) -> AsyncClient:
        settings = self._settings_for_creation("async")
        assert settings.url is not None
        assert self._is_cluster is not None
        parsed = parse_redis_url(settings.url)
        with redis_errors():
            return _build_async(settings, parsed, {}, cluster=self._is_cluster)

    def _adopt_async(self, client: AsyncClient) -> AsyncClient:
        try:
            self._async_loop = asyncio.get_running_loop()
        except RuntimeError:
            self._async_loop = None
        self._async = client
        self._owns_async = True
        return client

    def close(self) -> None:
        """Close the sync client if this connector created it (async: use `aclose`)."""
        with self._lock:
            client, owned = self._sync, self._owns_sync
            if owned:
                self._sync, self._owns_sync = None, False
        if owned and client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close every client this connector created (async and sync).

        The asyncio client is closed in the loop that created it. A client left by a loop
        that has since closed is dropped (its loop already closed it at shutdown, or can no
        longer: `asyncio.run` always does); one of a loop still running in another thread
        is closed there.
        """
        client, owned, loop = self._async, self._owns_async, self._async_loop
        if owned:
            self._async, self._owns_async, self._async_loop = None, False, None
        if owned and client is not None:
            running = asyncio.get_running_loop()
            home = running if loop is None else loop
            # The client's loop's closer goes with it: closing through the closer (its
            # finally closes `client`) leaves nothing for that loop's shutdown to close again.
            gen = self._closers.pop(home, None)
            if home is running:
                await (gen.aclose() if gen is not None else client.aclose())
            elif not home.is_closed():
                close = gen.aclose() if gen is not None else client.aclose()
                asyncio.run_coroutine_threadsafe(close, home)
            else:
                log.debug("dropping an asyncio client whose event loop has closed")
        self.close()

    def __enter__(self) -> RedisConnector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> RedisConnector:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"RedisConnector(url={self._settings.redacted_url()!r})"
