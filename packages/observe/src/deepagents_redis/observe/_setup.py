"""`instrument()` / `uninstrument()`: plug OpenTelemetry into core's seam, and take it out."""

from __future__ import annotations

import threading
from typing import Any

from deepagents_redis.core import ConfigurationError, get_instrumentation, set_instrumentation
from deepagents_redis.observe._otel import OpenTelemetryInstrumentation

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_lock = threading.Lock()
_installed: OpenTelemetryInstrumentation | None = None
_previous: Any = None
_key: tuple[int, int, bool] | None = None
_redis_instrumentor: Any = None


def instrument(
    *, tracer_provider: Any = None, meter_provider: Any = None, redis_commands: bool = False
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

    Returns:
        The installed instrumentation.

    Raises:
        ConfigurationError: ``redis_commands=True`` without the ``redis`` extra.
    """
    global _installed, _previous, _key, _redis_instrumentor
    key = (id(tracer_provider), id(meter_provider), redis_commands)
    with _lock:
        if _installed is not None and _key == key and get_instrumentation() is _installed:
            return _installed
        if _installed is not None:
            _uninstall()
        instrumentor = None
        if redis_commands:
            try:
                from opentelemetry.instrumentation.redis import RedisInstrumentor
            except ImportError as exc:
                raise ConfigurationError(
                    "redis_commands=True needs opentelemetry-instrumentation-redis: "
                    "pip install 'deepagents-redis-observe[redis]'"
                ) from exc
            instrumentor = RedisInstrumentor()
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument(tracer_provider=tracer_provider)
        installed = OpenTelemetryInstrumentation(tracer_provider, meter_provider)
        _previous = set_instrumentation(installed)
        _installed, _key, _redis_instrumentor = installed, key, instrumentor
        return installed


def _uninstall() -> None:
    global _installed, _previous, _key, _redis_instrumentor
    if get_instrumentation() is _installed:
        set_instrumentation(_previous)
    if _redis_instrumentor is not None and _redis_instrumentor.is_instrumented_by_opentelemetry:
        _redis_instrumentor.uninstrument()
    _installed, _previous, _key, _redis_instrumentor = None, None, None, None


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
