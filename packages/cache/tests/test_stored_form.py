"""The stored form of LLM cache entries (``to_stored``/``from_stored``), without a server."""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.cache._stored import from_stored, to_stored
from deepagents_redis.core import Codec
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation


def _messages() -> list[AIMessage]:
    return [
        AIMessage(content="plain answer"),
        AIMessage(content=""),
        AIMessage(
            content=[{"type": "text", "text": "calling a tool"}],
            tool_calls=[
                {"name": "write_todos", "args": {"todos": [{"content": "x"}]}, "id": "call_1"},
                {"name": "ls", "args": {}, "id": None},
            ],
            invalid_tool_calls=[
                {"name": "bad", "args": "{not json", "id": "call_3", "error": "parse"}
            ],
            usage_metadata={
                "input_tokens": 10,
                "output_tokens": 5,
                "total_tokens": 15,
                "input_token_details": {"cache_read": 3},
            },
            response_metadata={"model_name": "fake", "finish_reason": "tool_calls"},
            additional_kwargs={"refusal": None, "nested": {"a": [1, 2.5, True]}},
            id="run-123",
            name="assistant",
        ),
        # OpenAI-style raw tool calls, parsed into tool_calls by AIMessage's own validator.
        AIMessage(
            content="",
            additional_kwargs={
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": '{"path": "/a"}'},
                    }
                ]
            },
        ),
        # Extra fields are allowed on messages and must survive too.
        AIMessage(content="with extra", reasoning="hidden", example=False),
    ]


@pytest.mark.parametrize("message", _messages())
def test_chat_generation_round_trips_through_the_codec(message: AIMessage) -> None:
    gen = ChatGeneration(message=message, generation_info={"finish_reason": "stop"})
    codec = Codec()
    stored = codec.decode(codec.encode(to_stored([gen]), key="k"), key="k")
    [back] = from_stored(stored)
    assert back == gen
    assert type(back) is ChatGeneration
    assert type(back.message) is AIMessage
    assert back.message.model_dump() == message.model_dump()
    assert back.text == gen.text


@pytest.mark.parametrize("message", _messages())
def test_fields_at_their_default_are_not_stored(message: AIMessage) -> None:
    [item] = to_stored([ChatGeneration(message=message)])["g"]
    data = item["m"]
    assert data["type"] == "ai"
    full = message.model_dump()
    for name, value in full.items():
        if name == "type":
            continue
        field = AIMessage.model_fields.get(name)
        if (
            field is not None
            and not field.is_required()
            and value == field.get_default(call_default_factory=True)
        ):
            assert name not in data
        else:
            assert data[name] == value


@pytest.mark.parametrize("message", _messages())
def test_entries_holding_the_full_dump_still_read(message: AIMessage) -> None:
    # The form written before defaults were left out.
    gen = ChatGeneration(message=message)
    [back] = from_stored({"f": "g1", "g": [{"m": message.model_dump(), "i": None}]})
    assert back == gen


def test_plain_generation_round_trips() -> None:
    gen = Generation(text="x", generation_info={"a": 1})
    assert from_stored(to_stored([gen])) == [gen]


@pytest.mark.parametrize(
    "message",
    [
        {"type": "ai"},  # no content
        {"type": "ai", "content": 5},
        {"type": "ai", "content": "x", "tool_calls": "nope"},
        {"type": "ai", "content": "x", "tool_calls": [{"name": 1, "args": {}, "id": None}]},
        {"type": "ai", "content": "x", "usage_metadata": {"input_tokens": "many"}},
        {"type": "ai", "content": "x", "response_metadata": []},
    ],
)
def test_malformed_lean_messages_are_refused(message: dict[str, Any]) -> None:
    # Whatever the exception (the cache turns every one into a counted miss), nothing is
    # built from a malformed message. ValidationError is a ValueError.
    with pytest.raises((TypeError, ValueError, AttributeError)):
        from_stored({"f": "g1", "g": [{"m": message, "i": None}]})


