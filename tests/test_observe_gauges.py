"""`watch()`: coord queue and cache breaker gauges, read at collection time."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from deepagents_redis.cache import RedisLLMCache
from deepagents_redis.coord import TaskClient
from deepagents_redis.core import RedisConnector
from deepagents_redis.observe import watch
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

pytestmark = pytest.mark.integration


def _gauges(reader: InMemoryMetricReader) -> dict[str, dict[Any, Any]]:
    out: dict[str, dict[Any, Any]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out[metric.name] = {
                    tuple(sorted(dict(p.attributes or {}).items())): p.value
                    for p in metric.data.data_points
                }
    return out


def test_queue_depths_and_breaker_state(redis_settings: Any) -> None:
    connector = RedisConnector(settings=redis_settings)
    namespace = f"obs{uuid.uuid4().hex[:6]}"
    tasks = TaskClient(connector=connector, namespace=namespace, check_agents=False)
    cache = RedisLLMCache(connector=connector, namespace=namespace)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    watch(tasks=tasks, agents=["idle"], caches=[cache], meter_provider=provider)
    try:
        for i in range(3):
            tasks.submit("idle", {"n": i})
        agent = (("deepagents_redis.agent", "idle"),)
        seen = _gauges(reader)
        assert seen["deepagents_redis.coord.backlog"][agent] == 3
        assert seen["deepagents_redis.coord.pending"][agent] == 0
        assert seen["deepagents_redis.coord.dead_letters"][agent] == 0
        # a worker's group appears and claims one (as XREADGROUP does), not acknowledged yet
        stream = tasks.keys.queue("idle").stream
        connector.client().execute_command("XGROUP", "CREATE", stream, "workers", "0")
        connector.client().execute_command(
            "XREADGROUP", "GROUP", "workers", "w1", "COUNT", 1, "STREAMS", stream, ">"
        )
        import time

        time.sleep(0.6)  # past the one-collection memo
        seen = _gauges(reader)
        assert seen["deepagents_redis.coord.backlog"][agent] == 2
        assert seen["deepagents_redis.coord.pending"][agent] == 1
        (state,) = seen["deepagents_redis.cache.breaker_state"].values()
        assert state == 0
        cache.breaker.record_failure()
        for _ in range(10):
            cache.breaker.record_failure()
        (state,) = _gauges(reader)["deepagents_redis.cache.breaker_state"].values()
        assert state == 2
    finally:
        provider.shutdown()
        tasks.close()
        connector.close()
