"""`canonical`: the text `list(filter=...)` matches metadata by, as json.dumps writes it."""

from __future__ import annotations

import json
import math
from typing import Any

from deepagents_redis.checkpoint._serde import canonical
from hypothesis import given
from hypothesis import strategies as st

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF)),
    st.floats(),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def _reference(value: Any) -> str | None:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError):
        return None


@given(_VALUES)
def test_canonical_is_json_dumps(value: Any) -> None:
    # The exact-type fast paths (str, int, None, bool) write what the encoder writes.
    assert canonical(value) == _reference(value)


class _Str(str):
    pass


class _Int(int):
    def __repr__(self) -> str:
        return "not json"


def test_subclasses_take_the_encoder_path() -> None:
    assert canonical(_Str("a\u2028\x00")) == _reference(_Str("a\u2028\x00"))
    assert canonical(_Int(5)) == _reference(_Int(5)) == "5"
    assert canonical(True) == "true"
    assert canonical(None) == "null"
    assert canonical(1.0) == "1"
    assert canonical(float("nan")) is None
    assert canonical(object()) is None
