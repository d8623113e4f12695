"""Deadlines and the one retry layer (issue 8 defect 1; BRIEF §3 "Clients").

redis-py applies a client's `Retry` at three nested levels: around the command, around the
connect + handshake inside it, and around the health-check `PING` inside that. With 2 retries
and a 2 s socket timeout a blackholed server made one command take 18 s, and our op-id
writes (which retry on their own) multiplied that again. This module gives every client our
factory builds ONE retry layer with a deadline:

* `deadline(seconds)` bounds everything inside it: retries stop when the time is up, and the
  connection classes of `deepagents_redis.core._connections` cut each connect and each read
  to the time left. Nested deadlines keep the tightest.
* `BoundedRetry` / `AsyncBoundedRetry` retry only at the outermost level redis-py asks them
  to (the nested connect/health-check calls run once and let the outer level decide), never
  start a retry whose backoff would end past the deadline, and do not retry at all inside
  `no_resend()`: a scripted write with an op id is re-sent by `run_idempotent` only, with the
  same op id, so redis-py never re-sends it blindly.
* Failures that happened before the request could reach the server (connect, handshake,
  health check, a deadline spent before sending) are marked with `mark_not_sent`, so a write
  that never left the process is `RedisUnavailableError`, not `OutcomeUnknownError`.

The state lives in context variables: it follows a thread's call stack and an asyncio task,
never leaks across threads or tasks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from typing import Any, Final, TypeVar

import redis.asyncio.retry
import redis.exceptions as rexc
import redis.retry
from deepagents_redis.core._errors import tls_refusal

__all__ = [
    "AsyncBoundedRetry",
    "BoundedRetry",
    "clear_deadline",
    "deadline",
    "deadline_exceeded",
    "mark_not_sent",
    "no_resend",
    "remaining",
    "was_not_sent",
]

T = TypeVar("T")

_DEADLINE: ContextVar[float | None] = ContextVar("dar_deadline", default=None)
_NO_RESEND: ContextVar[bool] = ContextVar("dar_no_resend", default=False)
_IN_RETRY: ContextVar[bool] = ContextVar("dar_in_retry", default=False)

# Answers, not transport failures, although redis-py derives them from ConnectionError (so
# its `Retry` retried them): a rejected password stays rejected, and each retry opened
# another connection and slept a backoff before the caller learned it.
NOT_RETRYABLE: Final[tuple[type[BaseException], ...]] = (
    rexc.AuthenticationError,
    rexc.AuthenticationWrongNumberOfArgsError,
)


def not_retryable(error: BaseException) -> bool:
    """Whether a failure is an answer that a retry would only repeat.

    `NOT_RETRYABLE`, and a connection refused by the TLS certificate check (a plain
    ``ConnectionError`` to redis-py: see `_errors.tls_refusal`).
    """
    return isinstance(error, NOT_RETRYABLE) or tls_refusal(error) is not None


# An attribute, not a subclass: redis-py's cluster client retries only exact exception types
# (`type(e) in ERRORS_ALLOW_RETRY`), so a subclass would silently stop its failover retries.
_NOT_SENT_ATTR = "_dar_not_sent"


class _Bound:
    """`deadline(seconds)`'s context manager: sets the bound on entry, restores it on exit.

    A class, not a `@contextmanager` generator: every operation of every phase enters one,
    and a generator-based manager costs ~1 µs more per call (measured here, the performance
    pass of the cache hit).
    """

    __slots__ = ("_seconds", "_token")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._token: Token[float | None] | None = None

    def __enter__(self) -> None:
        # The budget starts when the block is entered, as it did with the generator form.
        until = time.monotonic() + max(0.0, self._seconds)
        current = _DEADLINE.get()
        self._token = _DEADLINE.set(until if current is None or until < current else current)

    def __exit__(self, *exc_info: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            _DEADLINE.reset(token)


class _Unbounded:
    """`deadline(None)`: a shared do-nothing context manager (it holds no state)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


_UNBOUNDED: Final = _Unbounded()


def deadline(seconds: float | None) -> AbstractContextManager[None]:
    """Bound every Redis call made inside the block to `seconds` from now.

    Nested blocks keep the earlier (tighter) deadline. `None` adds no bound.

    Args:
        seconds: The time budget, retries, reconnects and health checks included.

    Returns:
        A context manager; leave the block to drop the bound.
    """
    if seconds is None:
        return _UNBOUNDED
    return _Bound(seconds)


def clear_deadline() -> None:
    """Drop the current deadline for the rest of this context (a task's own copy).

    For work one task does on behalf of several callers (the connector creating the asyncio
    client that every waiting task then uses): the first caller's deadline must not cut it
    short for the others, who each wait within their own.
    """
    _DEADLINE.set(None)


def remaining() -> float | None:
    """Seconds left before the current deadline (may be negative), or None without one."""
    until = _DEADLINE.get()
    return None if until is None else until - time.monotonic()


