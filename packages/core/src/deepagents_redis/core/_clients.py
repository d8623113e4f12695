"""Client factory and `RedisConnector`.

One place turns settings into redis-py clients, so every component gets the same bounded
timeouts, retry policy, pool size, protocol and TLS handling, for every topology:

* ``redis://host:port/db``, ``rediss://...`` (TLS), ``unix:///path/to.sock?db=0``;
* ``redis+sentinel://[user:pass@]s1:26379,s2:26379/<service>[/<db>]`` (or
  ``rediss+sentinel://``; the service may come from ``settings.sentinel_service``);
* Redis Cluster, chosen by ``settings.cluster`` (``"on"``, ``"off"``, or ``"auto"``: one
  ``INFO cluster`` round trip at creation time decides).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import parse_qs, unquote

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.retry
import redis.sentinel
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
    translate_redis_error,
)
from deepagents_redis.core._settings import RedisSettings
from deepagents_redis.core._urls import redact_url, split_userinfo
from redis.backoff import ExponentialWithJitterBackoff

if TYPE_CHECKING:
    from deepagents_redis.core._keys import KeySpace

__all__ = [
    "AsyncClient",
    "RedisConnector",
    "SyncClient",
    "create_async_client",
    "create_client",
    "parse_redis_url",
]

log = logging.getLogger("deepagents_redis.core")

SyncClient: TypeAlias = "redis.Redis | redis.RedisCluster"
"""A synchronous client as returned by `create_client`."""

AsyncClient: TypeAlias = "redis.asyncio.Redis | redis.asyncio.RedisCluster"
"""An asyncio client as returned by `create_async_client`."""

_DEFAULT_PORT = 6379
_DEFAULT_SENTINEL_PORT = 26379
_QUERY_KEYS = frozenset({"db", "username", "password"})


@dataclass(frozen=True)
class ParsedURL:
    """A Redis URL taken apart (see `parse_redis_url`).

    Attributes:
        kind: ``"tcp"``, ``"unix"`` or ``"sentinel"``.
        tls: Whether the scheme asks for TLS (``rediss://``, ``rediss+sentinel://``).
        hosts: ``(host, port)`` pairs: one for TCP, one or more Sentinels.
        path: Socket path for ``unix://``.
        db: Database number (always 0 on Cluster).
        username: ACL user from the URL.
        password: Password from the URL (never printed: ``repr`` hides it).
        service: Sentinel master name from the URL path.
    """

    kind: Literal["tcp", "unix", "sentinel"]
    tls: bool = False
    hosts: tuple[tuple[str, int], ...] = ()
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    service: str | None = None


def _bad(url: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"invalid Redis URL {redact_url(url)!r}: {problem}")


def _parse_host(url: str, item: str, default_port: int) -> tuple[str, int]:
    item = item.strip()
    if not item:
        raise _bad(url, "empty host")
    if item.startswith("["):  # [IPv6]:port
        host, sep, rest = item[1:].partition("]")
        if not sep:
            raise _bad(url, "unclosed '[' in an IPv6 host")
        port_text = rest[1:] if rest.startswith(":") else rest
        if rest and not rest.startswith(":"):
            raise _bad(url, f"unexpected text after IPv6 host: {rest!r}")
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise _bad(url, "missing host name")
    if not port_text:
        return unquote(host), default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _bad(url, f"invalid port {port_text!r}")
    return unquote(host), int(port_text)


def _parse_db(url: str, text: str) -> int:
    if not text.isdigit():
        raise _bad(url, f"database must be a non-negative integer, got {text!r}")
    return int(text)


def parse_redis_url(url: str) -> ParsedURL:
    """Parse and validate a Redis URL without connecting.

    Args:
        url: ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://`` or
            ``rediss+sentinel://`` URL.

    Returns:
        The URL's parts.

    Raises:
        ConfigurationError: The URL is malformed, has an unknown scheme, lacks a host, has a
            bad port or database, or unknown query options (the message redacts passwords).
    """
    if "://" not in url:
        raise _bad(url, "expected scheme://..., e.g. redis://host:6379/0")
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme not in {"redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel"}:
        raise _bad(
            url,
            f"unknown scheme {scheme!r}; use redis://, rediss://, unix://, "
            "redis+sentinel:// or rediss+sentinel://",
        )
    # The user info first, up to the LAST '@' (split_userinfo, shared with redact_url): a
    # password may contain '/', '?', '#' or ':' unencoded and must not leak into the host.
    # Then the query and fragment, by hand: urlsplit rejects several hosts in netloc.
    userinfo, rest = split_userinfo(rest, query_keys=_QUERY_KEYS)
    rest, _, _fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    path = slash + path
    username: str | None = None
    password: str | None = None
    if userinfo is not None:
        user, sep, pw = userinfo.partition(":")
        if sep:
            username, password = (unquote(user) or None), (unquote(pw) or None)
        else:
            # redis-py reads redis://secret@host as a password-only URL.
            password = unquote(user) or None
    try:
        params = parse_qs(query, keep_blank_values=False, strict_parsing=False)
    except ValueError as exc:  # pragma: no cover - parse_qs is lenient by default
        raise _bad(url, f"bad query string ({exc})") from None
    unknown = sorted(set(params) - _QUERY_KEYS)
    if unknown:
        raise _bad(
            url,
            f"unsupported query option(s) {', '.join(unknown)}; set RedisSettings fields instead",
        )
    if "username" in params:
        username = params["username"][0]
    if "password" in params:
        password = params["password"][0]
    db = _parse_db(url, params["db"][0]) if "db" in params else None

    if scheme == "unix":
        if netloc and netloc != "localhost":
            raise _bad(url, "unix:// takes a path (unix:///path/to/redis.sock)")
        if not path or path == "/":
            raise _bad(url, "unix:// URL without a socket path")
        return ParsedURL(
            kind="unix",
            path=unquote(path),
            db=db or 0,
            username=username,
            password=password,
        )

    tls = scheme.startswith("rediss")
    if scheme.endswith("+sentinel"):
        hosts = tuple(_parse_host(url, item, _DEFAULT_SENTINEL_PORT) for item in netloc.split(","))
        segments = [s for s in path.split("/") if s]
        if len(segments) > 2:
            raise _bad(url, "sentinel path must be /<service>[/<db>]")
        service = unquote(segments[0]) if segments else None
        if len(segments) == 2:
            db = db if db is not None else _parse_db(url, segments[1])
        return ParsedURL(
            kind="sentinel",
            tls=tls,
            hosts=hosts,
            db=db or 0,
            username=username,
            password=password,
            service=service,
        )

    if "," in netloc:
        raise _bad(
            url, "several hosts are only allowed for Sentinel (a Cluster needs one seed node)"
        )
    host = _parse_host(url, netloc, _DEFAULT_PORT)
    segment = path.strip("/")
    if segment:
        if "/" in segment:
            raise _bad(url, "path must be /<db>")
        db = db if db is not None else _parse_db(url, segment)
    return ParsedURL(
        kind="tcp", tls=tls, hosts=(host,), db=db or 0, username=username, password=password
    )


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


def _tls_kwargs(settings: RedisSettings) -> dict[str, Any]:
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


class _AsyncSentinelRedis(redis.asyncio.Redis):
    """Async master client that also closes its Sentinel clients."""

    _dar_sentinel: redis.asyncio.sentinel.Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            sentinel, self._dar_sentinel = self._dar_sentinel, None
            if sentinel is not None:
                await sentinel.aclose()


def _sentinel_kwargs(settings: RedisSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "protocol": settings.protocol,
    }
    if settings.sentinel_password is not None:
        kwargs["password"] = settings.sentinel_password.get_secret_value()
    return kwargs


def _url_host(host: str, port: int) -> str:
    return f"redis://[{host}]:{port}" if ":" in host else f"redis://{host}:{port}"


def _cluster_kwargs(kwargs: dict[str, Any], cls: type[Any]) -> dict[str, Any]:
    # RedisCluster passes `connection_class` to its nodes only when built from a URL (redis-py
    # 8.1 creates node pools with it then); TLS is chosen by the class, not by `ssl=True`.
    out = {k: v for k, v in kwargs.items() if k != "ssl"}
    out["connection_class"] = cls
    return out


def _build_sync(
    settings: RedisSettings, parsed: ParsedURL, extra: dict[str, Any], cluster: bool
) -> SyncClient:
    kwargs = {**_connection_kwargs(settings, parsed), **extra}
    if parsed.kind == "unix":
        client: redis.Redis = redis.Redis(
            unix_socket_path=parsed.path, db=parsed.db, retry=_sync_retry(settings), **kwargs
        )
        install_sync(client)
        return client
    if parsed.kind == "sentinel":
        service = parsed.service or settings.sentinel_service
        assert service is not None  # _check_mode guarantees it
        # Discovery gets our bounded retry too (redis-py's default backs off for seconds).
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(parsed.hosts),
            sentinel_kwargs={**_sentinel_kwargs(settings), "retry": _sync_retry(settings, 0)},
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
        return redis.RedisCluster(
            url=_url_host(host, port), retry=_sync_retry(settings), **_cluster_kwargs(kwargs, cls)
        )
    client = redis.Redis(host=host, port=port, db=parsed.db, retry=_sync_retry(settings), **kwargs)
    install_sync(client)
    return client


def _build_async(
    settings: RedisSettings, parsed: ParsedURL, extra: dict[str, Any], cluster: bool
) -> AsyncClient:
    kwargs = {**_connection_kwargs(settings, parsed), **extra}
    client: AsyncClient
    if parsed.kind == "unix":
        client = redis.asyncio.Redis(
            unix_socket_path=parsed.path, db=parsed.db, retry=_async_retry(settings), **kwargs
        )
    elif parsed.kind == "sentinel":
        service = parsed.service or settings.sentinel_service
        assert service is not None
        sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(parsed.hosts),
            sentinel_kwargs={**_sentinel_kwargs(settings), "retry": _async_retry(settings, 0)},
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
        client = redis.asyncio.Redis(
            host=host, port=port, db=parsed.db, retry=_async_retry(settings), **kwargs
        )
    install_async(client)
    return client


def _cluster_enabled(info: Any) -> bool:
    return bool(int(info.get("cluster_enabled", 0) or 0))


def _detect_failed(settings: RedisSettings, exc: BaseException) -> DeepAgentsRedisError:
    translated = translate_redis_error(exc)
    if not isinstance(translated, RedisUnavailableError):
        return translated  # e.g. wrong credentials: a ConfigurationError, not an outage
    return RedisUnavailableError(
        f"could not auto-detect whether {settings.redacted_url()} is a Redis Cluster "
        f"({type(exc).__name__}: {redact_text(str(exc))}); set cluster='on' or 'off' to "
        "create clients without contacting the server"
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
            return _build_async(settings, parsed, extra, cluster=settings.cluster == "on")
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
        return _build_async(settings, parsed, extra, cluster=True)


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
    def is_cluster(self) -> bool:
        """Whether the target is a Redis Cluster.

        Known without I/O when a client was passed or ``settings.cluster`` is pinned; with
        ``"auto"`` it creates the sync client (one ``INFO cluster`` round trip).
        """
        if self._is_cluster is None:
            self.sync()
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
        return self.sync()

    async def aclient(self) -> AsyncClient:
        """The asyncio client, created on first use; detects the topology without blocking.

        Returns:
            The async client passed in, or one created from the settings.

        Raises:
            ConfigurationError: There is neither an async client nor a URL.
            RedisUnavailableError: Cluster auto-detection could not reach the server.
        """
        return await self.async_client()

    def sync(self) -> SyncClient:
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

    def async_(self) -> AsyncClient:
        """The asyncio client, created on first use inside the running event loop.

        With ``cluster="auto"`` and the mode not yet known, this has to ask the server with
        a short *blocking* round trip; prefer ``await connector.async_client()`` in async
        code (or pin ``cluster``), which detects with the asyncio client.

        Returns:
            The async client passed in, or one created from the settings.

        Raises:
            ConfigurationError: There is neither an async client nor a URL.
            RedisUnavailableError: Cluster auto-detection could not reach the server.
        """
        client = self._current_async()
        if client is not None:
            return client
        if self._is_cluster is None:
            self.is_cluster  # noqa: B018 - resolves the mode (blocking probe, documented)
        return self._adopt_async(self._build_async_now())

    async def async_client(self) -> AsyncClient:
        """Like `async_`, but detects ``cluster="auto"`` without blocking the loop.

        Returns:
            The async client passed in, or one created from the settings.
        """
        client = self._current_async()
        if client is not None:
            return client
        if self._is_cluster is None:
            created = await create_async_client(self._settings_for_creation("async"))
            self._is_cluster = isinstance(created, redis.asyncio.RedisCluster)
            current = self._current_async()
            if current is not None:  # another task won the race while we awaited
                await created.aclose()
                return current
            return self._adopt_async(created)
        return self._adopt_async(self._build_async_now())

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
        """Close every client this connector created (async and sync)."""
        client, owned = self._async, self._owns_async
        if owned:
            self._async, self._owns_async, self._async_loop = None, False, None
        if owned and client is not None:
            await client.aclose()
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
