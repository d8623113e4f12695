"""Event: any attributes a newer envelope adds survive encode -> decode (property-tested)."""

from __future__ import annotations

import string

import pytest
from deepagents_redis.coord import Event
from deepagents_redis.coord._event import decode_event, envelope
from deepagents_redis.core import Codec, SerializationError
from hypothesis import given
from hypothesis import strategies as st

CODEC = Codec()
_NAMES = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=20).filter(
    lambda n: n not in Event.model_fields
)
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**62), 2**62), st.text(max_size=50))


@given(
    extra=st.dictionaries(_NAMES, _VALUES, max_size=5),
    data=st.dictionaries(st.text(max_size=10), _VALUES, max_size=5),
)
def test_round_trip_keeps_every_attribute(
    extra: dict[str, object], data: dict[str, object]
) -> None:
    event = Event.model_validate({"source": "s", "type": "t", "data": data, **extra})
    back = decode_event(CODEC, event.encode(CODEC, key="k"), key="k")
    assert back.model_dump(exclude_none=True) == event.model_dump(exclude_none=True)
    # an attribute whose value is None is not written (CloudEvents: absent), others are kept
    assert back.model_extra == {k: v for k, v in extra.items() if v is not None}


def test_an_event_read_from_another_stream_is_refused() -> None:
    raw = Event(source="s", type="t").encode(CODEC, key="stream-a")
    with pytest.raises(SerializationError):
        decode_event(CODEC, raw, key="stream-b")


@pytest.mark.parametrize("raw", [b"", b"\x00" * 10, b"not msgpack at all"])
def test_garbage_is_a_serialization_error(raw: bytes) -> None:
    with pytest.raises(SerializationError):
        decode_event(CODEC, raw, key="k")


_PLAIN_VALUES = st.one_of(
    st.booleans(), st.integers(-(2**62), 2**62), st.floats(allow_nan=False), st.text(max_size=50)
)


@given(
    data=st.one_of(st.none(), st.dictionaries(st.text(max_size=10), _PLAIN_VALUES, max_size=5)),
    agent=st.one_of(st.none(), st.text(max_size=10)),
    trace=st.sampled_from(
        [{}, {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}, {"tracestate": "x=1"}]
    ),
)
def test_envelope_is_the_models_dump(
    data: dict[str, object] | None, agent: str | None, trace: dict[str, str]
) -> None:
    # The worker's fast path must write exactly what `Event(...).encode` writes.
    fields = envelope(
        source="dar://ns/w", event_type="t.x", subject="task1", agent=agent, data=data, trace=trace
    )
    assert fields is not None
    event = Event(
        source="dar://ns/w",
        type="t.x",
        subject="task1",
        taskid="task1",
        agent=agent,
        data=data or None,
        traceparent=trace.get("traceparent"),
        tracestate=trace.get("tracestate"),
        id=fields["id"],
        time=fields["time"],
    )
    dumped = event.model_dump(mode="python", exclude_none=True)
    assert list(fields.items()) == list(dumped.items())  # same attributes, same order
    back = decode_event(CODEC, CODEC.encode(fields, key="k"), key="k")
    assert back == event


@pytest.mark.parametrize(
    "value", [None, [1], {"a": 1}, b"raw", Event(source="s", type="t"), type("S", (str,), {})("x")]
)
def test_envelope_leaves_anything_but_flat_scalars_to_the_model(value: object) -> None:
    fields = envelope(
        source="s", event_type="t", subject="x", agent="a", data={"v": value}, trace={}
    )
    assert fields is None


def test_event_ids_are_unique_across_threads_and_forks() -> None:
    import multiprocessing
    import re
    import threading

    from deepagents_redis.coord._event import new_event_id

    seen: list[list[str]] = [[] for _ in range(4)]

    def draw(out: list[str]) -> None:
        out.extend(new_event_id() for _ in range(5_000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for out in seen for i in out]
    assert len(set(ids)) == len(ids) == 20_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    # A forked child draws its own prefix: its ids never repeat the parent's next ones.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        child = pool.apply(new_event_id)
    parent = new_event_id()
    assert child[:16] != parent[:16]
    assert Event(source="dar://x/y", type="t").id[:16] == parent[:16]
