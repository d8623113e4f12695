"""Suite ``observe``: what OpenTelemetry reporting costs, instrumented vs not, in one run.

The same call, alternating call by call between core's no-op instrumentation and
`OpenTelemetryInstrumentation` on the SDK (a tracer provider whose processor hands each span
to an exporter that drops it, and a meter provider with an in-memory reader): a span, a
counter and a histogram point per operation, without the exporter's own I/O. Target (issue
11): within 10% on a cache hit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from deepagents_redis_benchmarks._harness import BenchContext, Result


def _otel(ratio: float | None = None) -> Any:
    from deepagents_redis.observe import OpenTelemetryInstrumentation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    sampler = None if ratio is None else ParentBased(TraceIdRatioBased(ratio))
    tracer_provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(Drop()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return OpenTelemetryInstrumentation(tracer_provider, meter_provider)


def _with(inst: Any, fn: Callable[[], Any]) -> Callable[[], Any]:
    from deepagents_redis.core import set_instrumentation

    def call() -> Any:
        set_instrumentation(inst)
        return fn()

    return call


def _sdk_floor(ctx: BenchContext, otel: Any, hit: Callable[[], Any]) -> list[Result]:
    """What the OpenTelemetry SDK itself costs around an uninstrumented hit, without our code.

    The same hit (instrumentation off) inside a bare ``start_as_current_span``; and the same
    plus the counter and histogram point an instrumented hit records, with attributes built
    in advance. No instrumentation of ours can cost less than the second row (only the SDK,
    or fewer signals, could).
    """
    from opentelemetry.trace import SpanKind

    tracer = otel._tracer
    counter = otel._meter.create_counter("bench.floor.count")
    histogram = otel._meter.create_histogram("bench.floor.duration", unit="s")
    span_attrs = {
        "db.system.name": "redis",
        "deepagents_redis.phase": "cache",
        "deepagents_redis.operation": "lookup",
    }
    count_attrs = {"deepagents_redis.phase": "cache", "deepagents_redis.outcome": "hit"}
    time_attrs = {**span_attrs, "deepagents_redis.outcome": "ok"}

    def spanned() -> Any:
        with tracer.start_as_current_span("cache.lookup"):
            return hit()

    def everything() -> Any:
        with tracer.start_as_current_span(
            "cache.lookup", kind=SpanKind.CLIENT, attributes=span_attrs
        ):
            reply = hit()
        counter.add(1, count_attrs)
        histogram.record(0.0001, time_attrs)
        return reply

    rows = []
    o, b = ctx.compare(_with(None, spanned), _with(None, hit), iterations=ctx.n(5000))
    rows.append(
        Result(
            "floor: RedisLLMCache hit 1 KB in a bare SDK span",
            o,
            "same hit, no instrumentation",
            b,
            notes="tracer.start_as_current_span only: the SDK's span cost, no code of ours",
        )
    )
    o, b = ctx.compare(_with(None, everything), _with(None, hit), iterations=ctx.n(5000))
    rows.append(
        Result(
            "floor: RedisLLMCache hit 1 KB + SDK span, counter and histogram point",
            o,
            "same hit, no instrumentation",
            b,
            notes="the signals a hit reports, attributes built in advance: the SDK's floor",
        )
    )
    return rows


def run(ctx: BenchContext) -> list[Result]:
    """Cache hit and checkpoint get, instrumented vs not."""
    from deepagents_redis.cache import RedisLLMCache
    from deepagents_redis.checkpoint import RedisSaver
    from deepagents_redis.core import RedisConnector, RedisSettings, set_instrumentation
    from langchain_core.outputs import Generation
    from langgraph.checkpoint.base import empty_checkpoint

    prefix = f"bench-observe-{uuid.uuid4().hex[:8]}"
    connector = RedisConnector(settings=RedisSettings(url=ctx.url, key_prefix=prefix))
    otel = _otel()
    results: list[Result] = []
    try:
        cache = RedisLLMCache(connector=connector, namespace="bench")
        cache.update("prompt", "llm", [Generation(text="x" * 1000)])
        hit = lambda: cache.lookup("prompt", "llm")  # noqa: E731
        o, b = ctx.compare(_with(otel, hit), _with(None, hit), iterations=ctx.n(5000))
        results.append(
            Result(
                "RedisLLMCache hit 1 KB, OpenTelemetry on",
                o,
                "same hit, no instrumentation",
                b,
                notes="SDK providers, spans dropped by the exporter; target within 1.10x",
            )
        )
        results.extend(_sdk_floor(ctx, otel, hit))
        sampled = _otel(0.1)
        o, b = ctx.compare(_with(sampled, hit), _with(None, hit), iterations=ctx.n(5000))
        results.append(
            Result(
                "RedisLLMCache hit 1 KB, OpenTelemetry on, 10% of traces sampled",
                o,
                "same hit, no instrumentation",
                b,
                notes="metrics for every call, spans recorded for 1 in 10 (ParentBased ratio)",
            )
        )
        saver = RedisSaver(connector=connector)
        config: Any = {"configurable": {"thread_id": "bench", "checkpoint_ns": ""}}
        saver.put(config, empty_checkpoint(), {}, {})
        get = lambda: saver.get_tuple(config)  # noqa: E731
        o, b = ctx.compare(_with(otel, get), _with(None, get), iterations=ctx.n(5000))
        results.append(
            Result(
                "RedisSaver get_tuple, OpenTelemetry on",
                o,
                "same get, no instrumentation",
                b,
                notes="an empty checkpoint: the call is mostly the round trip",
            )
        )
        saver.delete_thread("bench")
        cache.clear()
    finally:
        set_instrumentation(None)
        connector.close()
    return results
