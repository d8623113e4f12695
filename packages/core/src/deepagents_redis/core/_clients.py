"""The client factory: settings in, bounded redis-py clients out.

One place turns settings into redis-py clients, so every component gets the same bounded
timeouts, retry policy, pool size, protocol and TLS handling, for every topology:

* ``redis://host:port/db``, ``rediss://...`` (TLS), ``unix:///path/to.sock?db=0``;
* ``redis+sentinel://[user:pass@]s1:26379,s2:26379/<service>[/<db>]`` (or
  ``rediss+sentinel://``; the service may come from ``settings.sentinel_service``);
* Redis Cluster, chosen by ``settings.cluster`` (``"on"``, ``"off"``, or ``"auto"``: one
  ``INFO cluster`` round trip at creation time decides).
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Any, TypeAlias

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.exceptions as rexc
import redis.retry
import redis.sentinel
from deepagents_redis.core._alane import AsyncLaneRedis, enable_async_lane
from deepagents_redis.core._connections import (
    DeadlineConnection,
    DeadlineSSLConnection,
    install_async,
    install_sentinels,
    install_sync,
)
from deepagents_redis.core._deadline import AsyncBoundedRetry, BoundedRetry, deadline
from deepagents_redis.core._errors import (
    ConfigurationError,
    DeepAgentsRedisError,
    RedisUnavailableError,
    redact_text,
    redis_errors,
    tls_refusal,
    translate_redis_error,
)
from deepagents_redis.core._lane import LaneRedis, enable_lane
from deepagents_redis.core._settings import RedisSettings
from deepagents_redis.core._urls import ParsedURL, parse_redis_url
from redis.backoff import ExponentialWithJitterBackoff

if TYPE_CHECKING:
    pass

__all__ = [
    "AsyncClient",
    "SyncClient",
    "create_async_client",
    "create_client",
]

log = logging.getLogger("deepagents_redis.core")

SyncClient: TypeAlias = "redis.Redis | redis.RedisCluster"
"""A synchronous client as returned by `create_client`."""

AsyncClient: TypeAlias = "redis.asyncio.Redis | redis.asyncio.RedisCluster"
"""An asyncio client as returned by `create_async_client`."""


def _resolve_settings(
    settings: RedisSettings | None, url: str | None, overrides: dict[str, Any]
) -> tuple[RedisSettings, dict[str, Any]]:
    """Split overrides into settings fields and extra redis-py kwargs."""
    if settings is None:
        settings = RedisSettings() if url is None else RedisSettings(url=url)
    elif url is not None:
        overrides = {**overrides, "url": url}
    fields = {k: v for k, v in overrides.items() if k in RedisSettings.model_fields}
    extra = {k: v for k, v in overrides.items() if k not in RedisSettings.model_fields}
    if fields:
        settings = settings.with_overrides(**fields)
    if settings.url is None:
        raise ConfigurationError(
            "no Redis URL configured: pass url=... or settings, or set DEEPAGENTS_REDIS_URL "
            "(deepagents-redis never assumes localhost)"
        )
    return settings, extra


def _check_tls_files(settings: RedisSettings) -> None:
    """Load the TLS files once, now, so a bad one is a `ConfigurationError` here.

    redis-py reads them on every connect: a missing CA file, an unreadable key or a key
    that is not the certificate's surfaced as "Error 2 connecting to host:port. No such file
    or directory." (a `RedisUnavailableError`, retried with backoff), as if the server were
    down. A throwaway context, so what redis-py builds later is unchanged.

    Raises:
        ConfigurationError: A file is missing, unreadable or not what its setting needs.
    """
    if settings.tls_key_file and not settings.tls_cert_file:
        raise ConfigurationError(
            "tls_key_file is set without tls_cert_file: the key is the private half of a "
            "client certificate; set both (or neither)"
        )
    context = ssl.create_default_context()
    setting = "tls_ca_file"
    try:
        if settings.tls_ca_file:
            context.load_verify_locations(cafile=settings.tls_ca_file)
        if settings.tls_cert_file:
            setting = "tls_cert_file/tls_key_file"
            context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ConfigurationError(
            f"{setting} cannot be used for TLS: {redact_text(str(exc)) or type(exc).__name__}"
        ) from exc


def _tls_kwargs(settings: RedisSettings) -> dict[str, Any]:
    _check_tls_files(settings)
    kwargs: dict[str, Any] = {"ssl": True}
    if settings.tls_ca_file:
        kwargs["ssl_ca_certs"] = settings.tls_ca_file
    if settings.tls_cert_file:
        kwargs["ssl_certfile"] = settings.tls_cert_file
    if settings.tls_key_file:
        kwargs["ssl_keyfile"] = settings.tls_key_file
    if settings.tls_insecure_skip_verify:
        log.warning(
            "INSECURE: TLS certificate and host name verification is OFF for %s "
            "(tls_insecure_skip_verify=True); anyone on the network path can impersonate "
            "the server. Never use this in production.",
            settings.redacted_url(),
        )
        kwargs["ssl_cert_reqs"] = "none"
        kwargs["ssl_check_hostname"] = False
    return kwargs


def _connection_kwargs(settings: RedisSettings, parsed: ParsedURL) -> dict[str, Any]:
    """Keyword arguments shared by every client kind (no host, port, retry)."""
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "health_check_interval": settings.health_check_interval,
        "protocol": settings.protocol,
        "max_connections": settings.max_connections,
    }
    if settings.client_name:
        kwargs["client_name"] = settings.client_name
    username = settings.username or parsed.username
    password = (
        settings.password.get_secret_value() if settings.password is not None else parsed.password
    )
    if username:
        kwargs["username"] = username
    if password:
        kwargs["password"] = password
    if parsed.tls:
        kwargs.update(_tls_kwargs(settings))
    return kwargs


def _backoff(settings: RedisSettings) -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(
        cap=settings.retry_backoff_cap, base=settings.retry_backoff_base
    )


def _sync_retry(settings: RedisSettings, retries: int | None = None) -> BoundedRetry:
    # One retry layer, bounded by the current deadline (see _deadline): redis-py nests a
    # client's Retry around commands, connects and health checks, which multiplied stalls.
    return BoundedRetry(_backoff(settings), settings.retries if retries is None else retries)


def _async_retry(settings: RedisSettings, retries: int | None = None) -> AsyncBoundedRetry:
    return AsyncBoundedRetry(_backoff(settings), settings.retries if retries is None else retries)


def _check_mode(settings: RedisSettings, parsed: ParsedURL) -> None:
    if settings.cluster == "on":
        if parsed.kind != "tcp":
            raise ConfigurationError(
                f"cluster='on' needs a redis:// or rediss:// URL, not {parsed.kind} "
                f"({settings.redacted_url()})"
            )
        if parsed.db:
            raise ConfigurationError(
                f"Redis Cluster has only database 0, the URL asks for {parsed.db}"
            )
    if parsed.kind == "sentinel" and not (parsed.service or settings.sentinel_service):
        raise ConfigurationError(
            f"Sentinel URL {settings.redacted_url()!r} names no service: use "
            "redis+sentinel://host:26379/<service> or set sentinel_service"
        )


def _refused(probe: BaseException) -> bool:
    """Whether a Sentinel's PING failed its TLS certificate check (and nothing else)."""
    return isinstance(probe, rexc.ConnectionError) and tls_refusal(probe) is not None


