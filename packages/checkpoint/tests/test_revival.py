"""Reviving stored values: `load` gives what LangGraph's own `loads_typed` gives (no server).

`load` revives chat messages with core's `fast_message` instead of their constructors when the
stored dump has the shape that makes validation a no-op (`_serde._message_hook`). These tests
hold it to LangGraph's serializer, object for object: the same types, field values (and their
types), fields-set and extras, or a refusal where LangGraph's revival fails too.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import ormsgpack
import pytest
from deepagents_redis.checkpoint._serde import _message_hook, default_serde, dump, load
from deepagents_redis.core import SerializationError
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.checkpoint.serde.jsonplus import (
    EXT_CONSTRUCTOR_KW_ARGS,
    EXT_PYDANTIC_V2,
    JsonPlusSerializer,
)
from pydantic import BaseModel

SERDE = default_serde()


def _typed(value: Any) -> Any:
    # Every object with its exact type, and models with everything pydantic keeps on them.
    if isinstance(value, BaseModel):
        return (
            type(value),
            _typed(value.__dict__),
            sorted(value.model_fields_set),
            _typed(value.__pydantic_extra__),
            value.__pydantic_private__,
        )
    if isinstance(value, dict):
        return (type(value), [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value), [_typed(v) for v in value])
    return (type(value), value)


def _outcome(fn: Any) -> Any:
    try:
        return _typed(fn())
    except Exception as exc:
        return ("raised", type(exc).__name__)


def _same_as_langgraph(payload: bytes) -> Any:
    """`load` with the fast hook and without it (LangGraph's `loads_typed`), compared."""
    import deepagents_redis.checkpoint._serde as serde_module

    frame = b"msgpack\n" + payload
    ours = _outcome(lambda: load(SERDE, frame, what="test", strict=True))
    real = serde_module._message_hook
    serde_module._message_hook = lambda serde: None  # type: ignore[assignment]
    try:
        theirs = _outcome(lambda: load(SERDE, frame, what="test", strict=True))
    finally:
        serde_module._message_hook = real
    assert ours == theirs
    return ours


def _messages() -> list[Any]:
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
        ToolMessage(
            "boom",
            tool_call_id="c2",
            status="error",
            # values LangGraph stores as extension types of their own, inside the message
            artifact={
                "when": datetime.datetime(2026, 12, 5, tzinfo=datetime.UTC),
                "u": uuid.uuid4(),
            },
        ),
        # off the fast shape: these take LangGraph's own revival
        AIMessage(
            "x",
            invalid_tool_calls=[{"name": "bad", "args": "{", "id": "c3", "error": "parse"}],
            usage_metadata={
                "input_tokens": 1,
                "output_tokens": 2,
                "total_tokens": 3,
                "input_token_details": {"cache_read": 1},
            },
        ),
        AIMessage("with an extra field", reasoning="hidden"),
        AIMessageChunk("a chunk"),
    ]


def test_a_history_revives_as_langgraph_revives_it() -> None:
    history = _messages()
    _same_as_langgraph(SERDE.dumps_typed(history)[1])
    assert load(SERDE, dump(SERDE, history), what="test", strict=True) == history


def test_the_fast_path_is_taken_for_the_default_serializer() -> None:
    assert _message_hook(SERDE) is not None
    assert _message_hook(SERDE) is _message_hook(SERDE)  # one hook per serializer
    # with LangGraph's compile-time allowlist too
    assert _message_hook(SERDE.with_msgpack_allowlist([("my.module", "Mine")])) is not None


def test_a_serializer_of_another_class_is_called_as_it_is() -> None:
    class Mine(JsonPlusSerializer):
        pass

    assert _message_hook(Mine()) is None


def _ext(module: Any, name: Any, kwargs: Any) -> bytes:
    inner = ormsgpack.packb(
        [module, name, kwargs, "model_validate_json"], option=ormsgpack.OPT_NON_STR_KEYS
    )
    return ormsgpack.packb([ormsgpack.Ext(EXT_PYDANTIC_V2, inner)])


