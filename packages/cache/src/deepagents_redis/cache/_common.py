"""Pieces shared by the LLM cache and the node cache."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Final

from deepagents_redis.cache._failopen import FailOpen
from deepagents_redis.cache._settings import CacheSettings
from deepagents_redis.core import CircuitBreaker

__all__ = [
    "UNSET",
    "as_bytes",
    "async_owner",
    "make_guard",
    "sync_owner",
    "ttl_ms",
]


class _Unset:
    """Marker for "argument not given" where None is a meaningful value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


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