def _no_trusted_sentinel(service_name: str, error: type[Exception]) -> Exception:
    return error(
        f"No master found for {service_name!r}: no Sentinel's TLS certificate is trusted "
        "by tls_ca_file, or names the host the URL uses"
    )


class _Sentinel(redis.sentinel.Sentinel):
    """redis-py's Sentinel manager, telling a refused Sentinel certificate from an outage.

    redis-py reports a failed discovery as ``MasterNotFoundError`` with each Sentinel's
    error as text only, so an untrusted Sentinel certificate was retried as an outage and
    raised `RedisUnavailableError`. When the Sentinels are reached over TLS and discovery
    fails, each is asked once more (a PING, stopping at the first that is not a certificate
    refusal: a Sentinel that is down costs one more connect, within the call's deadline).
    When every one refuses its certificate, the error is raised from that refusal, which
    our error mapping reads as `ConfigurationError` (not retried).
    """

    def discover_master(self, service_name: str) -> Any:
        try:
            return super().discover_master(service_name)  # type: ignore[no-untyped-call]
        except redis.sentinel.MasterNotFoundError as exc:
            if not self.sentinel_kwargs.get("ssl"):
                raise
            failure = exc
        # Probed outside the handler: an error re-raised there gets the handled error as its
        # context, hiding the certificate error under it (seen with the asyncio client).
        refusal: BaseException | None = None
        for client in self.sentinels:
            try:
                client.ping()
            except rexc.RedisError as probe:
                if not _refused(probe):
                    raise failure from None
                refusal = refusal or probe
            else:
                raise failure from None
        error = _no_trusted_sentinel(service_name, redis.sentinel.MasterNotFoundError)
        raise error from refusal


