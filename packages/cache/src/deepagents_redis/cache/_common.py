"""Pieces shared by the LLM cache and the node cache."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

import redis.exceptions
from deepagents_redis.cache._failopen import FailOpen
from deepagents_redis.cache._settings import CacheSettings
from deepagents_redis.core import (
    CircuitBreaker,
    ConfigurationError,
    PayloadTooLargeError,
    SerializationError,
)

__all__ = [
    "GENERATION_MAX",
    "UNSET",
    "as_bytes",
    "async_owner",
    "corrupt_counters",
    "counter_refusal",
    "fits_entry",
    "incr_accepts",
    "is_generation",
    "make_guard",
    "refuse_decoding_clients",
    "skip_unencodable",
    "sync_owner",
    "ttl_ms",
]


class _Unset:
    """Marker for "argument not given" where None is a meaningful value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()

# The stored value puts '<generation>:' (at most 21 bytes: a 20-digit INCR counter and the
# colon) in front of the encoded payload.
_GENERATION_PREFIX_MAX: Final = 21
GENERATION_MAX: Final = 20
"""The longest generation counter INCR writes (``-9223372036854775808``), in bytes."""


def is_generation(gen: bytes) -> bool:
    """Whether a generation counter's value is one INCR could have written.

    The same rule as the scripts' ``generation`` (lua/gen.lua), which the callers apply to
    the counter as read (an absent or empty one being ``b"0"``): at most 20 bytes, a decimal
    integer. Anything else is a corrupt counter, under which no entry is served.
    """
    if len(gen) > GENERATION_MAX:
        return False
    return gen.isdigit() or (gen[:1] == b"-" and gen[1:].isdigit())


_INT64_MAX: Final = (1 << 63) - 1

# What Redis answers an INCR of a value it will not increment (Redis 7 and Valkey 8 alike):
# not a 64-bit decimal integer in its canonical form, or the largest one.
_INCR_REFUSALS: Final = ("not an integer", "would overflow")


def incr_accepts(gen: bytes) -> bool:
    """Whether ``INCR`` increments a counter holding ``gen`` (an absent one counts as ``b"0"``).

    Stricter than `is_generation`, which the readers apply: INCR also refuses a number that
    is not in its canonical form (``007``, ``-0``), outside 64 bits, or the largest 64-bit one.
    """
    if not is_generation(gen):
        return False
    n = int(gen)
    return str(n).encode() == gen and -_INT64_MAX - 1 <= n < _INT64_MAX


def counter_refusal(exc: BaseException, keys: Sequence[str]) -> SerializationError | None:
    """The typed error of a refused ``clear``; None for other errors.

    ``cache_clear`` refuses (``CORRUPT <keys>``, and changes nothing) when a generation
    counter holds another data type or a non-empty value INCR never writes: someone else
    wrote it (an empty counter is repaired, not refused). Redis's own ``INCR`` refusal is
    recognised too. That is corrupt stored data, a `SerializationError` as for
    a key of ours of another type (``WRONGTYPE``); it was the base `DeepAgentsRedisError`,
    which no caller could tell from any other server error.

    Args:
        exc: What the INCR raised: redis-py's ``ResponseError``, or ours raised from one.
        keys: The counters of the clear, for the message.

    Returns:
        The error to raise, or None when ``exc`` is not such a refusal.
    """
    cause = exc if isinstance(exc, redis.exceptions.ResponseError) else exc.__cause__
    if not isinstance(cause, redis.exceptions.ResponseError):
        return None
    message = str(cause)
    if message.startswith("CORRUPT "):
        # cache_clear's own refusal names the counters it refused.
        return corrupt_counters([message.removeprefix("CORRUPT ")])
    if not any(word in message for word in _INCR_REFUSALS):
        return None
    return corrupt_counters(keys)


def corrupt_counters(keys: Sequence[str]) -> SerializationError:
    """The error of a ``clear`` refused because of corrupt generation counters."""
    return SerializationError(
        f"cache clear refused, nothing was changed: the generation counter {', '.join(keys)}"
        " holds another data type or a non-empty value INCR never writes (not a 64-bit"
        " decimal integer, or the largest one);"
        " set it to an integer above every generation used before, then clear again"
    )


