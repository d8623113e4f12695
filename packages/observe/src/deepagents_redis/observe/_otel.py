"""`OpenTelemetryInstrumentation`: core's instrumentation seam, implemented with OpenTelemetry.

Every phase reports through core's seam (`span`, `count`, `record_duration`; BRIEF §3), so
this one class gives every phase its spans and metrics:

* a span per operation, named ``<phase>.<operation>`` (``cache.lookup``, ``fs.write``,
  ``checkpoint.put``, ``coord.run``...), kind CLIENT, with the database conventions
  (``db.system.name = "redis"``, ``server.address``, ``server.port``, ``db.namespace``) and
  our own attributes under ``deepagents_redis.*``. Values that may carry user data (thread
  ids, paths, namespaces, scopes, coord topics and agent names a submitter chose) are
  hashed; long strings are dropped (see `clean_attributes`). An exception sets
  the span's status to ERROR and records its type, never its message (which may hold a path
  or a prompt);
* a histogram ``deepagents_redis.operation.duration`` (seconds) by phase, operation and
  outcome;
* one counter per reported name, ``deepagents_redis.<phase>.<operation>`` (unit
  ``{operation}``), by outcome: cache hits and misses are ``deepagents_redis.cache.lookup``
  with ``outcome`` ``hit``/``miss``/``fail_open``...

The W3C trace context crosses processes through `inject`/`attach` (core's `trace_carrier`
and `traced`): coord stores the submitter's ``traceparent`` with a task and the worker runs
it under that parent.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Final

from langchain_core.runnables.config import var_child_runnable_config
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["PREFIX", "OpenTelemetryInstrumentation", "clean_attributes"]

PREFIX: Final = "deepagents_redis"
"""The prefix of our attribute and metric names."""

_SEMCONV: Final = frozenset({"db.system.name", "server.address", "server.port", "db.namespace"})
_HASHED: Final = frozenset(
    {"scope", "namespace", "thread", "thread_id", "path", "plan", "key", "agent", "topic"}
)
_COORD_NAMES: Final = frozenset({"agent", "topic"})
"""Coord's names, hashed like the keys above unless `raw_coord_names` (or, for ``agent``,
the operation is one of `_WORKER_AGENT_OPS`). A topic (``coord.publish``) and the agent a
task is submitted to (``coord.submit``) are the caller's text: a model's ``task`` tool call
names its ``subagent_type``, and an application may name topics after users or tickets."""
_WORKER_AGENT_OPS: Final = frozenset(
    {
        "coord.claim",
        "coord.claim_batch_failed",
        "coord.fenced",
        "coord.finish",
        "coord.lease_expired",
        "coord.read_failed",
        "coord.redelivered",
        "coord.run",
        "coord.worker_error",
    }
)
"""Worker-side operations: their ``agent`` is a name from the worker's own ``agents=``
mapping (the operator's configuration, which `watch(agents=...)` reports raw too; a worker
claims only from those queues), so it stays readable, and dashboards group by it (the
``coord.redelivered`` panel). Any other operation's ``agent`` is hashed."""
_MAX_TEXT: Final = 128
_SCOPE: Final = "deepagents_redis"
_W3C: Final = TraceContextTextMapPropagator()
"""The carrier's format. Core keeps ``traceparent``/``tracestate`` and nothing else, so the
application's global propagator (B3, Jaeger, baggage only...) must not decide it: with any of
those the carrier came out empty and a worker's spans started traces of their own."""
_MAX_CACHED: Final = 1024
"""Distinct attribute sets kept per kind (span, counter, duration) before starting over."""


log = logging.getLogger("deepagents_redis.observe")
_warned: set[str] = set()
"""Where a span has failed before (`start`, `end`): warned once, then logged at debug."""


def _span_failed(where: str, exc: BaseException) -> None:
    # The SDK calls span processors' on_start/on_end without catching: a broken processor
    # (or exporter behind a synchronous one) raised out of every operation's span. The
    # operation goes on without its span; said once, then at debug (one line per call
    # would flood the log), with the type only (messages may hold data).
    level = logging.DEBUG if where in _warned else logging.WARNING
    _warned.add(where)
    log.log(
        level,
        "observe: OpenTelemetry failed to %s a span (%s); the operation goes on without it",
        where,
        type(exc).__name__,
    )