class _AsyncSentinel(redis.asyncio.sentinel.Sentinel):
    """The asyncio twin of `_Sentinel`."""

    async def discover_master(self, service_name: str) -> Any:
        try:
            return await super().discover_master(service_name)  # type: ignore[no-untyped-call]
        except redis.asyncio.sentinel.MasterNotFoundError as exc:
            if not self.sentinel_kwargs.get("ssl"):
                raise
            failure = exc
        # Probed outside the handler: an error re-raised there gets the handled error as its
        # context, hiding the certificate error under it (seen with the asyncio client).
        refusal: BaseException | None = None
        for client in self.sentinels:
            try:
                await client.ping()
            except rexc.RedisError as probe:
                if not _refused(probe):
                    raise failure from None
                refusal = refusal or probe
            else:
                raise failure from None
        error = _no_trusted_sentinel(service_name, redis.asyncio.sentinel.MasterNotFoundError)
        raise error from refusal


class _SentinelRedis(redis.Redis):
    """A master client that also closes the Sentinel clients it was discovered through."""

    _dar_sentinel: redis.sentinel.Sentinel | None = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            sentinel, self._dar_sentinel = self._dar_sentinel, None
            if sentinel is not None:
                for client in sentinel.sentinels:
                    client.close()


def _close_now(client: redis.asyncio.Redis) -> None:
    """Close an asyncio client's sockets without awaiting: for a close that was interrupted.

    A coroutine that the garbage collector (or an event loop's end) closes gets
    ``GeneratorExit`` at its await, and a cancelled one ``CancelledError``: awaiting again
    there fails ("coroutine ignored GeneratorExit", reported as an unraisable error, seen in
    CI on Python 3.12) or outlives the cancellation. redis-py's own finalizers close a
    connection this way (``Connection._close()``: the transport closes, nobody waits); its
    pools only close by awaiting (redis-py 8.1), so their connections are read from their
    attributes, best effort. A loop already closed can close no transport (``RuntimeError``):
    those sockets are left to the garbage collector, as redis-py does.
    """
    pool = client.connection_pool
    connections = [
        *getattr(pool, "_available_connections", ()),
        *getattr(pool, "_in_use_connections", ()),
    ]
    for connection in connections:
        try:
            connection._close()
        except (RuntimeError, OSError) as exc:
            log.debug("closing an asyncio connection without its loop: %r", exc)