def fits_entry(guard: FailOpen, op: str, size: int, max_entry_bytes: int, what: str) -> bool:
    """Whether an encoded payload fits ``max_entry_bytes`` once stored; if not, say so.

    An oversize value is skipped, never truncated: it is counted as ``<op>/oversize`` and
    logged at WARNING (at most once per ``warn_interval_seconds``, with the number of lines
    suppressed since), so a cache that stores nothing because its values are too big is
    visible without a line per update.

    Args:
        guard: The cache's fail-open guard, which owns the counters.
        op: The operation counted (``"update"`` or ``"set"``).
        size: The encoded payload's size in bytes.
        max_entry_bytes: The bound from the settings.
        what: The operation's name in the log line (``"cache update"``).

    Returns:
        True when the stored value fits.
    """
    if size + _GENERATION_PREFIX_MAX <= max_entry_bytes:
        return True
    guard.count(op, "oversize")
    guard.warn_skipped(
        f"{op}/oversize",
        "%s skipped: %d bytes exceed max_entry_bytes=%d",
        what,
        size,
        max_entry_bytes,
    )
    return False


def skip_unencodable(guard: FailOpen, op: str, exc: Exception, what: str) -> None:
    """Count and log a value the codec would not encode (the update or set is skipped).

    The codec's own size limit is a value too big to store, counted ``<op>/oversize`` like
    one over ``max_entry_bytes`` (it was counted unserialisable, with the codec's message);
    anything else is ``<op>/unserializable``.

    Args:
        guard: The cache's fail-open guard, which owns the counters.
        op: The operation counted (``"update"`` or ``"set"``).
        exc: What encoding raised.
        what: The operation's name in the log line (``"cache update"``).
    """
    if isinstance(exc, PayloadTooLargeError):
        # The counter and log interval of `fits_entry`'s skips; the line names the codec's
        # limit, which is the smaller one here.
        guard.count(op, "oversize")
        guard.warn_skipped(
            f"{op}/oversize",
            "%s skipped: %d bytes exceed the codec's max_size=%d",
            what,
            exc.size,
            exc.limit,
        )
        return
    guard.count(op, "unserializable")
    guard.warn_skipped(f"{op}/unserializable", "%s skipped, value not serialisable: %s", what, exc)


def ttl_ms(ttl: float | None) -> str:
    """TTL argument for the scripts: milliseconds as text, ``'0'`` for no expiry."""
    if ttl is None:
        return "0"
    return str(max(1, round(ttl * 1000)))


def as_bytes(value: Any) -> bytes | None:
    """Normalise a reply to bytes (clients built with ``decode_responses`` return str)."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, int):
        return str(value).encode()
    raise TypeError(f"unexpected reply type {type(value).__name__}")


def sync_owner() -> tuple[str, int]:
    """Who holds a lease in sync code: the calling thread."""
    return ("thread", threading.get_ident())


def async_owner() -> tuple[str, int]:
    """Who holds a lease in async code: the calling task (or thread outside a task)."""
    task = asyncio.current_task()
    if task is None:
        return sync_owner()
    return ("task", id(task))


def make_guard(
    settings: CacheSettings, *, metric_prefix: str, breaker: CircuitBreaker | None
) -> FailOpen:
    """The fail-open guard configured from settings."""
    return FailOpen(
        metric_prefix=metric_prefix,
        strict=settings.strict,
        breaker=breaker
        or CircuitBreaker(
            failure_threshold=settings.breaker_failure_threshold,
            reset_timeout=settings.breaker_reset_seconds,
        ),
        warn_interval=settings.warn_interval_seconds,
        deadline_seconds=settings.deadline_seconds,
        connect_deadline_seconds=settings.connect_deadline_seconds,
    )


def refuse_decoding_clients(owner: str, connection: Mapping[str, Any]) -> None:
    """Refuse a client that decodes replies to text: the caches store binary envelopes.

    Such a client (``decode_responses=True``) raised UnicodeDecodeError on every read of a
    stored value; the cache failed open each time and, counting that as a connection
    failure, opened its breaker for good: a cache that never served anything.

    Args:
        owner: The cache class, for the message.
        connection: The constructor's connection arguments (`client=`, `async_client=`,
            `connector=`; a connector's clients only if it holds some already).

    Raises:
        ConfigurationError: One of the clients decodes responses.
    """
    clients = [connection.get("client"), connection.get("async_client")]
    connector = connection.get("connector")
    if connector is not None:
        clients += [client for _, client in connector.open_clients()]
    for client in clients:
        if client is not None and _decodes(client):
            raise ConfigurationError(
                f"{owner} stores binary values: give it a client built with "
                "decode_responses=False (or a URL, and it builds its own)"
            )


def _decodes(client: Any) -> bool:
    get_encoder = getattr(client, "get_encoder", None)
    if get_encoder is None:
        return False
    try:
        return bool(get_encoder().decode_responses)
    except Exception:  # noqa: BLE001 - a client we cannot inspect is given the benefit
        return False
