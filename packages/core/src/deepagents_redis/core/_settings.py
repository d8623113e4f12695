"""Typed connection settings: keyword arguments first, then ``DEEPAGENTS_REDIS_*`` variables.

The defaults are bounded on purpose (BRIEF §3 "Clients"): a dead or stalled server must cost
an agent seconds, not minutes, and a retry storm must not amplify an outage. Each field's
docstring says where we differ from redis-py 8's own defaults and why.
"""

from __future__ import annotations

from typing import Any, Final, Literal, Self

from deepagents_redis.core._errors import ConfigurationError, redact_text
from deepagents_redis.core._keys import prefix_problem
from deepagents_redis.core._urls import redact_url
from pydantic import Field, SecretStr, ValidationError, field_serializer, field_validator
from pydantic import model_validator as _model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

__all__ = ["ENV_PREFIX", "PhaseSettings", "RedisSettings", "redact_url"]

ENV_PREFIX = "DEEPAGENTS_REDIS_"
"""Prefix of every environment variable read by `RedisSettings`."""


class PhaseSettings(BaseSettings):
    """The base of every settings class: one convention for core and each phase.

    Keyword arguments first, then environment variables under the subclass's prefix;
    unknown keyword arguments are refused (`extra="forbid"`), defaults are validated, and
    attribute docstrings become field descriptions (docs, CLI help). Any invalid value
    raises `ConfigurationError` naming the class, the field and the rule (never the
    rejected input, which may be a secret), never pydantic's `ValidationError`: a bad
    `DEEPAGENTS_REDIS_TODOS_MAX_ITEMS` is a one-line configuration error, not a traceback.
    Durations are `*_seconds`.
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        validate_default=True,
        use_attribute_docstrings=True,
        # Pydantic echoes rejected input in validation errors; a bad URL carries a password.
        hide_input_in_errors=True,
    )

    def __init__(self, *args: Any, **values: Any) -> None:
        try:
            super().__init__(*args, **values)
        except ValidationError as exc:
            raise ConfigurationError(_describe(type(self).__name__, exc)) from exc
        except SettingsError as exc:
            # pydantic-settings parses a variable of a complex field (a dict, a list) as JSON
            # before validation, and text that is not JSON raised its bare SettingsError (a
            # ValueError) out of the constructor. Its message names the field and the source,
            # never the value.
            raise ConfigurationError(f"invalid {type(self).__name__}: {exc}") from exc

    def with_overrides(self, **overrides: Any) -> Self:
        """Return a validated copy with some fields replaced (the environment is not re-read).

        Args:
            **overrides: Field names and their new values.

        Returns:
            A new settings object.

        Raises:
            ConfigurationError: An override names no field or has an invalid value.
        """
        data = {name: getattr(self, name) for name in type(self).model_fields}
        data.update(overrides)
        try:
            return type(self).model_validate(data)
        except ValidationError as exc:
            raise ConfigurationError(_describe(type(self).__name__, exc)) from exc


_MAX_SOCKET_TIMEOUT: Final = 86_400.0
"""The largest socket timeout the settings accept (a day): finite, and far inside what
``socket.settimeout`` takes."""


class RedisSettings(PhaseSettings):
    """How to reach Redis, read from keyword arguments first, then ``DEEPAGENTS_REDIS_*``.

    A password (inside ``url`` or in ``password``) never appears in ``repr()``, ``str()``,
    ``model_dump()`` or in the messages of the errors raised here; use
    `redacted_url` to show where you connect.

    Invalid values raise `ConfigurationError` (whose message
    names the field and the rule, never the rejected secret).

    Example:
        >>> RedisSettings(url="redis://:s3cret@cache:6379/0").redacted_url()
        'redis://:***@cache:6379/0'
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    url: str | None = Field(default=None, repr=False)
    """Redis URL: ``redis://``, ``rediss://`` (TLS), ``unix://``, ``redis+sentinel://`` or
    ``rediss+sentinel://`` (``redis+sentinel://host1:26379,host2:26379/<service>[/<db>]``).
    Credentials may be embedded; they are redacted everywhere we print. ``None`` means "not
    configured": we never fall back to localhost. Env: ``DEEPAGENTS_REDIS_URL``."""

    key_prefix: str = "dar"
    """First component of every key, so several apps can share one Redis. Letters, digits
    and ``_ . : -`` only (no braces: they would change the Cluster hash slot)."""

    username: str | None = None
    """ACL user name; overrides the one in ``url`` when set."""

    password: SecretStr | None = Field(default=None, repr=False)
    """Password; overrides the one in ``url`` when set (handy for secrets injected as their
    own environment variable, ``DEEPAGENTS_REDIS_PASSWORD``)."""

    socket_timeout: float = Field(default=2.0, gt=0, le=_MAX_SOCKET_TIMEOUT)
    """Seconds to wait for a reply. redis-py 8 waits 5 s; our operations are single round
    trips of small payloads, so 2 s already means "the server is in trouble". Must be > 0:
    ``None``/infinite timeouts let a stalled server hang an agent forever; and at most a day
    (``inf``, or 1e12, passed here and then made every command fail with Python's
    ``OverflowError`` from ``socket.settimeout``)."""

    socket_connect_timeout: float = Field(default=2.0, gt=0, le=_MAX_SOCKET_TIMEOUT)
    """Seconds to wait for a TCP/TLS connection (redis-py 8: 5 s). Must be > 0 and at most a
    day."""

    retries: int = Field(default=2, ge=0, le=20)
    """Retries after a connection error or timeout (so up to ``retries + 1`` attempts).
    redis-py 8 retries 10 times: with a 5 s timeout that is about a minute of stalling per call
    while the server is down, and each retry of a non-idempotent write may apply it again.
    We retry twice; writes that must not duplicate use operation ids (see
    ``run_idempotent``)."""

    retry_backoff_base: float = Field(default=0.05, gt=0, le=_MAX_SOCKET_TIMEOUT)
    """Base of the jittered exponential backoff between retries, in seconds
    (``redis.backoff.ExponentialWithJitterBackoff``: sleep ``random() * base * 2**n``, capped).
    redis-py uses 0.01 s; 50 ms gives a restarting server or a failover a moment to settle.
    At most a day, like the timeouts."""

    retry_backoff_cap: float = Field(default=0.5, gt=0, le=_MAX_SOCKET_TIMEOUT)
    """Upper bound of one backoff sleep, in seconds (redis-py: 1 s). Must be >= the base and
    at most a day (``inf`` passed here, and a command without a deadline then failed with
    Python's ``OverflowError`` from ``time.sleep`` instead of a Redis error)."""

    max_connections: int = Field(default=50, ge=1)
    """Connection pool size per process (per node on Cluster). redis-py 8 allows 100 per pool
    and older versions 2**31; a bound keeps a burst of agents from exhausting the server's
    ``maxclients``. On the asyncio client, operations beyond it wait for a free connection
    within their deadline (``RedisConnector.async_gate``), then fail with
    ``RedisUnavailableError``; a sync call finding every connection busy fails at once."""

    health_check_interval: float = Field(default=30.0, ge=0)
    """Seconds a pooled connection may sit idle before it is PINGed on checkout (0 = never,
    the redis-py default). Catches connections silently dropped by NATs, load balancers and
    managed-service proxies before a real command is lost on them."""

    protocol: Literal[2, 3] = 2
    """RESP version. redis-py 8 defaults to RESP3; we default to RESP2 because it is what
    every managed service, proxy and Valkey speak identically, and reply shapes do not change
    between versions. Choose 3 only when you want client-side caching."""

    cluster: Literal["auto", "on", "off"] = "auto"
    """``"on"``: Redis Cluster client; ``"off"``: single-endpoint client; ``"auto"``: ask the
    server (``INFO cluster``) once when the client is created and pick. Pin it to skip that
    round trip (and to create clients while the server is down)."""

    sentinel_service: str | None = None
    """Sentinel master name, when not given in the ``redis+sentinel://`` URL path."""

    sentinel_password: SecretStr | None = Field(default=None, repr=False)
    """Password of the Sentinel processes themselves (often unset even when the master has
    one, which is why the URL credentials go to the master only)."""

    sentinel_tls: bool | None = None
    """TLS to the Sentinel processes. ``None`` (the default) follows the URL: with
    ``rediss+sentinel://`` the Sentinels are reached over TLS too, with the same CA bundle
    and client certificate as the master (a Sentinel with ``tls-port`` and ``port 0``).
    ``False`` for Sentinels that listen in plain text beside TLS data nodes; ``True`` for
    TLS Sentinels in front of plain-text data nodes (``redis+sentinel://``)."""

    tls_ca_file: str | None = None
    """CA bundle used to verify the server certificate (``rediss://``)."""

    tls_cert_file: str | None = None
    """Client certificate for mutual TLS."""

    tls_key_file: str | None = None
    """Private key of the client certificate."""

    tls_insecure_skip_verify: bool = False
    """DANGEROUS: accept any server certificate and host name (man-in-the-middle possible).
    For local testing only; a warning is logged every time a client is created with it."""

    client_name: str | None = None
    """Name shown by ``CLIENT LIST`` (set with one extra command per new connection)."""

    deadline_seconds: float = Field(default=5.0, gt=0)
    """Most seconds one public call may take, retries, reconnects, health-check PINGs and
    Sentinel discovery included (todos, health checks; fs and the cache have their own,
    see their settings). Enforced on clients built by our factory: each connect and read is
    cut to the time left, and no retry starts after it. With a dead or blackholed server a
    call fails after about this long instead of ``attempts x timeouts`` (18 s and more
    before: redis-py nests its retries)."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("url is empty")
        # Deeper parsing (scheme, host, port, sentinel service) happens in the client
        # factory, which raises ConfigurationError naming the problem.
        return value.strip()

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_from_text(cls, value: Any) -> Any:
        # Environment variables arrive as text; Literal[2, 3] would not coerce "3".
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value

    @field_validator("key_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        # The same rule KeySpace applies, checked once here instead of at first use.
        problem = prefix_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @_model_validator(mode="after")
    def _check_backoff(self) -> RedisSettings:
        if self.retry_backoff_cap < self.retry_backoff_base:
            raise ValueError("retry_backoff_cap must be >= retry_backoff_base")
        return self

    @field_serializer("url")
    def _dump_url(self, value: str | None) -> str | None:
        # Dumps are for logs and config printouts: keep them secret-free.
        return None if value is None else redact_url(value)

    def __repr_args__(self) -> Any:
        url = getattr(self, "url", None)  # absent while a failed __init__ is being reported
        yield "url", None if url is None else redact_url(url)
        yield from super().__repr_args__()

    def redacted_url(self) -> str:
        """The URL with its password replaced by ``***`` (``"<unset>"`` when not set).

        Returns:
            A string safe to print and log.
        """
        return redact_url(self.url)


def _describe(owner: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "settings"
        problems.append(f"{where}: {error['msg']}")
    return redact_text(f"invalid {owner}: " + "; ".join(problems))