def _digest(value: Any) -> str:
    return hashlib.sha256(str(value).encode("utf-8", "replace")).hexdigest()[:16]


def clean_attributes(attrs: Mapping[str, Any], *, raw: Collection[str] = ()) -> dict[str, Any]:
    """The attributes a span or metric point may carry: nothing secret, nothing long.

    Semantic-convention keys pass as they are; ours get the ``deepagents_redis.`` prefix.
    Keys that name user data (scope, namespace, thread, path, plan, key) and coord's names
    (``agent``, ``topic``: chosen by whoever submits or publishes) become ``<key>_hash``
    (16 hex digits of SHA-256); other strings longer than 128 characters, and values that
    are not str, bool, int or float, are dropped.

    Args:
        attrs: What a phase reported.
        raw: Keys to pass as they are although they are hashed by default: the
            instrumentation passes ``agent`` for a worker's own operations, and ``agent``
            and ``topic`` with ``raw_coord_names=True``.

    Returns:
        OpenTelemetry attributes.
    """
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if key in _SEMCONV:
            out[key] = value
            continue
        if value is None:
            continue
        if key in _HASHED and key not in raw:
            out[f"{PREFIX}.{key}_hash"] = _digest(value)
            continue
        if isinstance(value, bool | int | float) or (
            isinstance(value, str) and len(value) <= _MAX_TEXT
        ):
            out[f"{PREFIX}.{key}"] = value
    return out


@functools.lru_cache(maxsize=_MAX_CACHED)
def _thread_digest(thread: str) -> str:
    # One graph run's spans all carry the same thread: hashed once, not once per span.
    return _digest(thread)


def graph_attributes(*, raw_thread_ids: bool = False) -> dict[str, str]:
    """The graph run we are inside, if any: its thread (hashed) and ``langgraph.run_id``.

    Ids, not content: they let an operator go from a slow span to the conversation. The
    thread id is chosen by the application and is often user data (a user's or a ticket's
    id), so by default it goes out as ``langgraph.thread_id_hash`` (16 hex digits of
    SHA-256, as our other user-data attributes: hash the id you look for to find its spans);
    ``raw_thread_ids=True`` sends ``langgraph.thread_id`` as it is. The run id is LangGraph's
    (or the Agent Server's) UUID and goes out as it is. Read from the runnable config
    LangGraph puts in context for each node (and its checkpointer calls).

    Args:
        raw_thread_ids: Send the thread id itself instead of its hash.
    """
    config = var_child_runnable_config.get()
    if not config:
        return {}
    out: dict[str, str] = {}
    thread = (config.get("configurable") or {}).get("thread_id")
    if thread is not None:
        if not raw_thread_ids:
            out["langgraph.thread_id_hash"] = _thread_digest(str(thread))
        elif len(str(thread)) <= _MAX_TEXT:
            out["langgraph.thread_id"] = str(thread)
    run_id = config.get("run_id") or (config.get("metadata") or {}).get("run_id")
    if run_id is not None and len(str(run_id)) <= _MAX_TEXT:
        out["langgraph.run_id"] = str(run_id)
    return out


def _split(name: str) -> tuple[str, str]:
    phase, _, operation = name.partition(".")
    return phase, operation or phase


