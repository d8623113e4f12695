import pytest
from deepagents_redis.core import (
    Instrumentation,
    NoOpInstrumentation,
    RecordingInstrumentation,
    active_instrumentation,
    get_instrumentation,
    set_instrumentation,
    traced,
)


@pytest.fixture
def restore():
    previous = get_instrumentation()
    yield
    set_instrumentation(previous)


def test_default_is_noop_and_cheap(restore):
    set_instrumentation(None)
    inst = get_instrumentation()
    assert isinstance(inst, NoOpInstrumentation)
    assert isinstance(inst, Instrumentation)
    with inst.span("cache.lookup", key_bytes=3):
        inst.count("cache.lookup", outcome="hit")
        inst.record_duration("cache.lookup", 0.001, outcome="hit")


def test_recording_counts_by_name_and_attrs(restore):
    rec = RecordingInstrumentation()
    assert isinstance(rec, Instrumentation)
    previous = set_instrumentation(rec)
    assert get_instrumentation() is rec
    inst = get_instrumentation()
    inst.count("cache.lookup", outcome="hit")
    inst.count("cache.lookup", outcome="hit")
    inst.count("cache.lookup", 3, outcome="miss", tier="redis")
    assert rec.counts[("cache.lookup", frozenset({("outcome", "hit")}))] == 2
    assert rec.counts[("cache.lookup", frozenset({("outcome", "miss"), ("tier", "redis")}))] == 3
    assert rec.total("cache.lookup") == 5
    assert rec.total("cache.lookup", outcome="miss") == 3
    assert rec.total("todos.write") == 0
    inst.record_duration("cache.lookup", 0.5, outcome="hit")
    assert rec.durations == [("cache.lookup", {"outcome": "hit"}, 0.5)]
    assert set_instrumentation(previous) is rec


def test_recording_spans_note_errors():
    rec = RecordingInstrumentation()
    with rec.span("fs.write", path_bytes=4) as span:
        assert span.name == "fs.write"
    with pytest.raises(KeyError), rec.span("fs.read"):
        raise KeyError("x")
    assert [(s.name, s.error) for s in rec.spans] == [("fs.write", None), ("fs.read", "KeyError")]
    assert rec.spans[0].attrs == {"path_bytes": 4}


def test_trace_carrier_and_traced_do_nothing_by_default() -> None:
    from deepagents_redis.core import trace_carrier, traced

    assert trace_carrier() == {}
    with traced({"traceparent": "00-ab-cd-01"}):
        pass


def test_trace_carrier_keeps_w3c_headers_and_never_raises() -> None:
    from deepagents_redis.core import (
        RecordingInstrumentation,
        set_instrumentation,
        trace_carrier,
        traced,
    )

    inst = RecordingInstrumentation(context={"traceparent": "00-ab-cd-01", "baggage": "x=1"})
    previous = set_instrumentation(inst)
    try:
        assert trace_carrier() == {"traceparent": "00-ab-cd-01"}
        with traced({"traceparent": "00-ab-cd-01"}):
            pass
        with traced({}):  # no parent: not attached
            pass
        assert inst.attached == [{"traceparent": "00-ab-cd-01"}]

        class Broken(RecordingInstrumentation):
            def inject(self) -> dict[str, str]:
                raise RuntimeError("exporter bug")

        set_instrumentation(Broken())
        assert trace_carrier() == {}
    finally:
        set_instrumentation(previous)


def test_active_instrumentation_is_none_only_for_the_no_op_default() -> None:
    # Hot paths (driver, cache guard) skip spans and metrics when this is None.
    rec = RecordingInstrumentation()
    previous = set_instrumentation(None)
    try:
        assert active_instrumentation() is None
        set_instrumentation(rec)
        assert active_instrumentation() is rec
        set_instrumentation(NoOpInstrumentation())  # a no-op of one's own is still "installed"
        assert active_instrumentation() is not None
    finally:
        set_instrumentation(previous)


def test_traced_hands_on_text_trace_headers_only() -> None:
    """A carrier is stored data (coord's task records): non-text or unknown entries from
    another writer reached the implementation's `attach` (OpenTelemetry's propagator raised
    TypeError on `{"traceparent": 5}`, failing the traced work)."""
    rec = RecordingInstrumentation()
    previous = set_instrumentation(rec)
    try:
        for bad in ({"traceparent": 5}, {"traceparent": b"00-x"}, ["traceparent"], {"x": "y"}):
            with traced(bad):  # type: ignore[arg-type]
                pass
        assert rec.attached == []
        with traced({"traceparent": "00-t-s-01", "tracestate": 3, "other": "z"}):
            pass
        assert rec.attached == [{"traceparent": "00-t-s-01"}]
    finally:
        set_instrumentation(previous)