class _AsyncSentinelRedis(redis.asyncio.Redis):
    """Async master client that also closes its Sentinel clients."""

    _dar_sentinel: redis.asyncio.sentinel.Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the master client, then the Sentinel clients it was discovered through.

        An error closing the master still closes the Sentinel clients and is the one raised
        (as redis-py's ``Sentinel.aclose`` does for its clients). A close that is cancelled or
        abandoned midway (``GeneratorExit``) awaits nothing more: it closes the remaining
        sockets without waiting (`_close_now`) and lets the interruption go on.
        """
        sentinel, self._dar_sentinel = self._dar_sentinel, None
        try:
            await super().aclose(close_connection_pool)
        except Exception:
            if sentinel is not None:
                try:
                    await _close_sentinels(sentinel)
                except (rexc.RedisError, OSError) as exc:  # the master's error is raised
                    log.debug("closing the Sentinel clients after a failed close: %r", exc)
            raise
        except BaseException:
            if close_connection_pool or (
                close_connection_pool is None and self.auto_close_connection_pool
            ):
                _close_now(self)
            if sentinel is not None:
                for client in sentinel.sentinels:
                    _close_now(client)
            raise
        if sentinel is not None:
            await _close_sentinels(sentinel)


async def _close_sentinels(sentinel: redis.asyncio.sentinel.Sentinel) -> None:
    """Close the Sentinel clients; interrupted midway, close the rest without awaiting.

    The master's close has already taken the Sentinel object off the client, so a close
    cancelled here could not be repeated: without this, the Sentinels' sockets were left to
    the garbage collector.
    """
    try:
        await sentinel.aclose()
    except BaseException as exc:
        if not isinstance(exc, Exception):  # cancelled or abandoned (GeneratorExit)
            for client in sentinel.sentinels:
                _close_now(client)
        raise


def _sentinel_kwargs(settings: RedisSettings, parsed: ParsedURL) -> dict[str, Any]:
    """Keyword arguments of the clients that talk to the Sentinels themselves.

    TLS follows the URL unless `RedisSettings.sentinel_tls` says otherwise: with
    ``rediss+sentinel://`` the Sentinels were asked in plain text while the master was
    reached over TLS, so Sentinels that listen on TLS only (``tls-port``, ``port 0``, the
    usual TLS deployment) could not be asked: every call failed "No master found".
    """
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "protocol": settings.protocol,
    }
    if settings.sentinel_password is not None:
        kwargs["password"] = settings.sentinel_password.get_secret_value()
    if parsed.tls if settings.sentinel_tls is None else settings.sentinel_tls:
        kwargs.update(_tls_kwargs(settings))
    return kwargs


def _url_host(host: str, port: int) -> str:
    return f"redis://[{host}]:{port}" if ":" in host else f"redis://{host}:{port}"


def _cluster_kwargs(kwargs: dict[str, Any], cls: type[Any]) -> dict[str, Any]:
    # RedisCluster passes `connection_class` to its nodes only when built from a URL (redis-py
    # 8.1 creates node pools with it then); TLS is chosen by the class, not by `ssl=True`.
    out = {k: v for k, v in kwargs.items() if k != "ssl"}
    out["connection_class"] = cls
    return out


class ClosingRedisCluster(redis.RedisCluster):
    """redis-py's sync cluster client, whose `close()` closes its node connections too.

    A cluster client built from a URL (ours is: only then do the nodes get our connection
    class) gives each node a `redis.Redis` over a pool it was handed, and `Redis.close()`
    closes only a pool it created itself (redis-py 8.1). So `RedisCluster.close()` left
    every node socket open until garbage collection, seen as unclosed-socket
    `ResourceWarning`s after a connector closed. This closes them when asked.
    """

    def close(self) -> None:
        """Close the client and disconnect every node's pool, in-use connections included."""
        manager = getattr(self, "nodes_manager", None)
        nodes = []
        if manager is not None:
            # Read before closing: the startup nodes may hold clients the cache does not.
            with manager._lock:
                nodes = [*manager.nodes_cache.values(), *manager.startup_nodes.values()]
        super().close()
        for node in nodes:
            client = node.redis_connection
            if client is not None:
                client.connection_pool.disconnect()


def _build_sync(
    settings: RedisSettings, parsed: ParsedURL, extra: dict[str, Any], cluster: bool
) -> SyncClient:
    kwargs = {**_connection_kwargs(settings, parsed), **extra}
    if parsed.kind == "unix":
        client: LaneRedis = LaneRedis(
            unix_socket_path=parsed.path, db=parsed.db, retry=_sync_retry(settings), **kwargs
        )
        install_sync(client)
        enable_lane(client)
        return client
    if parsed.kind == "sentinel":
        service = parsed.service or settings.sentinel_service
        assert service is not None  # _check_mode guarantees it
        # Discovery gets our bounded retry too (redis-py's default backs off for seconds).
        sentinel = _Sentinel(  # type: ignore[no-untyped-call]
            list(parsed.hosts),
            sentinel_kwargs={
                **_sentinel_kwargs(settings, parsed),
                "retry": _sync_retry(settings, 0),
            },
        )
        install_sentinels(sentinel, is_async=False)
        master: _SentinelRedis = sentinel.master_for(  # type: ignore[no-untyped-call]
            service, redis_class=_SentinelRedis, db=parsed.db, retry=_sync_retry(settings), **kwargs
        )
        install_sync(master)
        master._dar_sentinel = sentinel
        return master
    host, port = parsed.hosts[0]
    if cluster:
        # RedisCluster retries at the cluster level (and forbids retry= in node kwargs).
        cls = DeadlineSSLConnection if parsed.tls else DeadlineConnection
        return ClosingRedisCluster(
            url=_url_host(host, port), retry=_sync_retry(settings), **_cluster_kwargs(kwargs, cls)
        )
    client = LaneRedis(host=host, port=port, db=parsed.db, retry=_sync_retry(settings), **kwargs)
    install_sync(client)
    enable_lane(client)
    return client


def _build_async(
    settings: RedisSettings, parsed: ParsedURL, extra: dict[str, Any], cluster: bool
) -> AsyncClient:
    kwargs = {**_connection_kwargs(settings, parsed), **extra}
    client: AsyncClient
    if parsed.kind == "unix":
        client = AsyncLaneRedis(
            unix_socket_path=parsed.path, db=parsed.db, retry=_async_retry(settings), **kwargs
        )
    elif parsed.kind == "sentinel":
        service = parsed.service or settings.sentinel_service
        assert service is not None
        sentinel = _AsyncSentinel(  # type: ignore[no-untyped-call]
            list(parsed.hosts),
            sentinel_kwargs={
                **_sentinel_kwargs(settings, parsed),
                "retry": _async_retry(settings, 0),
            },
        )
        install_sentinels(sentinel, is_async=True)
        master: _AsyncSentinelRedis = sentinel.master_for(
            service,
            redis_class=_AsyncSentinelRedis,
            db=parsed.db,
            retry=_async_retry(settings),
            **kwargs,
        )
        master._dar_sentinel = sentinel
        client = master
    elif cluster:
        host, port = parsed.hosts[0]
        client = redis.asyncio.RedisCluster(
            host=host, port=port, retry=_async_retry(settings), **kwargs
        )
    else:
        host, port = parsed.hosts[0]
        client = AsyncLaneRedis(
            host=host, port=port, db=parsed.db, retry=_async_retry(settings), **kwargs
        )
    install_async(client)
    if isinstance(client, AsyncLaneRedis):
        enable_async_lane(client)
    return client


def _cluster_enabled(info: Any) -> bool:
    return bool(int(info.get("cluster_enabled", 0) or 0))


def _detect_failed(settings: RedisSettings, exc: BaseException) -> DeepAgentsRedisError:
    translated = translate_redis_error(exc)
    if not isinstance(translated, RedisUnavailableError):
        return translated  # e.g. wrong credentials: a ConfigurationError, not an outage
    return RedisUnavailableError(
        f"could not auto-detect whether {settings.redacted_url()} is a Redis Cluster "
        f"({type(exc).__name__}: {redact_text(str(exc))}); set cluster='on' or 'off' "
        "(environment: DEEPAGENTS_REDIS_CLUSTER=on|off) to create clients without "
        "contacting the server"
    )


def create_client(
    settings: RedisSettings | None = None, *, url: str | None = None, **overrides: Any
) -> SyncClient:
    """Create a synchronous client with our bounded defaults.

    Args:
        settings: Connection settings; ``None`` reads ``DEEPAGENTS_REDIS_*`` variables.
        url: URL overriding ``settings.url``.
        **overrides: ``RedisSettings`` field overrides (validated), plus any other redis-py
            client keyword (e.g. ``decode_responses=True``), passed through as is.

    Returns:
        ``redis.Redis`` (standalone, unix socket, or a Sentinel-managed master) or
        ``redis.RedisCluster``. The caller owns it and must ``close()`` it.

    Raises:
        ConfigurationError: No URL, a malformed URL, unknown scheme, or a Sentinel URL without
            a service name.
        RedisUnavailableError: ``cluster="auto"`` and the server could not be asked (or a
            cluster client could not discover its nodes).
    """
    settings, extra = _resolve_settings(settings, url, overrides)
    assert settings.url is not None
    parsed = parse_redis_url(settings.url)
    _check_mode(settings, parsed)
    # The cluster probe and a cluster client's topology discovery talk to the server here.
    with deadline(settings.deadline_seconds):
        return _create_client(settings, parsed, extra)


def _create_client(settings: RedisSettings, parsed: ParsedURL, extra: dict[str, Any]) -> SyncClient:
    if settings.cluster == "on" or (settings.cluster == "auto" and parsed.kind != "tcp"):
        with redis_errors():
            return _build_sync(settings, parsed, extra, cluster=settings.cluster == "on")
    if settings.cluster == "off":
        return _build_sync(settings, parsed, extra, cluster=False)
    probe = _build_sync(settings, parsed, extra, cluster=False)
    try:
        is_cluster = _cluster_enabled(probe.info("cluster"))
    except redis.exceptions.RedisError as exc:
        probe.close()
        raise _detect_failed(settings, exc) from exc
    if not is_cluster:
        return probe  # already the right client; keep its warm connection
    probe.close()
    if parsed.db:
        raise ConfigurationError(f"Redis Cluster has only database 0, the URL asks for {parsed.db}")
    with redis_errors():
        return _build_sync(settings, parsed, extra, cluster=True)


async def create_async_client(
    settings: RedisSettings | None = None, *, url: str | None = None, **overrides: Any
) -> AsyncClient:
    """Create an asyncio client with our bounded defaults (a coroutine: ``await`` it).

    It is a coroutine because ``cluster="auto"`` asks the server with the asyncio client,
    never blocking the event loop. With ``cluster="on"``/``"off"`` it does no I/O.

    Args:
        settings: Connection settings; ``None`` reads ``DEEPAGENTS_REDIS_*`` variables.
        url: URL overriding ``settings.url``.
        **overrides: ``RedisSettings`` field overrides, plus other redis-py keywords.

    Returns:
        ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster``; the caller must
        ``await client.aclose()``.

    Raises:
        ConfigurationError: See `create_client`.
        RedisUnavailableError: ``cluster="auto"`` and the server could not be asked.
    """
    settings, extra = _resolve_settings(settings, url, overrides)
    assert settings.url is not None
    parsed = parse_redis_url(settings.url)
    _check_mode(settings, parsed)
    with deadline(settings.deadline_seconds):
        return await _create_async_client(settings, parsed, extra)


async def _create_async_client(
    settings: RedisSettings, parsed: ParsedURL, extra: dict[str, Any]
) -> AsyncClient:
    if settings.cluster != "auto" or parsed.kind != "tcp":
        with redis_errors():
            client = _build_async(settings, parsed, extra, cluster=settings.cluster == "on")
        return await ready_async(client)
    probe = _build_async(settings, parsed, extra, cluster=False)
    try:
        is_cluster = _cluster_enabled(await probe.info("cluster"))
    except redis.exceptions.RedisError as exc:
        await probe.aclose()
        raise _detect_failed(settings, exc) from exc
    if not is_cluster:
        return probe
    await probe.aclose()
    if parsed.db:
        raise ConfigurationError(f"Redis Cluster has only database 0, the URL asks for {parsed.db}")
    with redis_errors():
        cluster = _build_async(settings, parsed, extra, cluster=True)
    return await ready_async(cluster)


async def ready_async(client: AsyncClient) -> AsyncClient:
    """Learn an asyncio cluster client's topology before anyone uses it (no-op otherwise).

    redis-py's asyncio `RedisCluster` discovers its slots lazily, inside the first commands.
    When several tasks send their first commands at once (a `gather` of graph runs, a worker
    starting its slots), that discovery races with their connects and one of them fails with
    `AttributeError: 'NoneType' object has no attribute 'writelines'` (redis-py 8.1, seen
    with 16 concurrent GETs on a fresh client). Discovering once, before the client is
    shared, closes the window. The caller's deadline bounds it; on failure the client is
    closed and the error is ours (`RedisUnavailableError`).

    Args:
        client: A freshly built asyncio client.

    Returns:
        The same client, its topology known when it is a cluster client.
    """
    if isinstance(client, redis.asyncio.RedisCluster):
        try:
            with redis_errors():
                await client.initialize()
        except BaseException:
            await client.aclose()
            raise
    return client
