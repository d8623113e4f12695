"""`fast_message` against the message constructors it stands in for (no server)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from deepagents_redis.core._messages import fast_message, messages_as_verified
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

CLASSES = (AIMessage, HumanMessage, SystemMessage, ToolMessage)

_leaf = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=6)
_json = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_str_or_none = st.none() | st.text(max_size=6)
_call = st.fixed_dictionaries(
    {"name": st.text(max_size=6) | _leaf, "args": st.dictionaries(st.text(max_size=4), _json)},
    optional={
        "id": _str_or_none | st.integers(0, 3),
        "type": st.just("tool_call") | st.just("function"),
        "extras": _leaf,
    },
)
_usage = st.fixed_dictionaries(
    {
        "input_tokens": st.integers(0, 2**40) | st.booleans() | st.floats(0, 9),
        "output_tokens": st.integers(0, 99),
        "total_tokens": st.integers(0, 99),
    },
    optional={"input_token_details": st.dictionaries(st.just("cache_read"), st.integers(0, 9))},
)
# Each field within the shape the fast path takes, and near misses of it.
_FIELDS: dict[str, Any] = {
    "content": st.text(max_size=12)
    | st.lists(
        st.text(max_size=4) | st.dictionaries(st.text(max_size=5), _json, max_size=3), max_size=3
    )
    | st.lists(_leaf, max_size=2)
    | st.integers(),
    "additional_kwargs": st.dictionaries(
        st.text(max_size=6) | st.just("tool_calls"), _json, max_size=3
    )
    | _leaf,
    "response_metadata": st.dictionaries(st.text(max_size=6), _json, max_size=3) | _leaf,
    "name": _str_or_none | st.integers(0, 3),
    "id": _str_or_none | st.integers(0, 3),
    "tool_calls": st.lists(_call, max_size=3) | _leaf,
    "invalid_tool_calls": st.just([])
    | st.lists(st.fixed_dictionaries({"name": st.text(max_size=3)}), max_size=1),
    "usage_metadata": st.none() | _usage,
    "tool_call_id": st.text(max_size=6) | st.integers(0, 3) | st.uuids(),
    "artifact": _json,
    "status": st.sampled_from(["success", "error", "other"]) | _leaf,
    "example": st.booleans(),
}


def _dicts(cls: type[Any]) -> Any:
    own = set(cls.model_fields) | {"example"}
    optional = {k: v for k, v in _FIELDS.items() if k in own and k != "content"}
    kind = cls.model_fields["type"].default
    optional["type"] = st.just(kind) | st.sampled_from(["ai", "human", "tool"]) | _leaf
    required = {"content": _FIELDS["content"]}
    if cls is ToolMessage:
        required["tool_call_id"] = optional.pop("tool_call_id")
    return st.fixed_dictionaries(required, optional=optional)


def _typed(value: Any) -> Any:
    # A value with the exact type of everything inside it (True == 1 == 1.0 otherwise).
    if isinstance(value, dict):
        return (type(value), [(k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return (type(value), [_typed(v) for v in value])
    return (type(value), value)


def _internals(message: Any) -> Any:
    # Everything pydantic keeps on a model: its fields (order and types), fields-set, extras.
    return (
        type(message),
        _typed(message.__dict__),
        sorted(message.model_fields_set),
        _typed(message.__pydantic_extra__),
        message.__pydantic_private__,
    )


def _check(cls: type[Any], data: dict[str, Any]) -> Any:
    fast = fast_message(cls, copy.deepcopy(data))
    if fast is None:
        return None
    built = cls(**copy.deepcopy(data))
    assert _internals(fast) == _internals(built)
    assert fast == built
    assert fast.model_dump() == built.model_dump()
    return fast


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_builds_what_the_constructor_builds(cls: type[Any], data: st.DataObject) -> None:
    _check(cls, data.draw(_dicts(cls)))


def _typical() -> list[Any]:
    return [
        HumanMessage("look around", id="h1"),
        SystemMessage("you are a deep agent"),
        AIMessage(
            "",
            tool_calls=[{"name": "ls", "args": {"path": "/"}, "id": "c1"}],
            usage_metadata={"input_tokens": 5, "output_tokens": 7, "total_tokens": 12},
            response_metadata={"model_name": "m", "finish_reason": "tool_calls"},
            id="run-1",
        ),
        AIMessage([{"type": "text", "text": "thinking"}, "and text"], name="assistant"),
        ToolMessage("['/a.txt']", tool_call_id="c1", name="ls", id="t1"),
        ToolMessage("boom", tool_call_id="c2", status="error", artifact={"trace": [1, 2]}),
    ]


@pytest.mark.parametrize("message", _typical(), ids=lambda m: type(m).__name__)
def test_the_fast_path_is_taken_for_typical_messages(message: Any) -> None:
    # On the langchain-core the path was proven on (the lock file's) it is on: a full dump
    # (what LangGraph's serializer stores) and a lean one (defaults left out, the cache's).
    for dump in (message.model_dump(), message.model_dump(exclude_defaults=True)):
        dump.setdefault("content", message.content)
        fast = _check(type(message), dump)
        assert fast is not None
        assert fast == message
        # A copy behaves like a constructed one (pydantic's own operations work on it).
        assert fast.model_copy(deep=True) == fast


@pytest.mark.parametrize(
    ("cls", "change"),
    [
        (AIMessage, {"content": 5}),
        (AIMessage, {"additional_kwargs": {"tool_calls": []}}),
        (AIMessage, {"usage_metadata": {"input_tokens": 1}}),
        (AIMessage, {"invalid_tool_calls": [{"name": "x"}]}),
        (AIMessage, {"reasoning": "an extra field"}),
        (AIMessage, {"type": "human"}),
        (HumanMessage, {"id": 7}),
        (HumanMessage, {"content": [1]}),
        (ToolMessage, {"tool_call_id": 3}),
        (ToolMessage, {"status": "other"}),
        (type("Custom", (HumanMessage,), {}), {}),
    ],
)
def test_near_misses_take_the_constructor(cls: type[Any], change: dict[str, Any]) -> None:
    data = {"content": "x", **({"tool_call_id": "c"} if issubclass(cls, ToolMessage) else {})}
    assert fast_message(cls, {**data, **change}) is None


def test_switches_off_when_the_models_change(monkeypatch: pytest.MonkeyPatch) -> None:
    assert messages_as_verified()
    monkeypatch.setitem(ToolMessage.model_config, "extra", "forbid")
    assert not messages_as_verified()


def test_model_shape_names_what_validation_depends_on() -> None:
    from deepagents_redis.core import model_shape
    from pydantic import BaseModel, ConfigDict, field_validator

    class Plain(BaseModel):
        model_config = ConfigDict(extra="forbid")
        b: int
        a: str = ""

        @field_validator("a")
        @classmethod
        def strip(cls, value: str) -> str:
            return value.strip()

    assert model_shape(Plain) == (("b", "a"), (), ("strip",), (), (), (), "forbid")
