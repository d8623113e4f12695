"""A scripted deep agent delegates to a remote subagent; lifecycle events reach the log."""

from __future__ import annotations

from typing import Any

import pytest
from deepagents import create_deep_agent
from deepagents_redis.coord import EventBus, SubagentEventsMiddleware, TaskClient, remote_subagent
from deepagents_redis.core import RedisConnector
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
from langchain_core.messages import AIMessage

pytestmark = pytest.mark.integration


def _script() -> ScriptedChatModel:
    return ScriptedChatModel(
        script=[
            tool_call(
                "task",
                {"description": "find the answer", "subagent_type": "researcher"},
                "call-1",
            ),
            AIMessage(content="The researcher says 42."),
        ]
    )


def researcher(state: dict[str, Any]) -> dict[str, Any]:
    question = state["messages"][-1].content
    return {"messages": [*state["messages"], AIMessage(content=f"answer to {question!r}: 42")]}


def _agent(connector: RedisConnector, tasks: TaskClient) -> Any:
    return create_deep_agent(
        model=_script(),
        subagents=[
            remote_subagent(
                name="researcher", description="Finds answers.", client=tasks, timeout=30
            )
        ],
        middleware=[SubagentEventsMiddleware(connector=connector)],
    )


def _log_kinds(connector: RedisConnector) -> list[tuple[str, str | None]]:
    bus = EventBus(connector=connector)
    rows = connector.client().xrange(bus.keys.log)
    from deepagents_redis.coord._event import decode_event

    out = []
    for _eid, fields in rows:
        event = decode_event(bus.codec, fields[b"e"], key=bus.keys.log)
        out.append((event.type.removeprefix("dev.deepagents-redis."), event.agent))
    return out


def test_task_tool_runs_the_subagent_on_a_worker(
    connector: RedisConnector, tasks: TaskClient, worker_factory: Any
) -> None:
    with worker_factory({"researcher": researcher}):
        agent = _agent(connector, tasks)
        result = agent.invoke({"messages": [("user", "what is the answer?")]})
    tool_reply = next(m for m in result["messages"] if m.type == "tool")
    assert tool_reply.content == "answer to 'find the answer': 42"
    assert result["messages"][-1].content == "The researcher says 42."
    kinds = _log_kinds(connector)
    assert ("subagent.started", "researcher") in kinds
    assert ("subagent.completed", "researcher") in kinds
    assert ("task.completed", "researcher") in kinds  # the worker's own lifecycle


async def test_async_deep_agent_with_a_remote_subagent(
    connector: RedisConnector, tasks: TaskClient, worker_factory: Any
) -> None:
    with worker_factory({"researcher": researcher}):
        agent = _agent(connector, tasks)
        result = await agent.ainvoke({"messages": [("user", "what is the answer?")]})
    tool_reply = next(m for m in result["messages"] if m.type == "tool")
    assert tool_reply.content == "answer to 'find the answer': 42"
    assert ("subagent.completed", "researcher") in _log_kinds(connector)
