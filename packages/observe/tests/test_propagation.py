"""The trace carrier is W3C trace context whatever propagator the application set globally."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from deepagents_redis.core import trace_carrier, traced
from deepagents_redis.observe import Captured
from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator


@pytest.fixture
def baggage_only() -> Iterator[None]:
    """A global propagator without trace context (as ``OTEL_PROPAGATORS=b3`` or ``baggage``
    leaves it: the process propagates some other format, or none)."""
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(W3CBaggagePropagator())
    try:
        yield
    finally:
        propagate.set_global_textmap(before)


def test_the_carrier_links_submitter_and_worker_whatever_the_global_propagator(
    baggage_only: None, otel: Captured
) -> None:
    # Core carries `traceparent`/`tracestate` only (coord stores them with a task); observe
    # wrote and read them through the global propagator, so with any other propagator set
    # the carrier came out empty and every worker span started a trace of its own.
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("submit") as parent:
        carrier = trace_carrier()
    assert set(carrier) >= {"traceparent"}
    seen: list[Any] = []

    def worker() -> None:  # another thread: only the carrier links the two
        with traced(carrier), tracer.start_as_current_span("run") as run:
            seen.append(run)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=10)
    (run,) = seen
    assert run.context.trace_id == parent.get_span_context().trace_id
    assert run.parent is not None
    assert run.parent.span_id == parent.get_span_context().span_id
