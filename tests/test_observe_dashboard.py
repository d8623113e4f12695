"""The Grafana dashboard asks only for series and labels a real run exports.

A run of every phase (and the gauges) goes through `instrument()` into the OpenTelemetry SDK
with a Prometheus reader; the dashboard's PromQL must name metrics and labels that the
scrape contains, so a renamed metric breaks this test instead of a user's dashboard.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from deepagents_redis.cache import RedisLLMCache, RedisNodeCache
from deepagents_redis.coord import TaskClient
from deepagents_redis.core import ConflictError, RedisConnector, get_instrumentation
from deepagents_redis.fs import RedisBackend
from deepagents_redis.observe import dashboard, instrument, uninstrument, watch
from deepagents_redis.todos import RedisTodoRepository

pytestmark = pytest.mark.integration

_METRIC = re.compile(r"\bdeepagents_redis_[a-z_]+\b")
_LABELS = re.compile(r"(?:by \(([^)]*)\))|(?:([a-z_]+)=~?\")")


def _exprs(model: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in model["panels"] for t in p.get("targets", [])]
    for var in model["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(var["query"]["query"])
    return exprs


def test_the_model_is_an_importable_dashboard() -> None:
    model = dashboard()
    assert model["uid"] == "deepagents-redis"
    assert model is not dashboard()  # a fresh copy: callers may edit theirs
    panels = [p for p in model["panels"] if p["type"] != "row"]
    assert len(panels) >= 15
    assert len({p["id"] for p in model["panels"]}) == len(model["panels"])
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


@pytest.fixture
def scrape(redis_settings: Any, tmp_path: Path) -> Any:
    prometheus = pytest.importorskip("opentelemetry.exporter.prometheus")
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import REGISTRY, generate_latest

    reader = prometheus.PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrument(meter_provider=provider)
    connector = RedisConnector(settings=redis_settings)
    ns = f"dash{uuid.uuid4().hex[:6]}"
    try:
        cache = RedisLLMCache(connector=connector, namespace=ns, single_flight=True)
        cache.lookup("prompt", "llm")
        cache.update("prompt", "llm", [])
        cache.lookup("prompt", "llm")
        node = RedisNodeCache(connector=connector)
        node.get([((ns,), "k")])
        repo = RedisTodoRepository(connector=connector)
        plan = repo.add(ns, "item")
        with pytest.raises(ConflictError):
            repo.add(ns, "again", expected_version=plan.version - 1)
        fs = RedisBackend(connector=connector, namespace=ns, blob_dir=str(tmp_path))
        fs.write("/a.md", "text")
        fs.read("/a.md")
        from deepagents_redis.checkpoint import RedisSaver

        RedisSaver(connector=connector, namespace=ns).get_tuple(
            {"configurable": {"thread_id": "t"}}
        )
        tasks = TaskClient(connector=connector, namespace=ns, check_agents=False)
        tasks.submit("agent", {"x": 1})
        get_instrumentation().count("coord.redelivered", 1, agent="agent")  # a worker's count
        watch(
            tasks=tasks,
            agents=["agent"],
            caches=[cache],
            connectors=[connector],
            meter_provider=provider,
        )
        yield generate_latest(REGISTRY).decode()
    finally:
        uninstrument()
        provider.shutdown()
        connector.close()


def test_every_series_and_label_the_dashboard_asks_for_is_exported(scrape: str) -> None:
    series = {line.split("{", 1)[0].split(" ", 1)[0] for line in scrape.splitlines()}
    labels = set(re.findall(r"([a-z_]+)=\"", scrape)) | {"le"}
    exprs = _exprs(dashboard())
    asked_labels = {
        name.strip()
        for expr in exprs
        for by, matcher in _LABELS.findall(expr)
        for name in (by.split(",") if by else [matcher])
        if name.strip()
    }
    asked = {m for e in exprs for m in _METRIC.findall(e)} - asked_labels
    assert asked, "the dashboard queries no deepagents_redis metric"
    missing = sorted(m for m in asked if m not in series)
    assert not missing, f"not in the scrape: {missing}"
    unknown = sorted(asked_labels - labels)
    assert not unknown, f"labels not in the scrape: {unknown}"
