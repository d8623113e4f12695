"""The cache's failure policy: fail open (a miss), or raise when ``strict``.

BRIEF §3: the cache must never stall or break an agent. Every Redis call of the cache goes
through `FailOpen`, which

* refuses the call up front while the circuit breaker is open (no I/O, microseconds),
* bounds each call by the cache's deadline (`CacheSettings.deadline_seconds`, 250 ms by
  default: a miss costs one model call, a stall costs the whole agent),
* turns connection errors and timeouts into a miss, a breaker failure, a counter and a
  rate-limited warning,
* turns other server errors (e.g. ``WRONGTYPE`` from a key someone else wrote) into a miss
  and a counter, without tripping the breaker (the server is up),
* and with ``strict=True`` raises `RedisUnavailableError` (or its subclass
  `BreakerOpenError`) instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Final, TypeVar

import redis.asyncio
import redis.exceptions
from deepagents_redis.core import (
    REDIS_EXCEPTIONS,
    TRANSPORT_EXCEPTIONS,
    BreakerOpenError,
    BreakerState,
    CircuitBreaker,
    DeepAgentsRedisError,
    Instrumentation,
    RedisConnector,
    RedisUnavailableError,
    Request,
    Sleep,
    active_instrumentation,
    aexecute_request,
    aexecute_request_gated,
    deadline,
    execute_request,
    translate_redis_error,
)

__all__ = [
    "FAILED",
    "FailOpen",
    "failed",
]


log = logging.getLogger("deepagents_redis.cache")

T = TypeVar("T")


class _Failed:
    """Marker returned instead of a result when a call failed open."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FAILED"


FAILED: Final = _Failed()

# Connection-level trouble trips the breaker; a server that answers with an error is up.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    *TRANSPORT_EXCEPTIONS,
    RedisUnavailableError,
    OSError,
)
# Everything redis-py raises (core's one tuple), our own errors, and socket errors.
_ANY_REDIS: tuple[type[BaseException], ...] = (*REDIS_EXCEPTIONS, DeepAgentsRedisError, OSError)
# A request the client refused to encode (a lone surrogate in text, a value of a type redis-py
# does not send): nothing was sent, so it says nothing about the server either way.
# (Encoding only: a reply the client could not decode is an answer from a server that is up.)
_REFUSED_LOCALLY: tuple[type[BaseException], ...] = (
    UnicodeEncodeError,
    redis.exceptions.DataError,
)


_NO_SPAN: Final = nullcontext()


