"""`instrument()` / `uninstrument()`: plug OpenTelemetry into core's seam, and take it out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from deepagents_redis.core import ConfigurationError, get_instrumentation, set_instrumentation
from deepagents_redis.observe._otel import OpenTelemetryInstrumentation

__all__ = ["instrument", "instrumented_for_block", "is_instrumented", "uninstrument"]

_lock = threading.Lock()
_installed: OpenTelemetryInstrumentation | None = None
_previous: Any = None
_key: _Key | None = None
_redis_instrumentor: Any = None
_tracer_provider: Any = None


class _Key(NamedTuple):
    """What `instrument()` was called with: a repeat call with the same is a no-op.

    The providers themselves, compared by identity (`same`): their ``id()`` was kept, and a
    provider collected after the call (the instrumentation holds no reference to a meter
    provider) left its address to the next one allocated, which was then taken for it:
    ``instrument(meter_provider=new)`` kept the old instrumentation and ``new`` got nothing.
    Holding them here also keeps the providers in use alive.
    """

    tracer_provider: Any
    meter_provider: Any
    redis_commands: bool
    raw_thread_ids: bool
    raw_coord_names: bool

    def same(self, other: _Key | None) -> bool:
        return (
            other is not None
            and other.tracer_provider is self.tracer_provider
            and other.meter_provider is self.meter_provider
            and other.redis_commands == self.redis_commands
            and other.raw_thread_ids == self.raw_thread_ids
            and other.raw_coord_names == self.raw_coord_names
        )


class _InForce(NamedTuple):
    """What `instrument()` had installed, to put back after a block (`capture`)."""

    installed: OpenTelemetryInstrumentation
    previous: Any
    key: _Key
    tracer_provider: Any
    redis_commands: bool


def instrument(
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    redis_commands: bool = False,
    raw_thread_ids: bool = False,
    raw_coord_names: bool = False,
) -> OpenTelemetryInstrumentation:
    """Report every phase's operations to OpenTelemetry (process-wide).

    Calling it again with the same arguments is harmless (the same instrumentation stays);
    with other providers it replaces the first. The SDK and exporters are yours to configure
    (`opentelemetry-sdk`, or the ``sdk``, ``otlp`` and ``prometheus`` extras).

    Args:
        tracer_provider: Where spans go (default: the global tracer provider).
        meter_provider: Where metrics go (default: the global meter provider).
        redis_commands: Also add a span per Redis command, with the maintained
            ``opentelemetry-instrumentation-redis`` (the ``redis`` extra).
        raw_thread_ids: Spans inside a LangGraph run carry the thread id as it is
            (``langgraph.thread_id``). By default they carry its hash
            (``langgraph.thread_id_hash``): thread ids are the application's, often user
            data.
        raw_coord_names: Spans and metric points carry coord topics and the agent names
            of submitted tasks as they are (``deepagents_redis.topic``,
            ``deepagents_redis.agent``). By default they carry their hashes
            (``deepagents_redis.topic_hash``, ``deepagents_redis.agent_hash``): a topic or
            an agent named by a submitter (a model's ``task`` call, an application naming
            topics after users) is the caller's text. A worker's own operations always
            carry their agent's name as it is: it comes from the worker's ``agents=``
            mapping, the operator's configuration.

    Returns:
        The installed instrumentation.

    Raises:
        ConfigurationError: ``redis_commands=True`` without the ``redis`` extra.
    """
    global _installed, _previous, _key, _redis_instrumentor, _tracer_provider
    key = _Key(tracer_provider, meter_provider, redis_commands, raw_thread_ids, raw_coord_names)
    with _lock:
        if _installed is not None and key.same(_key) and get_instrumentation() is _installed:
            return _installed
        redis_instrumentor: Any = None
        if redis_commands:
            # Checked before anything is taken out: a refused call changes nothing (it
            # uninstrumented first, so the process lost all of its reporting).
            try:
                from opentelemetry.instrumentation.redis import RedisInstrumentor
            except ImportError as exc:
                raise ConfigurationError(
                    "redis_commands=True needs opentelemetry-instrumentation-redis: "
                    "pip install 'deepagents-redis-observe[redis]'"
                ) from exc
            redis_instrumentor = RedisInstrumentor
        if _installed is not None:
            _uninstall()
        instrumentor = None
        if redis_instrumentor is not None:
            instrumentor = _instrument_redis(redis_instrumentor(), tracer_provider)
        installed = OpenTelemetryInstrumentation(
            tracer_provider,
            meter_provider,
            raw_thread_ids=raw_thread_ids,
            raw_coord_names=raw_coord_names,
        )
        _previous = set_instrumentation(installed)
        _installed, _key, _redis_instrumentor = installed, key, instrumentor
        _tracer_provider = tracer_provider
        return installed


def _instrument_redis(instrumentor: Any, tracer_provider: Any) -> Any:
    """Turn on redis-py command spans; the instrumentor if this call turned it on, else None.

    `RedisInstrumentor` is one object per process: when the application had already turned
    it on, it is the application's, and `uninstrument()` must leave it on. It was kept
    as ours and `uninstrument()` turned the application's command spans off.
    """
    if instrumentor.is_instrumented_by_opentelemetry:
        return None
    instrumentor.instrument(tracer_provider=tracer_provider)
    return instrumentor


def _uninstall() -> None:
    global _installed, _previous, _key, _redis_instrumentor, _tracer_provider
    if get_instrumentation() is _installed:
        set_instrumentation(_previous)
    if _redis_instrumentor is not None and _redis_instrumentor.is_instrumented_by_opentelemetry:
        _redis_instrumentor.uninstrument()
    _installed, _previous, _key, _redis_instrumentor = None, None, None, None
    _tracer_provider = None


def _in_force() -> _InForce | None:
    with _lock:
        if _installed is None or _key is None or get_instrumentation() is not _installed:
            return None
        return _InForce(
            _installed, _previous, _key, _tracer_provider, _redis_instrumentor is not None
        )


def _put_back(state: _InForce) -> None:
    global _installed, _previous, _key, _redis_instrumentor, _tracer_provider
    with _lock:
        if _installed is not None:  # instrumented again inside the block: that one stays
            return
        instrumentor = None
        if state.redis_commands:
            from opentelemetry.instrumentation.redis import RedisInstrumentor

            instrumentor = _instrument_redis(RedisInstrumentor(), state.tracer_provider)
        set_instrumentation(state.installed)
        _installed, _previous, _key = state.installed, state.previous, state.key
        _redis_instrumentor, _tracer_provider = instrumentor, state.tracer_provider


@contextmanager
def instrumented_for_block(
    *, tracer_provider: Any, meter_provider: Any
) -> Iterator[OpenTelemetryInstrumentation]:
    """`instrument()` for the block, then put back the instrumentation that was in force.

    `capture` runs on this: a process's own `instrument()` (its exporters, its redis command
    spans) was replaced for the block and, after it, nothing was instrumented any more, so
    every span and metric after a `capture()` was silently lost.

    Args:
        tracer_provider: Where the block's spans go.
        meter_provider: Where the block's metrics go.

    Yields:
        The block's instrumentation.
    """
    before = _in_force()
    installed = instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield installed
    finally:
        uninstrument()
        if before is not None:
            _put_back(before)


def uninstrument() -> None:
    """Stop reporting: restore what was installed before `instrument()` (a no-op by default).

    Calling it when nothing is instrumented does nothing.
    """
    with _lock:
        if _installed is not None:
            _uninstall()


def is_instrumented() -> bool:
    """Whether `instrument()` is in force."""
    return _installed is not None and get_instrumentation() is _installed
