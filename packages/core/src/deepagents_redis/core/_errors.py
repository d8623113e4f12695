"""Errors raised by deepagents-redis.

Every error we raise derives from one root, so callers can catch the whole family::

    DeepAgentsRedisError
     +-- RedisUnavailableError      connection refused/reset, timeout, loading, cluster down
     |    +-- BreakerOpenError       the circuit breaker is open (no I/O was attempted)
     +-- OutcomeUnknownError        a write may or may not have been applied
     +-- ConflictError              optimistic lock lost: .expected vs .actual version
     +-- NotFoundError              the thing asked for does not exist
     +-- PayloadTooLargeError       a value is over a size limit: .size vs .limit
     +-- InvalidInputError          bad caller input (also a ValueError)
     +-- SerializationError         a value could not be encoded or decoded
     +-- ConfigurationError         bad settings or URL (also: wrong credentials)
     +-- CapabilityError            the server lacks a command/feature we need (or ACL denies it)
     +-- BackpressureError          a bounded queue is full: .backlog vs .limit (nothing was added)

redis-py exceptions are wrapped with `translate_redis_error` or the `redis_errors`
context manager (``raise ... from exc`` keeps the original as ``__cause__``). Messages never
carry passwords: URLs inside them are redacted.
"""

from __future__ import annotations

import re
import ssl
from types import TracebackType
from typing import Any, Literal

import redis.exceptions as rexc

__all__ = [
    "BackpressureError",
    "BreakerOpenError",
    "CapabilityError",
    "ConfigurationError",
    "ConflictError",
    "DeepAgentsRedisError",
    "InvalidInputError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PayloadTooLargeError",
    "RedisUnavailableError",
    "SerializationError",
    "redact_text",
    "redis_errors",
    "translate_redis_error",
]

# Free text (exception messages) can hold URLs we did not parse: scheme://user:pw@host ->
# scheme://user:***@host, the user info running to the last '@' before whitespace (so a
# password with '/', '?', '#' or '@' is covered; redact_url, which parses, covers
# whitespace too).
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>\S*)@")
# ?password=... in query strings (redis-py accepts it for unix:// URLs).
_QUERY_PASSWORD = re.compile(r"(?i)(password=)\S*")


def _redact_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user, sep, _password = userinfo.partition(":")
    if not sep:
        # redis://secret@host means "password only" to redis-py; redact it.
        return f"{match.group('scheme')}***@"
    return f"{match.group('scheme')}{user}:***@"


def redact_text(text: str) -> str:
    """Remove passwords from any URL-looking text.

    Args:
        text: Free text, possibly containing ``scheme://user:password@host`` URLs or
            ``password=...`` query parameters.

    Returns:
        The text with every password replaced by ``***``.
    """
    return _QUERY_PASSWORD.sub(r"\1***", _URL_USERINFO.sub(_redact_userinfo, text))


class DeepAgentsRedisError(Exception):
    """Root of every error raised by deepagents-redis."""


class RedisUnavailableError(DeepAgentsRedisError):
    """The server could not be reached or cannot serve right now.

    Raised for refused/reset connections, timeouts, a server still loading its data set,
    a cluster that is down or resharding, an exhausted pool, and an open circuit breaker.
    Reads may be retried; for writes see `OutcomeUnknownError`.
    """


class BreakerOpenError(RedisUnavailableError):
    """The circuit breaker is open, so no I/O was attempted (it costs microseconds)."""


class OutcomeUnknownError(DeepAgentsRedisError):
    """A write may or may not have been applied (every attempt timed out)."""


class ConflictError(DeepAgentsRedisError):
    """Optimistic lock lost: the stored version moved since it was read.

    Attributes:
        expected: The version the caller based its change on.
        actual: The version found on the server.
    """

    def __init__(self, expected: Any = None, actual: Any = None, *, message: str | None = None):
        self.expected = expected
        self.actual = actual
        super().__init__(message or f"conflict: expected version {expected!r}, found {actual!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_conflict, (self.expected, self.actual, str(self)))


def _rebuild_conflict(expected: Any, actual: Any, message: str) -> ConflictError:
    return ConflictError(expected, actual, message=message)


class NotFoundError(DeepAgentsRedisError):
    """The requested item does not exist."""


class PayloadTooLargeError(DeepAgentsRedisError):
    """A value is larger than the configured limit.

    Attributes:
        size: The size of the offending payload, in bytes.
        limit: The configured limit, in bytes.
    """

    def __init__(self, size: int, limit: int, *, message: str | None = None):
        self.size = size
        self.limit = limit
        super().__init__(message or f"payload of {size} bytes exceeds the limit of {limit} bytes")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_too_large, (self.size, self.limit, str(self)))