_leaf = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=6)
_json = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "content": st.text(max_size=8)
        | st.lists(st.text(max_size=4) | st.dictionaries(st.text(max_size=4), _json), max_size=2)
        | _json,
        "type": st.sampled_from(["ai", "human", "system", "tool"]) | _leaf,
        "additional_kwargs": st.dictionaries(st.text(max_size=5) | st.just("tool_calls"), _json)
        | _leaf,
        "response_metadata": st.dictionaries(st.text(max_size=5), _json) | _leaf,
        "name": st.none() | st.text(max_size=4) | st.integers(0, 3),
        "id": st.none() | st.text(max_size=4) | st.integers(0, 3),
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=4), "args": st.dictionaries(st.text(max_size=3), _json)},
                optional={"id": st.none() | st.text(max_size=3), "type": st.just("tool_call")},
            ),
            max_size=2,
        )
        | _json,
        "invalid_tool_calls": st.just([]) | _json,
        "usage_metadata": st.none()
        | st.fixed_dictionaries(
            {k: st.integers(0, 9) for k in ("input_tokens", "output_tokens", "total_tokens")}
        )
        | _json,
        "tool_call_id": st.text(max_size=4) | st.integers(0, 3),
        "artifact": _json,
        "status": st.sampled_from(["success", "error", "nope"]),
        "extra": _json,
    },
)
_names = st.sampled_from(
    [
        ("langchain_core.messages.ai", "AIMessage"),
        ("langchain_core.messages.human", "HumanMessage"),
        ("langchain_core.messages.system", "SystemMessage"),
        ("langchain_core.messages.tool", "ToolMessage"),
        ("langchain_core.messages.ai", "AIMessageChunk"),
        ("langchain_core.messages.human", "NoSuchMessage"),
    ]
)


@settings(max_examples=500, deadline=None)
@given(name=_names, kwargs=_kwargs)
def test_stored_dumps_revive_as_langgraph_revives_them(name: Any, kwargs: Any) -> None:
    # Written straight into the frame: what a well-behaved saver stores, and what a hostile
    # writer could put there instead.
    _same_as_langgraph(_ext(*name, kwargs))


@pytest.mark.parametrize(
    "payload",
    [
        ormsgpack.packb([ormsgpack.Ext(EXT_PYDANTIC_V2, b"\xc1")]),  # not msgpack inside
        _ext(["not", "hashable"], "AIMessage", {"content": "x"}),
        _ext("langchain_core.messages.ai", "AIMessage", "not a mapping"),
        _ext("langchain_core.messages.ai", "AIMessage", {1: "non-str key"}),
    ],
)
def test_malformed_message_frames_go_where_langgraph_sends_them(payload: bytes) -> None:
    _same_as_langgraph(payload)


def test_a_type_outside_the_allowlist_inside_a_message_is_still_refused() -> None:
    # An object LangGraph would build by calling os.path.join(**{}), inside a message.
    blocked = ormsgpack.Ext(EXT_CONSTRUCTOR_KW_ARGS, ormsgpack.packb(["os.path", "join", {}]))
    inner = ormsgpack.packb(
        [
            "langchain_core.messages.tool",
            "ToolMessage",
            {"content": "x", "tool_call_id": "c", "artifact": blocked},
            "model_validate_json",
        ]
    )
    poisoned = ormsgpack.packb([ormsgpack.Ext(EXT_PYDANTIC_V2, inner)])
    with pytest.raises(SerializationError, match="not in the msgpack allowlist"):
        load(SERDE, b"msgpack\n" + poisoned, what="test", strict=True)


def test_the_fast_path_builds_the_messages_of_a_typical_history() -> None:
    # Not the constructors' route: the fast one (a history of the shapes a deep agent writes).
    calls: list[Any] = []
    import deepagents_redis.checkpoint._serde as serde_module

    real = serde_module.fast_message

    def counting(cls: Any, data: Any) -> Any:
        built = real(cls, data)
        calls.append(built is not None)
        return built

    history = _messages()[:6]
    try:
        serde_module.fast_message = counting  # type: ignore[assignment]
        assert load(SERDE, dump(SERDE, history), what="test", strict=True) == history
    finally:
        serde_module.fast_message = real
    assert calls == [True] * 6
