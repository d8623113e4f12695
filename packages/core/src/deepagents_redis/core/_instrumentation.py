"""The instrumentation seam: spans, counters and durations, no-op by default.

Phases report ``<phase>.<op>`` names with attributes such as ``outcome="hit"``; the
``observe`` package plugs OpenTelemetry in with `set_instrumentation`, so no phase
imports OpenTelemetry itself.

Trace context crosses processes the same way: an implementation may also offer
``inject() -> dict[str, str]`` (the current context as W3C ``traceparent``/``tracestate``
headers) and ``attach(carrier) -> context manager`` (run under a remote parent). Phases call
`trace_carrier` and `traced`, which do nothing when the implementation has neither.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Instrumentation",
    "NoOpInstrumentation",
    "RecordingInstrumentation",
    "active_instrumentation",
    "get_instrumentation",
    "set_instrumentation",
    "trace_carrier",
    "traced",
]


@runtime_checkable
class Instrumentation(Protocol):
    """What a phase reports through. Implementations must be cheap and never raise."""

    def span(self, name: str, **attrs: Any) -> AbstractContextManager[Any]:
        """Open a span around an operation.

        Args:
            name: Operation name, ``<phase>.<op>``.
            **attrs: Span attributes.

        Returns:
            A context manager delimiting the span.
        """
        ...

    def count(self, name: str, value: int = 1, **attrs: Any) -> None:
        """Add ``value`` to the counter ``name`` for these attributes.

        Args:
            name: Counter name, ``<phase>.<op>``.
            value: Amount to add.
            **attrs: Attributes such as ``outcome="hit"``.
        """
        ...

    def record_duration(self, name: str, seconds: float, **attrs: Any) -> None:
        """Record how long an operation took.

        Args:
            name: Histogram name, ``<phase>.<op>``.
            seconds: Duration in seconds.
            **attrs: Attributes such as ``outcome="hit"``.
        """
        ...


class NoOpInstrumentation:
    """The default: does nothing, as cheaply as possible."""

    _NULL: AbstractContextManager[None] = nullcontext()

    def span(self, name: str, **attrs: Any) -> AbstractContextManager[Any]:
        """Return a reusable do-nothing context manager.

        Args:
            name: Ignored.
            **attrs: Ignored.

        Returns:
            A null context manager.
        """
        return self._NULL

    def count(self, name: str, value: int = 1, **attrs: Any) -> None:
        """Do nothing.

        Args:
            name: Ignored.
            value: Ignored.
            **attrs: Ignored.
        """

    def record_duration(self, name: str, seconds: float, **attrs: Any) -> None:
        """Do nothing.

        Args:
            name: Ignored.
            seconds: Ignored.
            **attrs: Ignored.
        """


@dataclass
class RecordedSpan:
    """A span seen by `RecordingInstrumentation`.

    Attributes:
        name: Span name.
        attrs: Attributes given when the span was opened.
        error: Type name of the exception that left the span, if any.
    """

    name: str
    attrs: dict[str, Any]
    error: str | None = None


@dataclass
class RecordingInstrumentation:
    """Keeps everything in memory, for tests (thread-safe).

    Attributes:
        counts: ``counts[(name, frozenset(attrs.items()))]`` -> total.
        durations: ``(name, attrs, seconds)`` in the order recorded.
        spans: Every span opened, in order.
    """

    counts: Counter[tuple[str, frozenset[tuple[str, Any]]]] = field(default_factory=Counter)
    durations: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)
    spans: list[RecordedSpan] = field(default_factory=list)
    context: dict[str, str] = field(default_factory=dict)
    """What `inject` returns: the trace context a test pretends is current."""
    attached: list[dict[str, str]] = field(default_factory=list)
    """Every carrier `attach` was given, in order."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def inject(self) -> dict[str, str]:
        """The pretended current trace context (`context`).

        Returns:
            A copy of `context`.
        """
        return dict(self.context)

    @contextmanager
    def attach(self, carrier: dict[str, str]) -> Iterator[None]:
        """Record that work ran under `carrier`'s trace context.

        Args:
            carrier: W3C trace headers.

        Yields:
            Nothing.
        """
        with self._lock:
            self.attached.append(dict(carrier))
        yield

    @contextmanager
    def _span(self, name: str, attrs: dict[str, Any]) -> Iterator[RecordedSpan]:
        recorded = RecordedSpan(name, attrs)
        with self._lock:
            self.spans.append(recorded)
        try:
            yield recorded
        except BaseException as exc:
            recorded.error = type(exc).__name__
            raise

    def span(self, name: str, **attrs: Any) -> AbstractContextManager[Any]:
        """Record a span (and the exception type that ends it, if any).

        Args:
            name: Span name.
            **attrs: Span attributes.

        Returns:
            A context manager yielding the `RecordedSpan`.
        """
        return self._span(name, attrs)

    def count(self, name: str, value: int = 1, **attrs: Any) -> None:
        """Add to an in-memory counter.

        Args:
            name: Counter name.
            value: Amount to add.
            **attrs: Attributes (part of the counter's key).
        """
        with self._lock:
            self.counts[(name, frozenset(attrs.items()))] += value

    def record_duration(self, name: str, seconds: float, **attrs: Any) -> None:
        """Append a duration.

        Args:
            name: Histogram name.
            seconds: Duration in seconds.
            **attrs: Attributes.
        """
        with self._lock:
            self.durations.append((name, attrs, seconds))

    def total(self, name: str, **attrs: Any) -> int:
        """Sum of the counter ``name`` over every attribute set containing ``attrs``.

        Args:
            name: Counter name.
            **attrs: Attributes that must match (others are ignored).

        Returns:
            The total (0 if never counted).
        """
        wanted = set(attrs.items())
        with self._lock:
            return sum(v for (n, a), v in self.counts.items() if n == name and wanted <= a)


