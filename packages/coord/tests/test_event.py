"""Event: any attributes a newer envelope adds survive encode -> decode (property-tested)."""

from __future__ import annotations

import string

import pytest
from deepagents_redis.coord import Event
from deepagents_redis.coord._event import decode_event
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
