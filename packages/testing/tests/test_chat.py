"""`deepagents_redis.testing.chat`: the scripted chat model every agent test and demo runs on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
from deepagents_redis.testing.chat import DONE, ScriptedChatModel, tool_call, tool_calls
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage


def test_steps_in_order_then_done() -> None:
    model = ScriptedChatModel(script=[AIMessage(content="one"), AIMessage(content="two")])
    assert [model.invoke("x").content for _ in range(3)] == ["one", "two", DONE]
    assert model.calls == [0, 1, 2]
    assert [m[-1].content for m in model.seen] == ["x", "x", "x"]


def test_a_step_sees_the_messages() -> None:
    def echo(messages: Sequence[BaseMessage]) -> AIMessage:
        return AIMessage(content=f"you said {messages[-1].content}")

    model = ScriptedChatModel(script=[echo])
    assert model.invoke([HumanMessage(content="hi")]).content == "you said hi"


def test_tool_calls_and_bind_tools() -> None:
    model = ScriptedChatModel(
        script=[
            tool_call("ls", {"path": "/"}, "c1", content="looking"),
            tool_calls(("read_file", {"file_path": "/a"}, "c2"), ("ls", {"path": "/b"}, "c3")),
        ]
    )
    assert model.bind_tools([]) is model
    first = model.invoke("x")
    assert first.content == "looking"
    assert [(c["name"], c["args"], c["id"]) for c in first.tool_calls] == [
        ("ls", {"path": "/"}, "c1")
    ]
    assert [c["id"] for c in model.invoke("x").tool_calls] == ["c2", "c3"]


def test_by_turn_answers_the_same_conversation_the_same_way() -> None:
    model = ScriptedChatModel(
        script=[AIMessage(content="first"), AIMessage(content="second")], by_turn=True
    )
    history: list[BaseMessage] = [HumanMessage(content="q")]
    assert model.invoke(history).content == "first"
    assert model.invoke(history).content == "first"  # no AI message yet: still turn 0
    history += [AIMessage(content="first"), HumanMessage(content="q2")]
    assert model.invoke(history).content == "second"
    history += [AIMessage(content="second"), HumanMessage(content="q3")]
    assert model.invoke(history).content == DONE
    assert model.calls == [0, 0, 1, 2]


def test_rewind_starts_over() -> None:
    model = ScriptedChatModel(script=[AIMessage(content="a")])
    model.invoke("x")
    model.rewind()
    assert model.seen == []
    assert model.invoke("x").content == "a"


def test_concurrent_calls_each_take_their_own_step() -> None:
    model = ScriptedChatModel(script=[AIMessage(content=str(i)) for i in range(40)])
    answers: list[str] = []
    lock = threading.Lock()

    def ask() -> None:
        for _ in range(10):
            reply = str(model.invoke("x").content)
            with lock:
                answers.append(reply)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(answers, key=int) == [str(i) for i in range(40)]


async def test_async_steps_and_blocking_sync_steps() -> None:
    loop_thread = threading.get_ident()
    ran_in: list[int] = []

    async def later(messages: Sequence[BaseMessage]) -> AIMessage:
        await asyncio.sleep(0)
        return AIMessage(content="async")

    def blocking(messages: Sequence[BaseMessage]) -> AIMessage:
        ran_in.append(threading.get_ident())
        return AIMessage(content="sync")

    model = ScriptedChatModel(script=[later, blocking, AIMessage(content="plain")])
    assert [(await model.ainvoke("x")).content for _ in range(4)] == [
        "async",
        "sync",
        "plain",
        DONE,
    ]
    assert len(ran_in) == 1
    assert ran_in[0] != loop_thread  # off the event loop


def test_an_async_step_needs_ainvoke() -> None:
    async def later(messages: Sequence[BaseMessage]) -> AIMessage:
        return AIMessage(content="async")

    with pytest.raises(TypeError, match="ainvoke"):
        ScriptedChatModel(script=[later]).invoke("x")


def test_a_step_must_give_a_message() -> None:
    with pytest.raises(TypeError, match="AIMessage"):
        ScriptedChatModel(script=[lambda messages: "text"]).invoke("x")


def test_scripts_are_part_of_the_cache_key() -> None:
    # LangChain's LLM cache keys on _get_llm_string: two scripts never share an entry.
    one = ScriptedChatModel(script=[AIMessage(content="a")])
    other = ScriptedChatModel(script=[AIMessage(content="b")])
    same = ScriptedChatModel(script=[AIMessage(content="a")])
    assert one._get_llm_string() != other._get_llm_string()
    assert one._get_llm_string() == same._get_llm_string()  # message ids left out
