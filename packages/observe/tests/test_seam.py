"""The OpenTelemetry side of core's seam: spans, metrics, attributes, context, lifecycle."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from deepagents_redis.core import (
    Command,
    DeepAgentsRedisError,
    RedisConnector,
    get_instrumentation,
    run_operation,
    trace_carrier,
    traced,
)
from deepagents_redis.observe import (
    Captured,
    clean_attributes,
    instrument,
    is_instrumented,
    uninstrument,
)


def _op(*args: Any) -> Any:
    reply = yield Command(args)
    return reply


@pytest.fixture
def connector(redis_settings: Any) -> Any:
    conn = RedisConnector(settings=redis_settings)
    yield conn
    conn.close()


def test_attributes_hide_user_data_and_keep_the_conventions() -> None:
    cleaned = clean_attributes(
        {
            "db.system.name": "redis",
            "server.port": 6379,
            "outcome": "hit",
            "bytes": 42,
            "path": "/home/me/secret.txt",
            "scope": "thread-of-alice",
            "note": "x" * 500,
            "obj": object(),
            "none": None,
        }
    )
    assert cleaned["db.system.name"] == "redis"
    assert cleaned["server.port"] == 6379
    assert cleaned["deepagents_redis.outcome"] == "hit"
    assert cleaned["deepagents_redis.bytes"] == 42
    assert len(cleaned["deepagents_redis.path_hash"]) == 16
    assert "secret" not in repr(cleaned)
    assert "alice" not in repr(cleaned)
    assert not any(k.endswith(("note", "obj", "none")) for k in cleaned)


def test_an_operation_is_a_span_a_count_and_a_duration(otel: Captured, connector: Any) -> None:
    assert run_operation(connector, "test.ping", _op("PING"), deadline_seconds=5) is True
    (span,) = otel.finished("test.ping")
    attrs = dict(span.attributes or {})
    assert attrs["db.system.name"] == "redis"
    assert attrs["server.address"] == "127.0.0.1"
    assert isinstance(attrs["server.port"], int)
    assert attrs["deepagents_redis.phase"] == "test"
    assert attrs["deepagents_redis.operation"] == "ping"
    (point,) = [p for a, p in otel.points("deepagents_redis.operation.duration")]
    assert point.count == 1
    assert point.sum > 0
    ((count_attrs, count),) = otel.points("deepagents_redis.test.ping")
    assert (count_attrs["deepagents_redis.outcome"], count.value) == ("ok", 1)


def test_a_failed_operation_sets_error_status_with_the_type_only(
    otel: Captured, connector: Any, key_prefix: str
) -> None:
    key = f"{key_prefix}:not-a-number"
    connector.client().set(key, "abc")
    with pytest.raises(DeepAgentsRedisError):
        run_operation(connector, "test.incr", _op("INCR", key), deadline_seconds=5)
    (span,) = otel.finished("test.incr")
    assert span.status.status_code.name == "ERROR"
    assert dict(span.attributes or {})["error.type"] == span.status.description
    assert not span.events
    outcomes = {a["deepagents_redis.outcome"] for a, _ in otel.points("deepagents_redis.test.incr")}
    assert outcomes == {"error"}
    connector.client().delete(key)


def test_trace_context_crosses_to_another_thread(otel: Captured, connector: Any) -> None:
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("parent") as parent:
        carrier = trace_carrier()
    assert carrier["traceparent"].split("-")[1] == format(
        parent.get_span_context().trace_id, "032x"
    )

    def elsewhere() -> None:  # no current span here: only the carrier links the two
        with traced(carrier):
            run_operation(connector, "test.remote", _op("PING"), deadline_seconds=5)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(timeout=10)
    (remote,) = otel.finished("test.remote")
    assert remote.context.trace_id == parent.get_span_context().trace_id
    assert remote.parent is not None
    assert remote.parent.span_id == parent.get_span_context().span_id


@pytest.mark.parametrize(
    "carrier",
    [
        {"traceparent": 5},
        {"traceparent": b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        {"traceparent": None, "tracestate": 7},
        ["traceparent"],
    ],
    ids=["int", "bytes", "none", "list"],
)
def test_a_malformed_stored_carrier_never_fails_the_work(otel: Captured, carrier: Any) -> None:
    """A carrier comes from stored data (coord keeps the submitter's as JSON with the task):
    another writer's `{"traceparent": 5}` raised TypeError out of `traced(...)` (the
    propagator takes `len()` of it), so the worker failed the task over its tracing. The
    work runs without a parent instead."""
    inst = get_instrumentation()
    with traced(carrier):
        ran = True
    assert ran
    with inst.attach(carrier):  # type: ignore[attr-defined]
        pass
    # Under no parent: a span started inside is a root of its own trace.
    tracer = otel.tracer_provider.get_tracer("test")
    with traced(carrier), tracer.start_as_current_span("inside") as inside:
        assert inside.parent is None


def test_lifecycle(otel: Captured, connector: Any) -> None:
    installed = get_instrumentation()
    assert is_instrumented()
    assert (
        instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
        is installed
    )
    run_operation(connector, "test.once", _op("PING"), deadline_seconds=5)
    uninstrument()
    assert not is_instrumented()
    run_operation(connector, "test.once", _op("PING"), deadline_seconds=5)
    assert len(otel.finished("test.once")) == 1
    ((_, count),) = otel.points("deepagents_redis.test.once")
    assert count.value == 1
    uninstrument()  # nothing to undo: harmless


def test_a_new_provider_at_a_dead_ones_address_is_instrumented(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # instrument() recognised its repeat calls by the providers' id(): a meter provider
    # collected after the call (the instrumentation holds none) left its address to the
    # next one allocated, which was taken for it; instrument(meter_provider=new) kept the
    # old instrumentation and the new provider never got a metric (seen on CPython 3.11
    # with gc disabled: del old; new = Provider() lands at the same address). The reuse is
    # made certain here: every object has the same id() for _setup.
    from deepagents_redis.observe import _setup
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    monkeypatch.setattr(_setup, "id", lambda obj: 1, raising=False)
    readers = [InMemoryMetricReader(), InMemoryMetricReader()]
    providers = [MeterProvider(metric_readers=[r], shutdown_on_exit=False) for r in readers]
    try:
        first = instrument(meter_provider=providers[0])
        second = instrument(meter_provider=providers[1])
        assert second is not first
        assert get_instrumentation() is second
        second.count("test.moved")
        assert readers[0].get_metrics_data() is None
        assert readers[1].get_metrics_data() is not None
        assert instrument(meter_provider=providers[1]) is second  # a repeat is still a no-op
    finally:
        uninstrument()
        for provider in providers:
            provider.shutdown()


def test_redis_commands_adds_command_spans_and_goes_away(otel: Captured, connector: Any) -> None:
    instrument(
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
        redis_commands=True,
    )
    client = RedisConnector(settings=connector.settings)  # built after: redis-py is patched
    try:
        run_operation(client, "test.cmd", _op("PING"), deadline_seconds=5)
        names = [s.name for s in otel.spans.get_finished_spans()]
        assert "test.cmd" in names
        assert any(name.upper().startswith("PING") for name in names)
        uninstrument()
        otel.spans.clear()
        client.client().ping()
        assert otel.spans.get_finished_spans() == ()
    finally:
        client.close()


def _graph_span_attributes(connector: Any, spans: Any, thread: str) -> tuple[dict, str]:
    """Run one LangGraph node that makes an operation; its span's attributes and run id."""
    import uuid

    from langgraph.graph import END, START, StateGraph

    def node(state: dict[str, Any]) -> dict[str, Any]:
        run_operation(connector, "test.in_graph", _op("PING"), deadline_seconds=5)
        return {"done": True}

    builder = StateGraph(dict)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    run_id = str(uuid.uuid4())
    # the run id as the LangGraph Agent Server passes it: in the run's metadata
    config = {"configurable": {"thread_id": thread}, "metadata": {"run_id": run_id}}
    builder.compile().invoke({}, config)
    (span,) = spans("test.in_graph")
    return dict(span.attributes or {}), run_id


