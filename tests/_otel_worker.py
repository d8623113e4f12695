"""A coord worker process that exports its spans as JSON lines (test_observe_phases).

`python _otel_worker.py URL PREFIX SPANS_FILE`: serves the agent ``echo`` until SIGTERM.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from deepagents_redis.coord import Worker
from deepagents_redis.core import RedisSettings
from deepagents_redis.observe import instrument
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class JsonLines(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a", encoding="utf-8") as out:
            for span in spans:
                row = {
                    "name": span.name,
                    "trace_id": format(span.context.trace_id, "032x"),
                    "parent": format(span.parent.span_id, "016x") if span.parent else None,
                }
                out.write(json.dumps(row) + "\n")
        return SpanExportResult.SUCCESS


def echo(value: Any) -> Any:
    return {"echo": value}


def main() -> None:
    url, prefix, path = sys.argv[1:4]
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLines(path)))
    instrument(tracer_provider=provider)
    settings = RedisSettings(url=url, key_prefix=prefix, cluster="off")
    Worker(
        settings=settings,
        agents={"echo": echo},
        lease_seconds=5,
        heartbeat_seconds=1,
        block_seconds=0.2,
    ).run()
    provider.shutdown()


if __name__ == "__main__":
    main()
