"""RedisAsyncSubAgentMiddleware in a scripted deep agent: the five tools, on worker processes."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence
from typing import Any

import pytest
from deepagents import create_deep_agent
from deepagents.middleware.async_subagents import AsyncSubAgentMiddleware
from deepagents_redis.coord import RedisAsyncSubAgentMiddleware, TaskClient
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call, tool_calls
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableLambda

pytestmark = pytest.mark.integration


def _research(state: dict[str, Any]) -> dict[str, Any]:
    topic = (
        state["messages"][-1]["content"]
        if isinstance(state["messages"][-1], dict)
        else state["messages"][-1].content
    )
    return {"messages": [*state["messages"], AIMessage(content=f"findings about {topic}")]}


async def _slow(state: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(30)
    return state


AGENTS = {"researcher": RunnableLambda(_research), "slow": RunnableLambda(_slow)}
SPECS = [
    {"name": "researcher", "description": "Researches a topic."},
    {"name": "slow", "description": "Takes its time."},
]


def _ids(messages: Sequence[BaseMessage]) -> list[str]:
    return re.findall(
        r"Launched async subagent\. task_id: ([0-9a-f]{32})",
        " ".join(str(m.content) for m in messages),
    )


def _wait_done(tasks: TaskClient, task_id: str) -> None:
    tasks.join(task_id, timeout=20)


def _script(tasks: TaskClient) -> ScriptedChatModel:
    def wait_then_check_slow(messages: Sequence[BaseMessage]) -> AIMessage:
        first, second = _ids(messages)
        tasks.join(first, timeout=20)  # A ends now; the next model call is told so
        return tool_call("check_async_task", {"task_id": second}, "c2")

    def check_and_cancel(messages: Sequence[BaseMessage]) -> AIMessage:
        first, second = _ids(messages)
        return tool_calls(
            ("check_async_task", {"task_id": first}, "c3"),
            ("cancel_async_task", {"task_id": second}, "c4"),
        )

    def follow_up(messages: Sequence[BaseMessage]) -> AIMessage:
        first, _ = _ids(messages)
        return tool_call("update_async_task", {"task_id": first, "message": "more on A"}, "c5")

    def listing(messages: Sequence[BaseMessage]) -> AIMessage:
        for _ in range(500):  # the follow-up run ends
            if not tasks.active("researcher"):
                break
            time.sleep(0.01)
        return tool_call("list_async_tasks", {}, "c6")

    return ScriptedChatModel(
        script=[
            tool_calls(
                (
                    "start_async_task",
                    {"description": "topic A", "subagent_type": "researcher"},
                    "c0",
                ),
                ("start_async_task", {"description": "topic B", "subagent_type": "slow"}, "c1"),
            ),
            wait_then_check_slow,
            check_and_cancel,
            follow_up,
            listing,
            AIMessage(content="all done"),
        ]
    )


def _tool_outputs(result: dict[str, Any]) -> dict[str, str]:
    return {m.tool_call_id: str(m.content) for m in result["messages"] if m.type == "tool"}


def _check(result: dict[str, Any]) -> None:
    outputs = _tool_outputs(result)
    assert json.loads(outputs["c2"])["status"] == "running"
    checked = json.loads(outputs["c3"])
    assert checked["status"] == "success"
    assert checked["result"] == "findings about topic A"
    assert outputs["c4"].startswith("Cancelled async subagent task: ")
    assert outputs["c5"].startswith("Updated async subagent. task_id: ")  # A had ended: new run
    assert outputs["c6"].startswith("2 tracked task(s):")
    tasks = result["async_tasks"]
    assert sorted(t["status"] for t in tasks.values()) == ["cancelled", "success"]
    first = next(t for t in tasks.values() if t["agent_name"] == "researcher")
    assert first["run_id"] != first["task_id"]  # the follow-up ran as a new run of the same task
    notes = [m for m in result["messages"] if "deepagents_notification" in m.additional_kwargs]
    # A's first run; the follow-up run may also end before a model call and be announced
    assert [n.additional_kwargs["deepagents_notification"]["status"] for n in notes] in (
        ["success"],
        ["success", "success"],
    )
    assert "<result>" in str(notes[0].content)
    assert "findings about topic A" in str(notes[0].content)


def test_the_five_tools_match_deepagents(tasks: TaskClient) -> None:
    ours = RedisAsyncSubAgentMiddleware(subagents=SPECS, client=tasks)
    theirs = AsyncSubAgentMiddleware(
        async_subagents=[
            {**s, "graph_id": s["name"], "url": "http://unused.invalid"} for s in SPECS
        ]
    )
    assert [t.name for t in ours.tools] == [t.name for t in theirs.tools]
    for mine, upstream in zip(ours.tools, theirs.tools, strict=True):
        assert mine.args_schema is upstream.args_schema
        if mine.name != "update_async_task":  # ours queues follow-ups (documented)
            assert mine.description == upstream.description
    assert ours.state_schema is theirs.state_schema


def test_deep_agent_runs_async_subagents_on_workers(tasks: TaskClient, worker_factory: Any) -> None:
    with worker_factory(AGENTS):
        agent = create_deep_agent(
            model=_script(tasks),
            middleware=[RedisAsyncSubAgentMiddleware(subagents=SPECS, client=tasks)],
        )
        result = agent.invoke({"messages": [("user", "research A and B")]})
    _check(result)
    assert result["messages"][-1].content == "all done"


async def test_async_deep_agent_runs_async_subagents_on_workers(
    tasks: TaskClient, worker_factory: Any
) -> None:
    with worker_factory(AGENTS):
        agent = create_deep_agent(
            model=_script(tasks),
            middleware=[RedisAsyncSubAgentMiddleware(subagents=SPECS, client=tasks)],
        )
        result = await agent.ainvoke({"messages": [("user", "research A and B")]})
    _check(result)


def test_unknown_subagent_type_is_a_tool_error(tasks: TaskClient) -> None:
    mw = RedisAsyncSubAgentMiddleware(subagents=SPECS, client=tasks)
    start = mw.tools[0]
    out = start.func(description="x", subagent_type="nope", runtime=None)  # type: ignore[misc]
    assert out == "Unknown async subagent type `nope`. Available types: `researcher`, `slow`"