@pytest.mark.parametrize("message", [{"content": "x"}, {"type": "human", "content": "x"}])
def test_only_ai_messages_are_revived(message: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        from_stored({"f": "g1", "g": [{"m": message, "i": None}]})


# -- differential: the revival against the one it replaced ---------------------------------
# `from_stored` builds a message with `AIMessage(**data)` (one validation pass) where it used
# `AIMessage.model_validate(data)`; hostile or odd stored data must get the same answer from
# both: the same generations, or a refusal from each.

_json_leaf = st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=8)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_tool_call = st.fixed_dictionaries(
    {
        "name": st.text(max_size=6) | _json_leaf,
        "args": st.dictionaries(st.text(max_size=4), _json, max_size=2) | _json,
    },
    optional={
        "id": st.none() | st.text(max_size=6),
        "type": st.just("tool_call") | st.text(max_size=6),
    },
)
_fields = {
    "content": st.text(max_size=12)
    | st.lists(
        st.text(max_size=6) | st.dictionaries(st.text(max_size=5), _json, max_size=3), max_size=3
    )
    | _json,
    "tool_calls": st.lists(_tool_call, max_size=2) | _json,
    "invalid_tool_calls": st.lists(
        st.dictionaries(st.text(max_size=5), _json, max_size=4), max_size=2
    )
    | _json,
    "usage_metadata": st.fixed_dictionaries(
        {
            "input_tokens": st.integers(0, 99) | _json_leaf,
            "output_tokens": st.integers(0, 99),
            "total_tokens": st.integers(0, 99),
        }
    )
    | _json,
    "additional_kwargs": st.dictionaries(st.text(max_size=6), _json, max_size=3) | _json,
    "response_metadata": st.dictionaries(st.text(max_size=6), _json, max_size=3) | _json,
    "id": st.none() | st.text(max_size=6) | _json_leaf,
    "name": st.none() | st.text(max_size=6) | _json_leaf,
    "example": st.booleans() | _json_leaf,
    "content_blocks": st.lists(st.dictionaries(st.text(max_size=5), _json, max_size=3), max_size=2),
    "lc": _json_leaf,
    "type": st.just("ai"),
}
_message_dicts = st.fixed_dictionaries(
    {"type": st.just("ai")}, optional={k: v for k, v in _fields.items() if k != "type"}
) | st.dictionaries(st.sampled_from(sorted(_fields)) | st.text(max_size=6), _json, max_size=4).map(
    lambda d: {**d, "type": "ai"}
)


def _revived_before(stored: dict[str, Any]) -> list[Generation]:
    # The revival of the fast form as it was: model_validate.
    out: list[Generation] = []
    for item in stored["g"]:
        message = AIMessage.model_validate(item["m"])
        out.append(ChatGeneration(message=message, generation_info=item.get("i")))
    return out


