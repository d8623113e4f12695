"""A small, thread-safe circuit breaker, usable from sync and async code.

We keep our own (about 100 lines) rather than add a dependency: the maintained libraries
we looked at (pybreaker, aiobreaker, circuitbreaker) are either sync-only or async-only,
wrap calls in decorators instead of exposing ``allow()``/``record_*()``, and none lets tests
inject a clock. Nothing here blocks: ``allow()`` is a lock-protected check, so calling it
from an event loop is fine.

States::

    CLOSED --(failure_threshold consecutive failures)--> OPEN
    OPEN --(reset_timeout elapsed)--> HALF_OPEN (admits half_open_max_calls probes)
    HALF_OPEN --(a probe succeeds)--> CLOSED
    HALF_OPEN --(a probe fails)--> OPEN (the timer restarts)
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable

__all__ = ["BreakerState", "CircuitBreaker"]


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class BreakerState(enum.Enum):
    """State of a `CircuitBreaker`."""

    CLOSED = "closed"
    """Calls flow; consecutive failures are counted."""

    OPEN = "open"
    """Calls are refused without I/O until ``reset_timeout`` has passed."""

    HALF_OPEN = "half_open"
    """A limited number of probe calls may try the server."""


class CircuitBreaker:
    """Stops calling a server that keeps failing, then probes it again after a pause.

    Usage: ``if not breaker.allow(): fail fast``; after the call, ``record_success()`` or
    ``record_failure()``.

    Args:
        failure_threshold: Consecutive failures that open the breaker (>= 1).
        reset_timeout: Seconds the breaker stays open before admitting probes (> 0).
        half_open_max_calls: Probe calls admitted while half-open (>= 1).
        clock: Monotonic clock in seconds; injectable for tests.

    Raises:
        ValueError: A threshold or timeout is out of range.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 5.0,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not _is_count(failure_threshold):
            # A NaN threshold is never reached (the breaker never opened); a float one
            # counts to the next integer without saying so.
            raise ValueError("failure_threshold must be an int >= 1")
        # `not > 0` also refuses NaN: `nan <= 0` is False, and a NaN timeout never elapses
        # (`elapsed >= nan` is False), so the breaker stayed open for good. So does an
        # infinite one (a settings value of "inf" read from the environment).
        if not 0 < reset_timeout < math.inf:
            raise ValueError("reset_timeout must be > 0 and finite")
        if not _is_count(half_open_max_calls):
            # No probe count is below NaN: half-open, the breaker refused every call.
            raise ValueError("half_open_max_calls must be an int >= 1")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0

    def _refresh(self) -> None:
        # Caller holds the lock. OPEN turns HALF_OPEN lazily, when someone looks.
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._state = BreakerState.HALF_OPEN
            self._probes = 0

    @property
    def state(self) -> BreakerState:
        """The current state (OPEN becomes HALF_OPEN once ``reset_timeout`` has passed)."""
        with self._lock:
            self._refresh()
            return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far."""
        with self._lock:
            return self._failures

    def allow(self) -> bool:
        """Whether a call may go ahead now.

        Returns:
            True when closed, or when half-open and a probe slot is free (the slot is
            taken); False when open or when every probe slot is in flight.
        """
        seen = self._state
        if seen is BreakerState.CLOSED:
            # Lock-free read of the common case (one attribute, atomic under the GIL): the
            # same answer as taking the lock just before a concurrent failure opens it.
            return True
        with self._lock:
            self._refresh()
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.HALF_OPEN and self._probes < self.half_open_max_calls:
                self._probes += 1
                return True
            return False

    def record_success(self) -> None:
        """Report a successful call: resets the failure count and closes the breaker."""
        if self._state is BreakerState.CLOSED and self._failures == 0:
            # Nothing to reset (every success of a healthy server lands here): skipping the
            # lock is the same as this success being ordered before a concurrent failure.
            return
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._probes = 0

    def record_failure(self) -> None:
        """Report a failed call: may open (or re-open) the breaker."""
        with self._lock:
            self._refresh()
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or (
                self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold
            ):
                self._state = BreakerState.OPEN
                self._opened_at = self._clock()
                self._probes = 0

    def reset(self) -> None:
        """Force the breaker closed (e.g. after an operator fixed the server)."""
        self.record_success()

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self.state.value}, failures={self.failures}, "
            f"threshold={self.failure_threshold}, reset_timeout={self.reset_timeout})"
        )
