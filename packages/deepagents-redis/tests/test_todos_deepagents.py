"""End to end with deepagents: create_deep_agent + a scripted model + RedisTodoMiddleware.

Restart on another worker, an outside update seen at the next step, and a subagent that
updates its own item of the parent's plan. Standalone and cluster.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest
from deepagents import create_deep_agent
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
from deepagents_redis.todos import RedisTodoMiddleware, RedisTodoRepository
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

pytestmark = pytest.mark.integration

PLAN = [
    {"content": "research the topic", "status": "in_progress"},
    {"content": "write the draft", "status": "pending"},
    {"content": "review", "status": "pending"},
]


def middleware(target: Any) -> RedisTodoMiddleware:
    return RedisTodoMiddleware(client=target.client, settings=target.settings)


def run(graph: Any, thread: str, text: str = "go") -> dict[str, Any]:
    result: dict[str, Any] = graph.invoke(
        {"messages": [HumanMessage(text)]}, {"configurable": {"thread_id": thread}}
    )
    return result


def sync_notes(messages: Sequence[BaseMessage]) -> list[str]:
    return [
        str(m.content)
        for m in messages
        if isinstance(m, HumanMessage) and (m.id or "").startswith("todo-sync-")
    ]


def item_id_of(content_start: str, message: BaseMessage) -> str:
    match = re.search(rf"id=(\w+) \[\w+\] {content_start}", str(message.content))
    assert match is not None
    return match.group(1)


def test_restart_and_outside_update(redis_target: Any) -> None:
    repo = RedisTodoRepository(client=redis_target.client, settings=redis_target.settings)
    model1 = ScriptedChatModel(
        script=[tool_call("write_todos", {"todos": PLAN}, "w1"), AIMessage("paused")]
    )
    result = run(
        create_deep_agent(
            model=model1, middleware=[middleware(redis_target)], checkpointer=InMemorySaver()
        ),
        "d-1",
    )
    assert result["todos"] == PLAN
    plan = repo.get("d-1")
    assert plan.version == 1

    def outside_then_ls(msgs: Sequence[BaseMessage]) -> AIMessage:
        # While worker 2 is mid-run, a person completes the draft item.
        repo.update("d-1", plan.ids[1], status="completed", actor="human")
        return tool_call("ls", {"path": "/"}, "ls1")

    # Worker 2: a new process, no checkpoint; resumes the plan, then sees the outside update.
    model2 = ScriptedChatModel(script=[outside_then_ls, AIMessage("ok")])
    result = run(
        create_deep_agent(
            model=model2, middleware=[middleware(redis_target)], checkpointer=InMemorySaver()
        ),
        "d-1",
        "continue",
    )
    (resumed,) = sync_notes(model2.seen[0])
    assert "continues the shared plan 'd-1' (version 1)" in resumed
    (update,) = sync_notes(model2.seen[1])[-1:]
    assert "changed outside this run (version 1 -> 2)" in update
    assert '- "write the draft": pending -> completed' in update
    assert result["todos"][1] == {"content": "write the draft", "status": "completed"}


def test_subagent_updates_its_item(redis_target: Any) -> None:
    mw = middleware(redis_target)
    sub_model = ScriptedChatModel(
        script=[
            tool_call("read_todos", {}, "r1"),
            lambda msgs: tool_call(
                "update_todo",
                {"item_id": item_id_of("research", msgs[-1]), "status": "completed"},
                "u1",
            ),
            AIMessage("research done"),
        ]
    )
    worker = {
        "name": "researcher",
        "description": "Researches one item of the plan.",
        "system_prompt": "Do the research.",
        "model": sub_model,
        "tools": [],
        "middleware": [mw.subagent_middleware()],
    }
    model = ScriptedChatModel(
        script=[
            tool_call("write_todos", {"todos": PLAN}, "w1"),
            tool_call(
                "task", {"description": "research the topic", "subagent_type": "researcher"}, "t1"
            ),
            AIMessage("thanks"),
        ]
    )
    graph = create_deep_agent(
        model=model, middleware=[mw], subagents=[worker], checkpointer=InMemorySaver()
    )
    result = run(graph, "d-2")
    plan = mw.repository.get("d-2")
    assert plan.items[0].status == "completed"
    assert "Shared plan 'd-2' (version 1)" in str(sub_model.seen[1][-1].content)
    assert "## Shared plan" in str(sub_model.seen[0][0].content)
    change = mw.repository.history("d-2")[-1]
    assert change.op == "update"
    assert change.actor.startswith("researcher")
    # deepagents kept todos out of the subagent's state; the parent learns from Redis.
    (note,) = sync_notes(model.seen[2])
    assert '- "research the topic": in_progress -> completed' in note
    assert result["todos"][0]["status"] == "completed"


def test_replaces_a_todo_list_middleware_from_a_harness_profile(redis_target: Any) -> None:
    # deepagents' own stack may carry langchain's TodoListMiddleware (some harness profiles
    # add it); ours has its name, so it takes that slot instead of clashing.
    from deepagents.graph import _apply_custom_middleware
    from langchain.agents.middleware import TodoListMiddleware

    ours = middleware(redis_target)
    stack = _apply_custom_middleware([TodoListMiddleware()], [ours])
    assert stack == [ours]
