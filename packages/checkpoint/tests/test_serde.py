"""`canonical`: the text `list(filter=...)` matches metadata by: one per Python-equal value."""

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


def _plain(value: Any) -> Any:
    """The reference normal form: numbers as the int they equal, tuples as lists."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _reference(value: Any) -> str | None:
    value = _plain(value)
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


def _twin(value: Any, rnd: Any) -> Any:
    """A value Python finds equal to `value`, of other types where it can be."""
    if isinstance(value, bool):
        return rnd.choice([value, int(value), float(value)])
    if isinstance(value, int) and abs(value) < 2**53:
        return rnd.choice([value, float(value)] + ([bool(value)] if value in (0, 1) else []))
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return rnd.choice([value, int(value)])
    if isinstance(value, dict):
        return {k: _twin(v, rnd) for k, v in value.items()}
    if isinstance(value, list):
        return [_twin(v, rnd) for v in value]
    return value


@given(_VALUES, st.randoms(use_true_random=False))
def test_values_equal_in_python_have_one_text(value: Any, rnd: Any) -> None:
    # InMemorySaver filters with ==: a text per value that differs from an equal value's
    # made the server drop a checkpoint Python would keep ({"flag": True} vs a stored 1).
    twin = _twin(value, rnd)
    if twin == value:  # nan is not equal to itself, and has no text anyway
        assert canonical(twin) == canonical(value)


class _Str(str):
    pass


class _Int(int):
    def __repr__(self) -> str:
        return "not json"


def test_subclasses_take_the_encoder_path() -> None:
    assert canonical(_Str("a\u2028\x00")) == _reference(_Str("a\u2028\x00"))
    assert canonical(_Int(5)) == _reference(_Int(5)) == "5"
    assert canonical(True) == canonical(1) == canonical(1.0) == "1"
    assert canonical(False) == canonical(0.0) == "0"
    assert canonical({"k": [True, 2.0]}) == canonical({"k": (1, 2)}) == '{"k":[1,2]}'
    assert canonical({1: "a"}) is None
    assert canonical(None) == "null"
    assert canonical(1.0) == "1"
    assert canonical(float("nan")) is None
    assert canonical(object()) is None