def test_spans_inside_a_graph_carry_its_thread_and_run(otel: Captured, connector: Any) -> None:
    import hashlib

    # A thread id is the application's and often user data: by default only its hash.
    thread = "user-jane@example.com"
    attrs, run_id = _graph_span_attributes(connector, otel.finished, thread)
    assert attrs["langgraph.thread_id_hash"] == hashlib.sha256(thread.encode()).hexdigest()[:16]
    assert thread not in attrs.values()
    assert "langgraph.thread_id" not in attrs
    assert attrs["langgraph.run_id"] == run_id
    run_operation(connector, "test.outside", _op("PING"), deadline_seconds=5)
    (outside,) = otel.finished("test.outside")
    assert not {"langgraph.thread_id", "langgraph.thread_id_hash"} & set(outside.attributes or {})


def test_raw_thread_ids_put_the_thread_id_itself_on_spans(connector: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def finished(name: str) -> list[Any]:
        return [s for s in exporter.get_finished_spans() if s.name == name]

    instrument(tracer_provider=provider, raw_thread_ids=True)
    try:
        attrs, _ = _graph_span_attributes(connector, finished, "t-42")
    finally:
        uninstrument()
        provider.shutdown()
    assert attrs["langgraph.thread_id"] == "t-42"
    assert "langgraph.thread_id_hash" not in attrs


def test_reused_attribute_sets_stay_exact_per_call(otel: Captured) -> None:
    # Cleaned attributes are built once per distinct set and shared: equal-but-different
    # values (True == 1 == 1.0) must still be reported as given, and sets must not mix.
    # What is checked is what we hand the SDK: SDKs before 1.45 key their own points by
    # equality, so they fold flag=True and flag=1 together whatever we pass.
    inst = get_instrumentation()
    inst.count("test.cached", 0, outcome="miss", flag=1.0)  # creates the counter
    real = inst._counters["test.cached"]  # type: ignore[attr-defined]
    given: list[tuple[str, object, type]] = []

    class Recording:
        def add(self, value: int, attributes: dict[str, object]) -> None:
            flag = attributes["deepagents_redis.flag"]
            given.append((str(attributes["deepagents_redis.outcome"]), flag, type(flag)))
            real.add(value, attributes)

    inst._counters["test.cached"] = Recording()  # type: ignore[attr-defined]
    for _ in range(3):
        inst.count("test.cached", outcome="hit", flag=True)
        inst.count("test.cached", outcome="hit", flag=1)
        inst.count("test.cached", outcome="miss", flag=1.0)
        inst.record_duration("test.cached", 0.5, outcome="ok")
        inst.record_duration("test.cached", 0.25, outcome="error")
    assert given == [("hit", True, bool), ("hit", 1, int), ("miss", 1.0, float)] * 3
    total = sum(p.value for _, p in otel.points("deepagents_redis.test.cached"))
    assert total == 9
    durations = {
        a["deepagents_redis.outcome"]: (p.count, p.sum)
        for a, p in otel.points("deepagents_redis.operation.duration")
        if a["deepagents_redis.operation"] == "cached"
    }
    assert durations == {"ok": (3, 1.5), "error": (3, 0.75)}


def test_the_span_is_current_inside_and_records_errors_by_type(otel: Captured) -> None:
    inst = get_instrumentation()
    tracer = otel.tracer_provider.get_tracer("test")
    with inst.span("test.outer", scope="s1"), tracer.start_as_current_span("inner"):
        pass
    with pytest.raises(KeyError), inst.span("test.outer", scope="s1"):
        raise KeyError("secret-path")
    inner = otel.finished("inner")[0]
    ok, failed = otel.finished("test.outer")
    assert inner.parent is not None
    assert inner.parent.span_id == ok.context.span_id
    assert ok.status.status_code.name == "UNSET"
    assert failed.status.status_code.name == "ERROR"
    assert failed.status.description == "KeyError"
    assert "secret" not in repr(dict(failed.attributes or {}))
    assert dict(failed.attributes or {})["error.type"] == "KeyError"
    assert "deepagents_redis.scope_hash" in dict(ok.attributes or {})
    # after the block the outer span is no longer current
    from opentelemetry import trace

    assert not trace.get_current_span().get_span_context().is_valid


def test_capture_puts_back_the_instrumentation_that_was_in_force(connector: Any) -> None:
    # capture() replaced a process's own instrument() for the block and then uninstrumented:
    # after the block nothing was reported any more, to the process's own exporters or not.
    from deepagents_redis.observe import capture
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    mine = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(mine))
    installed = instrument(tracer_provider=provider, redis_commands=True)
    later = None
    try:
        with capture() as seen:
            run_operation(connector, "test.inside", _op("PING"), deadline_seconds=5)
        assert [s.name for s in seen.finished("test.")] == ["test.inside"]
        assert is_instrumented()
        assert get_instrumentation() is installed
        later = RedisConnector(settings=connector.settings)  # built after: commands traced
        run_operation(later, "test.after", _op("PING"), deadline_seconds=5)
        names = [s.name for s in mine.get_finished_spans()]
        assert "test.after" in names
        assert "test.inside" not in names
        assert any(name.upper().startswith("PING") for name in names)
    finally:
        uninstrument()
        assert not is_instrumented()
        if later is not None:
            later.close()
        provider.shutdown()