class OpenTelemetryInstrumentation:
    """Core's `Instrumentation` on OpenTelemetry providers (cheap, never raises).

    Args:
        tracer_provider: Where spans go (default: the global provider).
        meter_provider: Where metrics go (default: the global provider).
        raw_thread_ids: Put a graph run's thread id on spans as it is
            (``langgraph.thread_id``) instead of its hash (``langgraph.thread_id_hash``).
        raw_coord_names: Put coord topics and every coord agent name on spans and metric
            points as they are (``deepagents_redis.topic``, ``deepagents_redis.agent``).
            By default a topic, and the agent a task is submitted to, go out hashed
            (``..._hash``): they are the caller's text, often a model's or a user's. The
            agent name of a worker's own operations (claim, run, finish, redeliveries...)
            comes from its ``agents=`` mapping, the operator's configuration, and is always
            sent as it is.
    """

    def __init__(
        self,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        *,
        raw_thread_ids: bool = False,
        raw_coord_names: bool = False,
    ) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            own = version("deepagents-redis-observe")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            own = "0"
        self._tracer = trace.get_tracer(_SCOPE, own, tracer_provider=tracer_provider)
        self._meter = metrics.get_meter(_SCOPE, own, meter_provider=meter_provider)
        self._duration = self._meter.create_histogram(
            f"{PREFIX}.operation.duration",
            unit="s",
            description="Duration of each deepagents-redis operation by phase, operation, outcome.",
        )
        self._raw_thread_ids = raw_thread_ids
        self._raw_coord_names = raw_coord_names
        self._counters: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._span_attrs: dict[Any, dict[str, Any]] = {}
        self._count_attrs: dict[Any, dict[str, Any]] = {}
        self._duration_attrs: dict[Any, dict[str, Any]] = {}

    # ------------------------------------------------------------------ spans
    #
    # The hot path (benchmark suite `observe`: a cache hit with OpenTelemetry on). Every
    # operation of every phase comes through `span`, `count` and `record_duration`, so each
    # one builds its cleaned attributes once per distinct (name, attributes) and reuses the
    # same dict afterwards (the SDK copies span attributes and only reads metric ones), and
    # the span is a slotted context manager around `start_span` + a context attach instead
    # of the SDK's two nested generator context managers (`start_as_current_span` and
    # `use_span`). Profile before this change: ~62 µs of OpenTelemetry per cache hit, of
    # which the SDK's own span, counter and histogram point cost ~27 µs.

    def span(self, name: str, **attrs: Any) -> AbstractContextManager[Any]:
        """Open a CLIENT span named `name` (see the module docstring for attributes).

        The span is current inside the block (a Redis command span, or any other span
        started inside, is its child). An exception leaving the block sets the span's
        status to ERROR with the exception's type (never its message) and re-raises.

        Args:
            name: ``<phase>.<operation>``.
            **attrs: What the phase reported.

        Returns:
            The span's context manager.
        """
        attributes = self._cached(self._span_attrs, name, attrs, self._build_span_attrs)
        config = var_child_runnable_config.get()
        if config:
            graph = graph_attributes(raw_thread_ids=self._raw_thread_ids)
            if graph:
                attributes = {**attributes, **graph}
        return _CurrentSpan(self._tracer, name, attributes)

    def _raw(self, name: str) -> Collection[str]:
        """The keys of `name`'s attributes sent as they are (see `_COORD_NAMES`)."""
        if self._raw_coord_names:
            return _COORD_NAMES
        return ("agent",) if name in _WORKER_AGENT_OPS else ()

    def _build_span_attrs(self, name: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
        phase, operation = _split(name)
        attributes = clean_attributes(attrs, raw=self._raw(name))
        attributes.setdefault("db.system.name", "redis")
        attributes[f"{PREFIX}.phase"] = phase
        attributes[f"{PREFIX}.operation"] = operation
        return attributes

    def _build_count_attrs(self, name: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
        attributes = clean_attributes(attrs, raw=self._raw(name))
        attributes[f"{PREFIX}.phase"] = _split(name)[0]
        return attributes

    def _build_duration_attrs(self, name: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
        phase, operation = _split(name)
        attributes = clean_attributes(attrs, raw=self._raw(name))
        attributes[f"{PREFIX}.phase"] = phase
        attributes[f"{PREFIX}.operation"] = operation
        return attributes

    @staticmethod
    def _cached(
        cache: dict[Any, dict[str, Any]],
        name: str,
        attrs: Mapping[str, Any],
        build: Any,
    ) -> dict[str, Any]:
        """The cleaned attributes of (name, attrs), built once and shared (never mutated).

        Bounded: attribute values may vary without limit (hashed ids), so past
        `_MAX_CACHED` entries the cache starts over instead of growing.
        """
        try:
            # The value types are part of the key: True == 1 == 1.0 as dict keys, but
            # they are different attribute values.
            key: Any = (name, *attrs.items(), *map(type, attrs.values())) if attrs else name
            found = cache.get(key)
        except TypeError:  # an unhashable value: clean it every time
            return build(name, attrs)  # type: ignore[no-any-return]
        if found is None:
            found = build(name, attrs)
            if len(cache) >= _MAX_CACHED:
                cache.clear()
            cache[key] = found
        return found

    # ------------------------------------------------------------------ metrics
    def _counter(self, name: str) -> Any:
        counter = self._counters.get(name)
        if counter is None:
            with self._lock:
                counter = self._counters.get(name)
                if counter is None:
                    counter = self._meter.create_counter(
                        f"{PREFIX}.{name}",
                        unit="{operation}",
                        description=f"deepagents-redis {name} operations, by outcome.",
                    )
                    self._counters[name] = counter
        return counter

    def count(self, name: str, value: int = 1, **attrs: Any) -> None:
        """Add `value` to the counter ``deepagents_redis.<name>``.

        Args:
            name: ``<phase>.<operation>``.
            value: How many.
            **attrs: Such as ``outcome="hit"``.
        """
        try:
            counter = self._counters.get(name) or self._counter(name)
            counter.add(
                value, self._cached(self._count_attrs, name, attrs, self._build_count_attrs)
            )
        except Exception:  # noqa: BLE001 - instrumentation never breaks an operation
            return

    def record_duration(self, name: str, seconds: float, **attrs: Any) -> None:
        """Record an operation's duration in ``deepagents_redis.operation.duration``.

        Args:
            name: ``<phase>.<operation>``.
            seconds: How long it took.
            **attrs: Such as ``outcome="ok"``.
        """
        try:
            self._duration.record(
                seconds,
                self._cached(self._duration_attrs, name, attrs, self._build_duration_attrs),
            )
        except Exception:  # noqa: BLE001 - instrumentation never breaks an operation
            return

    # ------------------------------------------------------------------ trace context
    def inject(self) -> dict[str, str]:
        """The current trace context as W3C headers (``traceparent``, ``tracestate``).

        Always W3C trace context, whatever the global propagator (see `_W3C`).
        """
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)
        return carrier

    @contextmanager
    def attach(self, carrier: Mapping[str, str]) -> Iterator[None]:
        """Run the block under the remote parent `carrier` names.

        Args:
            carrier: W3C headers from `inject` (in another process).
        """
        # Stored data (see core's `traced`): text headers only, and a propagator that still
        # fails leaves the work without a parent instead of failing it.
        headers = (
            {k: v for k, v in carrier.items() if isinstance(k, str) and isinstance(v, str)}
            if isinstance(carrier, Mapping)
            else {}
        )
        try:
            parent = _W3C.extract(headers)
        except Exception as exc:  # noqa: BLE001 - tracing never fails the traced work
            log.debug("observe: unreadable trace carrier (%s)", type(exc).__name__)
            yield
            return
        token = otel_context.attach(parent)
        try:
            yield
        finally:
            otel_context.detach(token)


class _CurrentSpan:
    """A CLIENT span, current inside the block; an exception sets ERROR with its type only.

    What ``start_as_current_span(..., record_exception=False, set_status_on_exception=False)``
    plus our status handling did, in one slotted object (the SDK's form is two nested
    generator context managers, measured among the costs of an instrumented cache hit).
    """

    __slots__ = ("_attributes", "_name", "_span", "_token", "_tracer")

    def __init__(self, tracer: Any, name: str, attributes: dict[str, Any]) -> None:
        self._tracer = tracer
        self._name = name
        self._attributes = attributes
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> Any:
        try:
            span = self._tracer.start_span(
                self._name,
                kind=SpanKind.CLIENT,
                attributes=self._attributes,
                record_exception=False,
                set_status_on_exception=False,
            )
        except Exception as exc:  # noqa: BLE001 - instrumentation never breaks an operation
            _span_failed("start", exc)
            self._span, self._token = trace.INVALID_SPAN, None
            return self._span
        self._span = span
        self._token = otel_context.attach(trace.set_span_in_context(span))
        return span

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        span, token = self._span, self._token
        self._span = self._token = None
        try:
            if exc_type is not None and span.is_recording():
                # the type, never the message: messages may hold paths, ids or prompts
                span.set_status(Status(StatusCode.ERROR, exc_type.__name__))
                span.set_attribute("error.type", exc_type.__name__)
        except Exception as failure:  # noqa: BLE001 - never breaks (or hides) the operation
            _span_failed("end", failure)
        finally:
            if token is not None:
                otel_context.detach(token)
            try:
                span.end()
            except Exception as failure:  # noqa: BLE001 - the operation's outcome stands
                _span_failed("end", failure)