def _typed(value: Any) -> Any:
    # A value with the exact type of everything inside it (True == 1 == 1.0 otherwise).
    if isinstance(value, dict):
        return (type(value), [(k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return (type(value), [_typed(v) for v in value])
    if isinstance(value, AIMessage):
        return _internals(value)
    return (type(value), value)


def _internals(obj: Any) -> Any:
    # Everything pydantic keeps on a model: its fields (order and types), fields-set, extras.
    return (
        type(obj),
        _typed(obj.__dict__),
        sorted(obj.model_fields_set),
        _typed(obj.__pydantic_extra__),
        obj.__pydantic_private__,
    )


def _outcome(fn: Any, stored: dict[str, Any]) -> Any:
    try:
        return [(g, g.message.model_dump(), g.text, _internals(g)) for g in fn(stored)]
    except Exception:
        return "refused"


@settings(max_examples=400, deadline=None)
@given(
    message=_message_dicts,
    info=st.none() | st.dictionaries(st.text(max_size=4), _json, max_size=2) | _json,
)
def test_revival_matches_model_validate(message: dict[str, Any], info: Any) -> None:
    stored = {"f": "g1", "g": [{"m": message, "i": info}]}
    assert _outcome(from_stored, stored) == _outcome(_revived_before, stored)


@pytest.mark.parametrize("message", _messages())
def test_revival_matches_model_validate_on_real_messages(message: AIMessage) -> None:
    stored = to_stored([ChatGeneration(message=message, generation_info={"finish_reason": "stop"})])
    assert _outcome(from_stored, stored) == _outcome(_revived_before, stored)
    assert _outcome(from_stored, stored) != "refused"


# -- the exact-shape fast path (`_fast_generation`) against the constructors ----------------
# Messages of the shape the fast path takes, and near misses of it (one value of the wrong
# type, an extra key, token details, raw tool calls): the same objects either way, down to
# each field's type, the order of keys and pydantic's fields-set.

_str_or_none = st.none() | st.text(max_size=6)
_near_call = st.fixed_dictionaries(
    {"name": st.text(max_size=6), "args": st.dictionaries(st.text(max_size=4), _json, max_size=2)},
    optional={
        "id": _str_or_none | st.integers(0, 3),
        "type": st.just("tool_call") | st.just("function"),
        "extras": _json_leaf,
    },
)
_near_usage = st.fixed_dictionaries(
    {
        "input_tokens": st.integers(0, 2**40) | st.booleans() | st.floats(0, 9),
        "output_tokens": st.integers(0, 99),
        "total_tokens": st.integers(0, 99),
    },
    optional={"input_token_details": st.dictionaries(st.just("cache_read"), st.integers(0, 9))},
)
_near_fields = {
    "content": st.text(max_size=12) | st.lists(st.text(max_size=4), max_size=2),
    "tool_calls": st.lists(_near_call, max_size=3),
    "invalid_tool_calls": st.just([])
    | st.lists(st.fixed_dictionaries({"name": st.text()}), max_size=1),
    "usage_metadata": st.none() | _near_usage,
    "additional_kwargs": st.dictionaries(
        st.text(max_size=6) | st.just("tool_calls"), _json, max_size=3
    ),
    "response_metadata": st.dictionaries(st.text(max_size=6), _json, max_size=3),
    "id": _str_or_none,
    "name": _str_or_none,
    "example": st.booleans(),
}
_near_messages = st.fixed_dictionaries(
    {"type": st.just("ai"), "content": _near_fields["content"]},
    optional={k: v for k, v in _near_fields.items() if k != "content"},
)


@settings(max_examples=600, deadline=None)
@given(
    message=_near_messages,
    info=st.none() | st.dictionaries(st.text(max_size=4), _json, max_size=2) | st.integers(),
)
def test_fast_path_builds_what_the_constructors_build(message: dict[str, Any], info: Any) -> None:
    stored = {"f": "g1", "g": [{"m": message, "i": info}]}
    ours = _outcome(from_stored, stored)
    assert ours == _outcome(_revived_before, stored)

    # Also against the constructor route `from_stored` takes off the fast path.
    def constructors(stored: dict[str, Any]) -> list[Generation]:
        item = stored["g"][0]
        return [ChatGeneration(message=AIMessage(**item["m"]), generation_info=item["i"])]

    assert ours == _outcome(constructors, stored)


def test_fast_path_is_taken_for_a_typical_answer() -> None:
    from deepagents_redis.cache._stored import _fast_generation

    message = AIMessage(
        content="the answer",
        tool_calls=[{"name": "read_file", "args": {"path": "/a"}, "id": "call_1"}],
        usage_metadata={"input_tokens": 5, "output_tokens": 7, "total_tokens": 12},
        response_metadata={"model_name": "m", "finish_reason": "tool_calls"},
        id="run-1",
    )
    stored = to_stored([ChatGeneration(message=message, generation_info=None)])
    item = stored["g"][0]
    fast = _fast_generation(dict(item["m"]), item["i"])
    # On the langchain-core the path was proven on (the lock file's), it is on.
    assert fast is not None
    built = ChatGeneration(message=AIMessage(**item["m"]), generation_info=None)
    assert _internals(fast) == _internals(built)
    assert fast == ChatGeneration(message=message)
    # A copy behaves like a constructed one (pydantic's own operations work on it).
    assert fast.model_copy(deep=True) == fast
    assert fast.message.model_dump() == message.model_dump()
    # Near misses take the constructors.
    for change in (
        {"content": [1]},
        {"usage_metadata": {**item["m"]["usage_metadata"], "input_token_details": {}}},
        {"additional_kwargs": {"tool_calls": []}},
        {"id": 7},
        {"reasoning": "extra field"},
    ):
        assert _fast_generation({**item["m"], **change}, None) is None


def test_fast_path_switches_off_when_the_models_change(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepagents_redis.cache import _stored

    assert _stored._models_as_verified()
    monkeypatch.setitem(AIMessage.model_config, "extra", "forbid")
    assert not _stored._models_as_verified()
