"""`dashboard()`: the Grafana dashboard of every phase's metrics, shipped with the package.

The JSON (`grafana-dashboard.json`, package data) queries the metric names a Prometheus
exporter gives our OpenTelemetry instruments (`deepagents_redis.cache.lookup` becomes
`deepagents_redis_cache_lookup_total`, the duration histogram
`deepagents_redis_operation_duration_seconds_*`); a test scrapes a real run and checks that
every series and label the dashboard asks for exists.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["dashboard"]

_FILE = "grafana-dashboard.json"


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard, ready to import (Dashboards > New > Import).

    It asks for a Prometheus data source when imported (variable `datasource`) and filters by
    phase (variable `phase`). Rows: all phases (rate, errors, p50/p99 latency, connections
    per pool), cache (hit ratio, outcomes, breaker, single-flight, node cache), todos, files
    and checkpoints (conflicts, bytes, operations), and coord (backlog, claimed, delayed, dead
    letters, redeliveries). The gauges need `watch(...)`.

    Returns:
        The dashboard model (a fresh copy each call).

    Example:
        >>> import json
        >>> from deepagents_redis.observe import dashboard
        >>> text = json.dumps(dashboard(), indent=2)  # save it, then import it in Grafana
        >>> dashboard()["uid"]
        'deepagents-redis'
    """
    raw = resources.files(__package__).joinpath(_FILE).read_text(encoding="utf-8")
    model: dict[str, Any] = json.loads(raw)
    return model