_NOOP = NoOpInstrumentation()
_current: Instrumentation = _NOOP


def get_instrumentation() -> Instrumentation:
    """The process-wide instrumentation (no-op unless one was set).

    Returns:
        The current implementation.
    """
    return _current


def active_instrumentation() -> Instrumentation | None:
    """The installed instrumentation, or None while it is the no-op default.

    For hot paths (the driver, the cache's guard): with None they skip the clock reads, the
    metric names and the span attributes they would build only to hand them to a no-op.

    Returns:
        The current implementation, or None when nothing was installed.
    """
    return None if _current is _NOOP else _current


def set_instrumentation(inst: Instrumentation | None) -> Instrumentation:
    """Install a process-wide instrumentation (``None`` restores the no-op default).

    Args:
        inst: The implementation to use from now on.

    Returns:
        The previous implementation (so tests can restore it).
    """
    global _current
    previous = _current
    _current = _NOOP if inst is None else inst
    return previous


_TRACE_HEADERS = ("traceparent", "tracestate")


def trace_carrier() -> dict[str, str]:
    """The current trace context as W3C headers, for work that continues elsewhere.

    Returns:
        ``traceparent`` (and ``tracestate``) when the installed instrumentation offers
        ``inject()`` and a trace is current; ``{}`` otherwise (and if it fails: tracing must
        never fail the operation).
    """
    inject = getattr(_current, "inject", None)
    if inject is None:
        return {}
    try:
        carrier = inject()
    except Exception:  # noqa: BLE001 - an exporter's bug must not fail the caller's work
        return {}
    return {k: str(carrier[k]) for k in _TRACE_HEADERS if carrier and carrier.get(k)}


def traced(carrier: dict[str, str] | None) -> AbstractContextManager[Any]:
    """Run under the trace context of `carrier` (a parent in another process).

    Args:
        carrier: What `trace_carrier` gave the other side (``None`` or ``{}``: no parent).

    Returns:
        The implementation's ``attach(carrier)``, or a null context.
    """
    attach = getattr(_current, "attach", None)
    if attach is None or not carrier or not isinstance(carrier, Mapping):
        return nullcontext()
    # The carrier is stored data (coord keeps it as JSON with a task): only the headers
    # `trace_carrier` writes, and only as text. Another writer's {"traceparent": 5} raised
    # TypeError out of OpenTelemetry's propagator and failed the work it was to trace.
    headers = {k: v for k in _TRACE_HEADERS if isinstance(v := carrier.get(k), str)}
    if not headers:
        return nullcontext()
    return attach(headers)  # type: ignore[no-any-return]
