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
    out = []
    for _eid, fields in rows:
        event = bus._decode_entry(bus.keys.log, fields)
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


def _local_agent(connector: RedisConnector, *, progress: bool = True) -> Any:
    """A parent whose `task` runs a local subagent that calls `ls` once, then answers."""
    sub_model = ScriptedChatModel(
        script=[tool_call("ls", {"path": "/"}, "sub-1"), AIMessage(content="nothing here")]
    )
    return create_deep_agent(
        model=ScriptedChatModel(
            script=[
                tool_call("task", {"description": "look", "subagent_type": "looker"}, "call-1"),
                AIMessage(content="The looker found nothing."),
            ]
        ),
        subagents=[
            {
                "name": "looker",
                "description": "Looks around.",
                "system_prompt": "Look.",
                "model": sub_model,
            }
        ],
        middleware=[SubagentEventsMiddleware(connector=connector, progress=progress)],
    )


def _log_events(connector: RedisConnector) -> list[Any]:
    bus = EventBus(connector=connector)
    return [
        bus._decode_entry(bus.keys.log, fields)
        for _eid, fields in connector.client().xrange(bus.keys.log)
    ]


_SUBAGENT_STEPS = [
    ("subagent.started", None),
    ("subagent.progress", "model"),
    ("subagent.progress", "tool"),
    ("subagent.progress", "model"),
    ("subagent.completed", None),
]


def _steps(events: list[Any]) -> list[tuple[str, str | None]]:
    return [
        (e.type.removeprefix("dev.deepagents-redis."), (e.data or {}).get("step")) for e in events
    ]


def test_a_local_subagent_reports_its_model_and_tool_calls_as_progress(
    connector: RedisConnector,
) -> None:
    result = _local_agent(connector).invoke({"messages": [("user", "look around")]})
    assert result["messages"][-1].content == "The looker found nothing."
    events = _log_events(connector)
    # Only the subagent's calls: the parent's two model calls run outside the `task` call.
    assert _steps(events) == _SUBAGENT_STEPS
    assert {e.agent for e in events} == {"looker"}
    assert {e.subject for e in events} == {"call-1"}
    assert events[2].data == {"step": "tool", "name": "ls"}


async def test_an_async_local_subagent_reports_progress_too(connector: RedisConnector) -> None:
    result = await _local_agent(connector).ainvoke({"messages": [("user", "look around")]})
    assert result["messages"][-1].content == "The looker found nothing."
    assert _steps(_log_events(connector)) == _SUBAGENT_STEPS


def test_progress_off_publishes_only_the_lifecycle(connector: RedisConnector) -> None:
    _local_agent(connector, progress=False).invoke({"messages": [("user", "look around")]})
    assert _steps(_log_events(connector)) == [
        ("subagent.started", None),
        ("subagent.completed", None),
    ]