def _rebuild_too_large(size: int, limit: int, message: str) -> PayloadTooLargeError:
    return PayloadTooLargeError(size, limit, message=message)


class InvalidInputError(DeepAgentsRedisError, ValueError):
    """The caller passed invalid input (also a ``ValueError``)."""


class SerializationError(DeepAgentsRedisError):
    """A value could not be encoded, or stored bytes could not be decoded safely."""


class ConfigurationError(DeepAgentsRedisError):
    """Settings or a URL are invalid, missing, or rejected by the server (credentials)."""


class CapabilityError(DeepAgentsRedisError):
    """The server lacks a command or feature we need, or an ACL denies it."""


class BackpressureError(DeepAgentsRedisError):
    """A bounded queue is full; nothing was added (retry later, or wait with a timeout).

    Attributes:
        backlog: How many items the queue held when the request was refused.
        limit: The configured bound.
    """

    def __init__(self, backlog: int, limit: int, *, message: str | None = None):
        self.backlog = backlog
        self.limit = limit
        super().__init__(message or f"queue is full: {backlog} waiting, the limit is {limit}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_backpressure, (self.backlog, self.limit, str(self)))


def _rebuild_backpressure(backlog: int, limit: int, message: str) -> BackpressureError:
    return BackpressureError(backlog, limit, message=message)


# The reply's word opens the message, or follows redis-py's pipeline annotation ("Command # 1
# (...) of pipeline caused error: WRONGTYPE ..." or, with the args tuple, "...: ('WRONGTYPE
# ...',)") or Redis 6's script prefix ("... @user_script:1: WRONGTYPE ...").
_WRONGTYPE = re.compile(r"(?:^|: |: \(')WRONGTYPE ")
# SELECT of a database the server does not have: "ERR DB index is out of range" (Redis 7 and
# Valkey 8; redis-py strips the "ERR "), raised while a connection is made.
_DB_OUT_OF_RANGE = re.compile(r"(?:^|: )(?:ERR )?DB index is out of range")


def _is_unknown_command(message: str) -> bool:
    lowered = message.lower()
    return "unknown command" in lowered or "unknown subcommand" in lowered


def _is_refused_for_availability(message: str) -> bool:
    # Error codes of https://redis.io/docs/latest/operate/oss_and_stack/management/replication/
    # ("min-replicas-to-write") and replica-serve-stale-data: a refusal, never a partial write.
    return message.startswith(("NOREPLICAS", "MASTERDOWN"))


def tls_refusal(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate check that failed under a redis-py connection error, if one did.

    redis-py turns the `ssl.SSLCertVerificationError` of a TLS handshake into a plain
    ``ConnectionError`` whose ``__context__`` is the original. An untrusted or misnamed
    server certificate is a configuration answer, not an outage: retrying reconnects to
    the same certificate (it was retried with backoff, then reported as "Redis is
    unavailable").

    Args:
        exc: A redis-py exception.

    Returns:
        The verification error, or None when the failure was something else.
    """
    if not isinstance(exc, rexc.ConnectionError):
        return None
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 4:  # redis-py wraps once; a few levels is ample
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return None


def translate_redis_error(exc: BaseException) -> DeepAgentsRedisError:
    """Map a redis-py exception to our error tree (the caller raises it ``from exc``).

    Mapping (first match wins):

    * our own errors are returned unchanged;
    * a ``RedisClusterException`` raised from a node's error (no startup node reachable)
      -> what that error maps to, when it is `RedisUnavailableError` or `ConfigurationError`;
    * ``AuthenticationError`` / ``AuthenticationWrongNumberOfArgsError`` ->
      `ConfigurationError` (retrying will not fix a wrong password);
    * a ``ConnectionError`` from a failed TLS certificate check (`tls_refusal`) ->
      `ConfigurationError` (an untrusted CA or a host name the certificate does not list);
    * ``ConnectionError`` (incl. ``BusyLoadingError``, ``MaxConnectionsError``),
      ``TimeoutError``, ``ClusterDownError``, ``TryAgainError``, ``SlotNotCoveredError``,
      ``ReadOnlyError`` (a replica promoted/demoted mid-failover), and the ``NOREPLICAS`` /
      ``MASTERDOWN`` refusals (``min-replicas-to-write`` not met, a replica cut off from its
      master: the command was refused, nothing was applied), and a Cluster client's
      ``ClusterError`` "TTL exhausted" (every attempt was redirected or told TRYAGAIN, as
      during a slot migration: the command never ran) -> `RedisUnavailableError`;
    * ``NoPermissionError``, ``ModuleError`` and ``ResponseError`` "unknown command" ->
      `CapabilityError`;
    * a ``WRONGTYPE`` reply (a key of ours holds another data type: another writer, a
      restore, a collision) -> `SerializationError`, as for stored bytes that fail our
      checks: foreign or damaged data that retrying will not fix;
    * anything else -> `DeepAgentsRedisError`.

    Args:
        exc: The exception raised by redis-py.

    Returns:
        The translated exception, with a password-free message naming the original type.
    """
    if isinstance(exc, DeepAgentsRedisError):
        return exc
    cause = exc.__cause__
    if isinstance(exc, rexc.RedisClusterException) and isinstance(cause, rexc.RedisError):
        # "Redis Cluster cannot be connected. Please provide at least one reachable node"
        # (redis-py, raised `from` the last node's error): every startup node down was the
        # base `DeepAgentsRedisError`, not `RedisUnavailableError`, and a rejected password
        # or server certificate was not `ConfigurationError`. The node's error decides.
        inner = translate_redis_error(cause)
        if isinstance(inner, RedisUnavailableError | ConfigurationError):
            return type(inner)(f"no Redis Cluster startup node could be used: {inner}")
    detail = redact_text(str(exc)) or "(no message)"
    message = f"{type(exc).__name__}: {detail}"
    if isinstance(exc, rexc.AuthenticationError | rexc.AuthenticationWrongNumberOfArgsError):
        return ConfigurationError(f"Redis rejected the credentials: {message}")
    if isinstance(exc, rexc.ResponseError) and _DB_OUT_OF_RANGE.search(str(exc)):
        # SELECT at connect time (redis://host/99 past the server's `databases`): it failed
        # every call as the base error, which nothing handles as a setting to fix.
        return ConfigurationError(
            "the URL's database number does not exist on this server (it has `databases` "
            f"of them, numbered from 0): {message}"
        )
    refusal = tls_refusal(exc)
    if refusal is not None:
        return ConfigurationError(
            f"the server's TLS certificate was not accepted ({refusal.verify_message or detail}):"
            " set tls_ca_file to the CA bundle that signed it, and connect by a host name the"
            f" certificate lists ({message})"
        )
    if isinstance(
        exc,
        rexc.ConnectionError
        | rexc.TimeoutError
        | rexc.ClusterDownError
        | rexc.ClusterError  # "TTL exhausted.": redis-py's only other ClusterError (8.1)
        | rexc.TryAgainError
        | rexc.SlotNotCoveredError
        | rexc.ReadOnlyError,
    ) or (isinstance(exc, rexc.ResponseError) and _is_refused_for_availability(str(exc))):
        return RedisUnavailableError(f"Redis is unavailable: {message}")
    if isinstance(exc, rexc.NoPermissionError | rexc.ModuleError) or (
        isinstance(exc, rexc.ResponseError) and _is_unknown_command(str(exc))
    ):
        return CapabilityError(f"Redis lacks a needed command or permission: {message}")
    if isinstance(exc, rexc.ResponseError) and _WRONGTYPE.search(str(exc)):
        return SerializationError(f"a key holds data of another type: {message}")
    return DeepAgentsRedisError(f"Redis error: {message}")


# Everything redis-py raises: RedisClusterException does not derive from RedisError.
REDIS_EXCEPTIONS: tuple[type[BaseException], ...] = (rexc.RedisError, rexc.RedisClusterException)
"""Everything redis-py raises (RedisClusterException does not derive from RedisError): the
one tuple every phase catches."""

TRANSPORT_EXCEPTIONS: tuple[type[BaseException], ...] = (rexc.ConnectionError, rexc.TimeoutError)
"""redis-py's connection-level failures (the request may or may not have been sent)."""

_REDIS_EXCEPTIONS = REDIS_EXCEPTIONS


class redis_errors:  # used like a function: ``with redis_errors(): ...``
    """Context manager re-raising redis-py exceptions as ours (``raise ... from exc``).

    Works both as ``with redis_errors():`` and ``async with redis_errors():``; it only
    translates exceptions, so the plain form is fine in async code too.

    Example:
        >>> with redis_errors():
        ...     client.set("k", b"v")  # doctest: +SKIP
    """

    def __enter__(self) -> redis_errors:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if exc is not None and isinstance(exc, _REDIS_EXCEPTIONS):
            raise translate_redis_error(exc) from exc
        return False

    async def __aenter__(self) -> redis_errors:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)