def test_uninstrument_leaves_redis_command_spans_the_application_turned_on(
    otel: Captured, connector: Any
) -> None:
    # RedisInstrumentor is one object per process. When the application had turned it on
    # itself, instrument(redis_commands=True) kept it as its own and uninstrument() turned
    # the application's command spans off.
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    theirs = RedisInstrumentor()
    theirs.instrument(tracer_provider=otel.tracer_provider)
    try:
        instrument(
            tracer_provider=otel.tracer_provider,
            meter_provider=otel.meter_provider,
            redis_commands=True,
        )
        uninstrument()
        assert RedisInstrumentor().is_instrumented_by_opentelemetry
        client = RedisConnector(settings=connector.settings)  # built after: still traced
        try:
            otel.spans.clear()
            client.client().ping()
            names = [s.name for s in otel.spans.get_finished_spans()]
            assert any(name.upper().startswith("PING") for name in names)
        finally:
            client.close()
    finally:
        if RedisInstrumentor().is_instrumented_by_opentelemetry:
            RedisInstrumentor().uninstrument()


def test_coord_names_a_submitter_chose_are_hashed_a_workers_own_are_not(
    otel: Captured, connector: Any
) -> None:
    # Before: the topic of coord.publish and the agent of coord.submit went out as they were
    # (a model's subagent_type, a topic named after a user), while thread ids, paths and
    # namespaces were hashed.
    import hashlib

    def digest(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    run_operation(connector, "coord.publish", _op("PING"), deadline_seconds=5, topic="jane@x")
    run_operation(connector, "coord.submit", _op("PING"), deadline_seconds=5, agent="a@jane")
    (publish,) = otel.finished("coord.publish")
    (submit,) = otel.finished("coord.submit")
    publish_attrs = dict(publish.attributes or {})
    submit_attrs = dict(submit.attributes or {})
    assert publish_attrs["deepagents_redis.topic_hash"] == digest("jane@x")
    assert submit_attrs["deepagents_redis.agent_hash"] == digest("a@jane")
    assert "jane" not in repr(publish_attrs) + repr(submit_attrs)
    assert "deepagents_redis.topic" not in publish_attrs
    assert "deepagents_redis.agent" not in submit_attrs

    # A worker's own operations name an agent of its `agents=` mapping: kept readable (the
    # dashboard groups redeliveries by it).
    run_operation(connector, "coord.claim", _op("PING"), deadline_seconds=5, agent="research")
    inst = get_instrumentation()
    with inst.span("coord.run", agent="research", task="t-1"):
        pass
    inst.count("coord.redelivered", 2, agent="research")
    for name in ("coord.claim", "coord.run"):
        (span,) = otel.finished(name)
        assert dict(span.attributes or {})["deepagents_redis.agent"] == "research"
    ((attrs, point),) = otel.points("deepagents_redis.coord.redelivered")
    assert (attrs["deepagents_redis.agent"], point.value) == ("research", 2)
    # and any other operation's agent is hashed, wherever it is reported
    inst.count("coord.other", agent="a@jane")
    ((attrs, _point),) = otel.points("deepagents_redis.coord.other")
    assert attrs == {
        "deepagents_redis.agent_hash": digest("a@jane"),
        "deepagents_redis.phase": "coord",
    }


def test_raw_coord_names_put_topics_and_agents_themselves_on_spans(connector: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(tracer_provider=provider, raw_coord_names=True)
    try:
        run_operation(connector, "coord.publish", _op("PING"), deadline_seconds=5, topic="news")
        run_operation(connector, "coord.submit", _op("PING"), deadline_seconds=5, agent="writer")
    finally:
        uninstrument()
        provider.shutdown()
    by_name = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    assert by_name["coord.publish"]["deepagents_redis.topic"] == "news"
    assert by_name["coord.submit"]["deepagents_redis.agent"] == "writer"
    assert not any(k.endswith("_hash") for attrs in by_name.values() for k in attrs)
