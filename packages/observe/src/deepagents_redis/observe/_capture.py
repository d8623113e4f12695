"""`capture()`: record spans and metrics in memory, for tests (yours and ours)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from deepagents_redis.core import ConfigurationError
from deepagents_redis.observe._setup import instrumented_for_block

__all__ = ["Captured", "capture"]


@dataclass
class Captured:
    """What `capture` recorded.

    Attributes:
        spans: The SDK's `InMemorySpanExporter`.
        metrics: The SDK's `InMemoryMetricReader`.
        tracer_provider: The provider the spans went to.
        meter_provider: The provider the metrics went to.
    """

    spans: Any
    metrics: Any
    tracer_provider: Any
    meter_provider: Any

    def finished(self, prefix: str = "") -> list[Any]:
        """Finished spans whose name starts with `prefix`."""
        return [s for s in self.spans.get_finished_spans() if s.name.startswith(prefix)]

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """``(attributes, data point)`` of every point of the metric `name`, collected now."""
        data = self.metrics.get_metrics_data()
        out: list[tuple[dict[str, Any], Any]] = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        out += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
        return out


@contextmanager
def capture() -> Iterator[Captured]:
    """Instrument with in-memory SDK exporters for the block; put back what was in force after.

    An `instrument()` of your own is replaced for the block (its exporters see nothing of
    it) and is in force again after it.

    Yields:
        The recordings.

    Raises:
        ConfigurationError: ``opentelemetry-sdk`` is not installed (the ``sdk`` extra).

    Example:
        >>> with capture() as seen:  # doctest: +SKIP
        ...     saver.get_tuple(config)
        >>> [s.name for s in seen.finished()]  # doctest: +SKIP
        ['checkpoint.get']
    """
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError as exc:
        raise ConfigurationError(
            "capture() needs opentelemetry-sdk: pip install 'deepagents-redis-observe[sdk]'"
        ) from exc
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    try:
        with instrumented_for_block(tracer_provider=tracer_provider, meter_provider=meter_provider):
            yield Captured(spans, reader, tracer_provider, meter_provider)
    finally:
        meter_provider.shutdown()
        tracer_provider.shutdown()
