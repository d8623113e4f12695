"""The stored form of LLM cache entries (``to_stored``/``from_stored``), without a server."""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.cache._stored import from_stored, to_stored
from deepagents_redis.core import Codec
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
