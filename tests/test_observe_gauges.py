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


def test_pool_connections_by_state(redis_target: Any) -> None:
    connector = RedisConnector(settings=redis_target.settings)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    watch(connectors=[connector], meter_provider=provider)

    def totals() -> dict[str, int]:
        points = _gauges(reader).get("deepagents_redis.pool.connections", {})
        by_state: dict[str, int] = {}
        for attrs, value in points.items():
            state = dict(attrs)["db.client.connection.state"]
            assert dict(attrs)["deepagents_redis.client"] == "sync"
            by_state[state] = by_state.get(state, 0) + value
        return by_state

    try:
        assert totals() == {}  # no client yet: nothing reported, nothing created
        assert connector.open_clients() == []
        client = connector.client()
        client.ping()
        assert totals().get("idle", 0) >= 1
        assert totals().get("used", 0) == 0
        if not redis_target.is_cluster:
            pubsub = client.pubsub()
            pubsub.subscribe("obs-channel")  # a subscriber holds its connection
            try:
                assert totals()["used"] == 1
            finally:
                pubsub.close()
            assert totals()["used"] == 0
    finally:
        provider.shutdown()
        connector.close()


def test_a_second_watch_adds_to_what_is_reported(redis_settings: Any) -> None:
    # OpenTelemetry keeps the first gauge of a name on a meter and dropped the second
    # watch()'s callbacks: a process watching its worker's queues and, in another call, its
    # agent's caches reported only the first call's things.
    connector = RedisConnector(settings=redis_settings)
    first = RedisLLMCache(connector=connector, namespace="obs-a")
    second = RedisLLMCache(connector=connector, namespace="obs-b")
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        watch(caches=[first], meter_provider=provider)
        watch(caches=[second], connectors=[connector], meter_provider=provider)
        for _ in range(second.settings.breaker_failure_threshold):
            second.breaker.record_failure()
        connector.client().ping()
        seen = _gauges(reader)
        assert seen["deepagents_redis.cache.breaker_state"] == {
            (("deepagents_redis.cache", "RedisLLMCache#0"),): 0,
            (("deepagents_redis.cache", "RedisLLMCache#1"),): 2,
        }
        assert seen["deepagents_redis.pool.connections"]
    finally:
        provider.shutdown()
        connector.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class _Unreachable:
    """A client whose every command times out (a blackholed server), each after 10 s."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        def command(*args: Any, **kwargs: Any) -> Any:
            import redis

            self.calls += 1
            self.clock.now += 10.0  # what a timeout costs, on the fake clock
            raise redis.TimeoutError("Timeout connecting to server")

        return command


def test_an_unreachable_server_is_read_once_per_collection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A blackholed server cost every queue read its timeouts: the four queue gauges each read
    # again once the first read had taken longer than the 0.5 s memo, and each read tried
    # every agent on a server that had already timed out, so one collection took
    # 4 x agents x (timeouts and retries) and blocked the exporter (a scrape timed out).
    from types import SimpleNamespace

    from deepagents_redis.observe import _gauges as gauges_module

    clock = _Clock()
    monkeypatch.setattr(gauges_module.time, "monotonic", clock.monotonic)
    client = _Unreachable(clock)
    keys = SimpleNamespace(
        queue=lambda agent: SimpleNamespace(
            stream=f"s:{agent}", delayed=f"d:{agent}", dlq=f"q:{agent}"
        )
    )
    tasks = SimpleNamespace(connector=SimpleNamespace(client=lambda: client), keys=keys)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        watch(tasks=tasks, agents=["a", "b", "c"], meter_provider=provider)
        seen = _gauges(reader)
        assert not any(
            seen.get(f"deepagents_redis.coord.{kind}") for kind in ("backlog", "pending")
        )
        assert client.calls == 1
        clock.now += 60.0  # the next collection tries again
        _gauges(reader)
        assert client.calls == 2
    finally:
        provider.shutdown()


def test_a_connector_that_cannot_make_a_client_is_tried_once_per_collection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # connector.client() contacts the server to detect a Cluster (cluster="auto") and raises
    # RedisUnavailableError when it is down: that went into the SDK from each of the four
    # queue gauges (each one trying the detection again) instead of one logged skip.
    from types import SimpleNamespace

    from deepagents_redis.core import RedisUnavailableError
    from deepagents_redis.observe import _gauges as gauges_module

    clock = _Clock()
    monkeypatch.setattr(gauges_module.time, "monotonic", clock.monotonic)
    attempts: list[int] = []

    def client() -> Any:
        attempts.append(1)
        clock.now += 10.0
        raise RedisUnavailableError("could not auto-detect whether the server is a Cluster")

    tasks = SimpleNamespace(connector=SimpleNamespace(client=client), keys=None)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        watch(tasks=tasks, agents=["a"], meter_provider=provider)
        with caplog.at_level("WARNING", logger="deepagents_redis.observe"):
            seen = _gauges(reader)
        assert not seen.get("deepagents_redis.coord.backlog")
        assert len(attempts) == 1
        assert "RedisUnavailableError" in caplog.text
    finally:
        provider.shutdown()


@pytest.mark.parametrize(
    "kwargs",
    [
        # a str is a sequence: its letters became agents ('i', 'd', 'l', 'e'), each a queue
        {"agents": "idle"},
        {"agents": ["idle", ""]},
        {"agents": ["idle", 3]},
        # agents without tasks= were silently not watched
        {"agents": ["idle"], "tasks": None},
        # not a cache: the breaker gauge raised in every collection ('Callback failed')
        {"caches": [object()]},
        {"caches": "cache"},
        # not a connector: the pool gauge raised in every collection
        {"connectors": [object()]},
    ],
)
def test_bad_arguments_are_refused_and_register_nothing(kwargs: dict[str, Any]) -> None:
    from types import SimpleNamespace

    from deepagents_redis.core import InvalidInputError

    tasks = SimpleNamespace(connector=SimpleNamespace(client=lambda: None), keys=None)
    args: dict[str, Any] = {"tasks": tasks, **kwargs}
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        with pytest.raises(InvalidInputError):
            watch(meter_provider=provider, **args)
        assert _gauges(reader) == {}  # no gauge registered
    finally:
        provider.shutdown()


def test_unwatch_lets_go_of_what_watch_was_given(redis_settings: Any) -> None:
    # watch() kept every cache, connector and queue it was given for the process's life: a
    # service building a cache per tenant kept each one alive and reported for good.
    import gc
    import weakref

    from deepagents_redis.core import InvalidInputError
    from deepagents_redis.observe import unwatch

    connector = RedisConnector(settings=redis_settings)
    namespace = f"obs{uuid.uuid4().hex[:6]}"
    tasks = TaskClient(connector=connector, namespace=namespace, check_agents=False)
    kept = RedisLLMCache(connector=connector, namespace="obs-kept")
    dropped = RedisLLMCache(connector=connector, namespace="obs-dropped")
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        watch(
            tasks=tasks,
            agents=["a", "b"],
            caches=[kept, dropped],
            connectors=[connector],
            meter_provider=provider,
        )
        connector.client().ping()
        seen = _gauges(reader)
        assert len(seen["deepagents_redis.cache.breaker_state"]) == 2
        assert set(seen["deepagents_redis.coord.backlog"]) == {
            (("deepagents_redis.agent", "a"),),
            (("deepagents_redis.agent", "b"),),
        }
        assert seen["deepagents_redis.pool.connections"]

        unwatch(
            tasks=tasks,
            agents=["a"],
            caches=[dropped],
            connectors=[connector],
            meter_provider=provider,
        )
        unwatch(caches=[dropped], meter_provider=provider)  # twice: harmless
        seen = _gauges(reader)
        assert seen["deepagents_redis.cache.breaker_state"] == {
            (("deepagents_redis.cache", "RedisLLMCache#0"),): 0
        }
        assert set(seen["deepagents_redis.coord.backlog"]) == {(("deepagents_redis.agent", "b"),)}
        assert not seen.get("deepagents_redis.pool.connections")
        # the unwatched cache is no longer held
        ref = weakref.ref(dropped)
        del dropped
        gc.collect()
        assert ref() is None

        unwatch(tasks=tasks, meter_provider=provider)  # every queue of this client
        assert not _gauges(reader).get("deepagents_redis.coord.backlog")
        with pytest.raises(InvalidInputError):
            unwatch(caches=[object()], meter_provider=provider)
        assert kept.breaker is not None
    finally:
        provider.shutdown()
        tasks.close()
        connector.close()