class FailOpen:
    """Runs cache I/O under a breaker; fails open unless strict."""

    def __init__(
        self,
        *,
        metric_prefix: str,
        strict: bool,
        breaker: CircuitBreaker,
        warn_interval: float,
        deadline_seconds: float | None = None,
        connect_deadline_seconds: float | None = None,
    ) -> None:
        self.metric_prefix = metric_prefix
        self.deadline_seconds = deadline_seconds
        self.connect_deadline_seconds = connect_deadline_seconds or deadline_seconds
        # Until a call has succeeded (per client flavour), a call may also have to connect
        # and, on Cluster, discover the slots: a few round trips to every primary, which a
        # loaded machine does not finish in the per-call budget.
        self._warm_sync = False
        self._warm_async = False
        self.strict = strict
        self.breaker = breaker
        self._warn_interval = warn_interval
        self._warn_lock = threading.Lock()
        self._last_warn = -float("inf")
        self._suppressed = 0
        self._names: dict[str, str] = {}
        # Per kind of skipped value (`warn_skipped`): last warning time, suppressed since.
        self._skips: dict[str, tuple[float, int]] = {}

    def count(self, op: str, outcome: str, value: int = 1) -> None:
        """Report ``<prefix>.<op>`` with an outcome attribute."""
        inst = active_instrumentation()
        if inst is not None:
            inst.count(self._name(op), value, outcome=outcome)

    def _name(self, op: str) -> str:
        # `<prefix>.<op>`, built once per op: every lookup reports under it.
        name = self._names.get(op)
        if name is None:
            name = self._names[op] = f"{self.metric_prefix}.{op}"
        return name

    def _refuse(self, op: str) -> _Failed:
        self.count(op, "breaker_open")
        if self.strict:
            raise BreakerOpenError(f"cache {op}: circuit breaker is open, no call was made")
        return FAILED

    def _fail(self, op: str, exc: BaseException) -> _Failed:
        if isinstance(exc, _REFUSED_LOCALLY):
            # Counted as connection trouble, a few such calls (a node namespace holding a lone
            # surrogate, 673c665) opened the breaker and every other call of the cache missed;
            # counted as an answer, one closed a half-open breaker that nothing had probed.
            # A half-open probe spent on it is given back instead.
            self._abandoned()
        elif isinstance(exc, _UNAVAILABLE) or not isinstance(exc, _ANY_REDIS):
            # Not a reply from the server: the connection (or the client library) is in
            # trouble, which is what the breaker is for.
            self.breaker.record_failure()
        else:
            # The server answered (with an error): it is up. Recording success also frees
            # the half-open probe slot this call may have taken.
            self.breaker.record_success()
        self.count(op, "error")
        if self.strict:
            if isinstance(exc, DeepAgentsRedisError):
                raise exc
            if isinstance(exc, redis.exceptions.RedisError):
                raise translate_redis_error(exc) from exc
            raise RedisUnavailableError(f"cache {op} failed: {type(exc).__name__}") from exc
        self._warn(op, exc)
        return FAILED

    def _abandoned(self) -> None:
        """A call left without an answer (cancelled, interrupted): free a half-open probe.

        Half-open, the breaker lets one probe through and waits for its success or failure
        before it lets anyone else through. A probe that is cancelled (an agent run
        cancelled, a task timed out) reports neither, so its slot stayed taken and every
        later call was refused as ``breaker_open`` for the life of the process. Counting it
        as a failed probe re-opens the breaker: the next probe goes out after
        ``reset_timeout``. A closed breaker is left alone (a cancellation says nothing about
        the server).
        """
        if self.breaker.state is BreakerState.HALF_OPEN:
            self.breaker.record_failure()

    def _warn(self, op: str, exc: BaseException) -> None:
        # One line per interval per cache: a dead server under load would otherwise log
        # thousands of identical lines per second.
        now = time.monotonic()
        with self._warn_lock:
            if now - self._last_warn < self._warn_interval:
                self._suppressed += 1
                return
            suppressed, self._suppressed = self._suppressed, 0
            self._last_warn = now
        log.warning(
            "cache %s failed, serving a miss (%s: %s; %d similar warnings suppressed)",
            op,
            type(exc).__name__,
            _safe_message(exc),
            suppressed,
        )

    def warn_skipped(self, kind: str, message: str, *args: Any) -> None:
        """Log a skipped value (too big, not serialisable) at most once per interval per kind.

        The counter says how many; the log says that it happens. Every update of a model
        whose answers are too big logged a WARNING line of its own (hundreds a second on a
        busy worker) while Redis failures were already rate-limited (`_warn`).

        Args:
            kind: What was skipped (``"update/oversize"``): each kind has its own interval.
            message: The ``%``-format message of the first warning in an interval.
            *args: Its arguments.
        """
        now = time.monotonic()
        with self._warn_lock:
            last, suppressed = self._skips.get(kind, (-float("inf"), 0))
            if now - last < self._warn_interval:
                self._skips[kind] = (last, suppressed + 1)
                return
            self._skips[kind] = (now, 0)
        if suppressed:
            log.warning(message + " (%d similar warnings suppressed)", *args, suppressed)
        else:
            log.warning(message, *args)

    def _span(
        self, inst: Instrumentation, op: str, where: RedisConnector | None
    ) -> AbstractContextManager[Any]:
        # The server attributes every other operation's span carries (observe docs, Spans);
        # read only when instrumented, so the uninstrumented hit path is unchanged.
        if where is None:
            return inst.span(self._name(op))
        return inst.span(self._name(op), **where.telemetry)

    def _timed(self, inst: Instrumentation | None, op: str, start: float, outcome: str) -> None:
        # Failures too (outcome "error"): how long a sick Redis made a lookup wait is what
        # the deadline bounds, and an operator wants to see it.
        if inst is not None:
            inst.record_duration(self._name(op), time.perf_counter() - start, outcome=outcome)

    # `run` and `arun` are written out, not built on a shared generator-based context
    # manager: that cost ~5 µs of every cache hit (the performance pass, benchmark row
    # "RedisLLMCache hit"). Both do the same: refuse while the breaker is open; the span
    # (which sees a failure before it is turned into a fail-open miss) and the deadline
    # (`connect_deadline_seconds` until a call of this flavour has succeeded); then success
    # (warm, breaker, duration) or failure (FAILED, or the error raised when strict).
    # Without instrumentation installed the span, the clock and the metrics are skipped.

    def run(self, op: str, fn: Callable[[], T], where: RedisConnector | None = None) -> T | _Failed:
        """Call ``fn`` under the breaker; FAILED (or an exception when strict) on failure.

        ``where`` is the connection the call goes to (its server attributes go on the span).
        """
        if not self.breaker.allow():
            return self._refuse(op)
        inst = active_instrumentation()
        warm = self._warm_sync
        budget = self.deadline_seconds if warm else self.connect_deadline_seconds
        start = 0.0 if inst is None else time.perf_counter()
        try:
            with _NO_SPAN if inst is None else self._span(inst, op, where), deadline(budget):
                result = fn()
        except _ANY_REDIS as exc:
            self._timed(inst, op, start, "error")
            return self._fail(op, exc)
        except Exception as exc:
            self._timed(inst, op, start, "error")
            # A bug in the client library must not break the agent either.
            if self.strict:
                if isinstance(exc, _REFUSED_LOCALLY):
                    self._abandoned()
                raise
            return self._fail(op, exc)
        except BaseException:
            self._abandoned()
            raise
        if not warm:
            self._warm_sync = True
        self.breaker.record_success()
        self._timed(inst, op, start, "ok")
        return result

    async def arun(
        self, op: str, fn: Callable[[], Awaitable[T]], where: RedisConnector | None = None
    ) -> T | _Failed:
        """Async `run` (awaits ``fn``)."""
        if not self.breaker.allow():
            return self._refuse(op)
        inst = active_instrumentation()
        warm = self._warm_async
        budget = self.deadline_seconds if warm else self.connect_deadline_seconds
        start = 0.0 if inst is None else time.perf_counter()
        try:
            with _NO_SPAN if inst is None else self._span(inst, op, where), deadline(budget):
                result = await fn()
        except _ANY_REDIS as exc:
            self._timed(inst, op, start, "error")
            return self._fail(op, exc)
        except Exception as exc:
            self._timed(inst, op, start, "error")
            # A bug in the client library (e.g. redis-py's asyncio cluster raising
            # AttributeError on a half-set-up connection) must not break the agent either.
            if self.strict:
                if isinstance(exc, _REFUSED_LOCALLY):
                    self._abandoned()
                raise
            return self._fail(op, exc)
        except BaseException:
            self._abandoned()
            raise
        if not warm:
            self._warm_async = True
        self.breaker.record_success()
        self._timed(inst, op, start, "ok")
        return result

    def step(self, op: str, connector: RedisConnector) -> Callable[[Request], Any]:
        """How core's sync driver runs one request of a cache operation: under this guard.

        Args:
            op: The operation's metric name (`lookup`, `get`...).
            connector: Where the client comes from.

        Returns:
            A step for `drive_operation`: the reply, or FAILED (the operation serves a miss).
        """

        def run_one(req: Request) -> Any:
            if isinstance(req, Sleep):
                return execute_request(None, req)
            return self.run(op, lambda: execute_request(connector.client(), req), connector)

        return run_one

    def astep(self, op: str, connector: RedisConnector) -> Callable[[Request], Awaitable[Any]]:
        """Async twin of `step`, for `adrive_operation` (awaits the asyncio client)."""

        async def run_one(req: Request) -> Any:
            if isinstance(req, Sleep):
                return await aexecute_request(None, req)

            async def call() -> Any:
                return await aexecute_request_gated(connector, await ready_client(connector), req)

            return await self.arun(op, call, connector)

        return run_one


async def ready_client(connector: RedisConnector) -> Any:
    """The connector's asyncio client, its cluster topology known before first use.

    A client the caller passed (`async_client=`) was not initialised by core: redis-py 8.1's
    asyncio `RedisCluster` then races its slot discovery with concurrent first commands
    (`AttributeError` on `_writer`; 18 of 40 rounds of 8 concurrent GETs here).
    Initialising first is a no-op once done.

    Args:
        connector: The cache's connector.

    Returns:
        The asyncio client.
    """
    client: Any = await connector.aclient()
    if isinstance(client, redis.asyncio.RedisCluster):
        await client.initialize()
    return client


def _safe_message(exc: BaseException) -> str:
    # Our own errors never carry secrets; redis-py messages name host:port only, but go
    # through the translator anyway so a future redis-py message cannot leak a password.
    if isinstance(exc, redis.exceptions.RedisError):
        return str(translate_redis_error(exc))
    return str(exc)


def failed(value: Any) -> bool:
    """Whether ``value`` is the FAILED marker."""
    return value is FAILED