class _NoResend:
    __slots__ = ("_token",)

    def __init__(self) -> None:
        self._token: Token[bool] | None = None

    def __enter__(self) -> None:
        self._token = _NO_RESEND.set(True)

    def __exit__(self, *exc_info: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            _NO_RESEND.reset(token)


def no_resend() -> AbstractContextManager[None]:
    """Inside the block our clients send each command once (the caller owns the retries).

    Returns:
        The context manager (a class, like `deadline`'s: every op-id write enters one).
    """
    return _NoResend()


def mark_not_sent(exc: BaseException) -> BaseException:
    """Record that `exc` happened before the request could reach the server.

    Args:
        exc: The exception to mark (returned for `raise mark_not_sent(...)`).

    Returns:
        The same exception.
    """
    setattr(exc, _NOT_SENT_ATTR, True)
    return exc


def was_not_sent(exc: BaseException) -> bool:
    """Whether `exc` certainly happened before the request reached the server.

    True for failures our connection classes marked (connect, handshake, health check, a
    deadline spent before sending), for refusals that apply nothing (`LOADING`, `TRYAGAIN`,
    `CLUSTERDOWN`, an exhausted pool), and, for clients we did not build, for an OS-level
    refusal or name-resolution failure found in the exception's cause chain.

    Args:
        exc: A redis-py (or OS) exception.

    Returns:
        True when nothing can have been applied.
    """
    if getattr(exc, _NOT_SENT_ATTR, False):
        return True
    if isinstance(
        exc,
        rexc.BusyLoadingError
        | rexc.TryAgainError
        | rexc.ClusterDownError
        | rexc.MaxConnectionsError
        | rexc.SlotNotCoveredError,
    ):
        return True
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if getattr(cause, _NOT_SENT_ATTR, False):
            return True
        # ConnectionRefusedError and DNS failures (socket.gaierror is an OSError subclass
        # raised only while resolving) can only come from connecting.
        if isinstance(cause, ConnectionRefusedError) or type(cause).__name__ == "gaierror":
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def deadline_exceeded(what: str) -> rexc.TimeoutError:
    """A redis-py `TimeoutError` for a deadline spent before `what`, marked not sent."""
    exc = rexc.TimeoutError(f"deadline exceeded before {what}")
    mark_not_sent(exc)
    return exc


def clamp(timeout: float | None) -> float | None:
    """`timeout` cut to the time left before the deadline (at least 1 ms while positive)."""
    left = remaining()
    if left is None:
        return timeout
    left = max(left, 0.001)
    return left if timeout is None else min(timeout, left)


def _may_retry(failures: int, retries: int, backoff: float) -> bool:
    if _NO_RESEND.get() or (retries >= 0 and failures > retries):
        return False
    left = remaining()
    return left is None or left - backoff > 0


class BoundedRetry(redis.retry.Retry):
    """redis-py's `Retry` with one retry layer, a deadline and `no_resend` (sync clients)."""

    def get_retries(self) -> int:
        """Retries allowed now (0 inside `no_resend`; the cluster client asks this)."""
        return 0 if _NO_RESEND.get() else super().get_retries()

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        """Run `do`, retrying supported errors at the outermost level only.

        Args:
            do: The attempt.
            fail: Called after each failed attempt (redis-py disconnects there).
            is_retryable: Optional filter of retryable errors.
            with_failure_count: Pass the failure count to `fail`.

        Returns:
            What `do` returned.
        """
        nested = _IN_RETRY.get()
        token = _IN_RETRY.set(True)
        try:
            self._backoff.reset()  # type: ignore[no-untyped-call]
            failures = 0
            while True:
                try:
                    return do()
                except self._supported_errors as error:
                    if is_retryable is not None and not is_retryable(error):
                        raise
                    failures += 1
                    if with_failure_count:
                        fail(error, failures)
                    else:
                        fail(error)
                    backoff = self._backoff.compute(failures)
                    if (
                        nested
                        or not_retryable(error)
                        or not _may_retry(failures, self._retries, backoff)
                    ):
                        raise
                    if backoff > 0:
                        time.sleep(backoff)
        finally:
            _IN_RETRY.reset(token)


class AsyncBoundedRetry(redis.asyncio.retry.Retry):
    """`BoundedRetry` for asyncio clients (same rules, awaits instead of blocking)."""

    def get_retries(self) -> int:
        """Retries allowed now (0 inside `no_resend`; the cluster client asks this)."""
        return 0 if _NO_RESEND.get() else super().get_retries()

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        """Await `do`, retrying supported errors at the outermost level only.

        Args:
            do: The attempt.
            fail: Called (and awaited) after each failed attempt.
            is_retryable: Optional filter of retryable errors.
            with_failure_count: Pass the failure count to `fail`.

        Returns:
            What `do` returned.
        """
        import asyncio

        nested = _IN_RETRY.get()
        token = _IN_RETRY.set(True)
        try:
            self._backoff.reset()  # type: ignore[no-untyped-call]
            failures = 0
            while True:
                try:
                    return await do()
                except self._supported_errors as error:
                    if is_retryable is not None and not is_retryable(error):
                        raise
                    failures += 1
                    if with_failure_count:
                        await fail(error, failures)
                    else:
                        await fail(error)
                    backoff = self._backoff.compute(failures)
                    if (
                        nested
                        or not_retryable(error)
                        or not _may_retry(failures, self._retries, backoff)
                    ):
                        raise
                    if backoff > 0:
                        await asyncio.sleep(backoff)
        finally:
            _IN_RETRY.reset(token)


def seconds_left_or_inf() -> float:
    """Seconds left before the deadline, or infinity without one (for loops that poll)."""
    left = remaining()
    return math.inf if left is None else left
