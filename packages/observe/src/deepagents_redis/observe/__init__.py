"""deepagents-redis observe: OpenTelemetry traces and metrics for every phase.

`instrument()` plugs OpenTelemetry into core's instrumentation seam: every cache, todos, fs,
coord and checkpoint operation becomes a span and metric points; `uninstrument()` takes it
out. Only `opentelemetry-api` is required; the SDK and exporters are your choice.
"""

from deepagents_redis.observe._capture import Captured, capture
from deepagents_redis.observe._dashboard import dashboard
from deepagents_redis.observe._gauges import unwatch, watch
from deepagents_redis.observe._otel import PREFIX, OpenTelemetryInstrumentation, clean_attributes
from deepagents_redis.observe._setup import instrument, is_instrumented, uninstrument

__all__ = [
    "PREFIX",
    "Captured",
    "OpenTelemetryInstrumentation",
    "capture",
    "clean_attributes",
    "dashboard",
    "instrument",
    "is_instrumented",
    "uninstrument",
    "unwatch",
    "watch",
]
