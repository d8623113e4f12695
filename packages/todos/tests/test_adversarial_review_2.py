"""Adversarial review 2: run-derived text the repository refuses in a tag.

A thread id (or a tool call id) holding a lone surrogate, what an API's JSON ``"\\ud800"``
decodes to: the plan's keys encode it, but the middleware put it raw into the mutation's
actor (and op id), which the repository refuses, so every ``write_todos`` of the thread
answered the model an error about text it never wrote and the plan was never written.
Backfill and repair named such a thread (or a long one) raw in their op ids, and failed it.
"""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
from deepagents_redis.todos import (
    RedisTodoMiddleware,
    RedisTodoRepository,
    TodoBackfill,
    TodoReconciler,
)
from langchain.agents import create_agent
from langchain.agents.middleware import TodoListMiddleware
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt.tool_node import ToolRuntime

pytestmark = pytest.mark.integration

PLAN = [
    {"content": "research the topic", "status": "in_progress"},
    {"content": "write the draft", "status": "pending"},
]


def _middleware(target: Any) -> RedisTodoMiddleware:
    return RedisTodoMiddleware(
        client=target.client, async_client=target.async_client, settings=target.settings
    )


async def _invoke(graph: Any, thread: str, mode: str) -> dict[str, Any]:
    inputs = {"messages": [HumanMessage("go")]}
    config = {"configurable": {"thread_id": thread}}
    if mode == "async":
        result: dict[str, Any] = await graph.ainvoke(inputs, config)
    else:
        result = graph.invoke(inputs, config)
    return result


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_thread_whose_id_holds_a_lone_surrogate_writes_its_plan(
    redis_target: Any, mode: str
) -> None:
    mw = _middleware(redis_target)
    thread = f"thread-\ud800-{mode}"
    model = ScriptedChatModel(
        script=[tool_call("write_todos", {"todos": PLAN}, "w1"), AIMessage("done")]
    )
    graph = create_agent(model, tools=[], middleware=[mw], checkpointer=InMemorySaver())
    result = await _invoke(graph, thread, mode)
    (written,) = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert written.status == "success", written.content
    assert result["todos"] == PLAN
    plan = mw.repository.get(thread)
    assert (plan.version, plan.as_langchain()) == (1, PLAN)
    # The log names the thread, escaped.
    (change,) = mw.repository.history(thread)
    assert change.actor == f"agent:thread-\\ud800-{mode}"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_subagent_on_such_a_thread_updates_its_item(redis_target: Any, mode: str) -> None:
    mw = _middleware(redis_target)
    thread = f"sub-\udfff-{mode}"
    item = mw.repository.replace(thread, [{"content": "a", "status": "pending"}]).ids[0]
    model = ScriptedChatModel(
        script=[
            tool_call("update_todo", {"item_id": item, "status": "completed"}, "u1"),
            AIMessage("done"),
        ]
    )
    graph = create_agent(model, tools=[], middleware=[mw.subagent_middleware()])
    result = await _invoke(graph, thread, mode)
    (updated,) = [str(m.content) for m in result["messages"] if isinstance(m, ToolMessage)]
    assert updated.startswith(f"Updated {item}: [completed]"), updated
    assert mw.repository.get(thread).items[0].status == "completed"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_tool_call_id_holding_a_lone_surrogate_applies_once(
    redis_target: Any, mode: str
) -> None:
    mw = _middleware(redis_target)
    scope = f"call-id-{mode}"
    runtime = ToolRuntime(
        state={"messages": [], "todos": [], "todo_ids": [], "todos_version": 0},
        context=None,
        config={"configurable": {"thread_id": scope, "__pregel_task_id": "task-1"}},
        stream_writer=lambda _: None,
        tool_call_id="call-\ud83d",
        store=None,
    )
    for _ in range(2):  # the tools node re-ran after a crash: the same op id
        command = await mw.awrite(runtime, PLAN) if mode == "async" else mw.write(runtime, PLAN)
        (msg,) = command.update["messages"]  # type: ignore[index]
        assert msg.status == "success", msg.content
    assert mw.repository.get(scope).version == 1


# -- backfill and repair of such threads ---------------------------------------------------

HOSTILE_THREADS = ["long-" + "x" * 2_000, "lone-\ud800", "lone-\udfff-" + "y" * 300]


def _run_plain(saver: Any, thread: str) -> None:
    """A thread run under langchain's TodoListMiddleware (todos only in the checkpoint)."""
    model = ScriptedChatModel(
        script=[tool_call("write_todos", {"todos": PLAN}, "w"), AIMessage("ok")]
    )
    graph = create_agent(model, middleware=[TodoListMiddleware()], checkpointer=saver)
    graph.invoke({"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": thread}})


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_backfill_and_repair_write_threads_whose_ids_no_op_id_holds(
    redis_target: Any, mode: str
) -> None:
    # Their op ids carried the thread id raw: over MAX_TAG_CHARS, or a lone surrogate, so
    # every backfill listed them as failed and a repair could not restore them.
    repo = RedisTodoRepository(
        client=redis_target.client,
        async_client=redis_target.async_client,
        settings=redis_target.settings,
    )
    saver = InMemorySaver()
    threads = [f"{t}-{mode}" for t in HOSTILE_THREADS]
    for thread in threads:
        _run_plain(saver, thread)
    backfill = TodoBackfill(repo, saver)
    report = await backfill.arun() if mode == "async" else backfill.run()
    assert report.failed == []
    assert report.written == len(threads)
    for thread in threads:
        assert repo.get(thread).as_langchain() == PLAN
        (change,) = repo.history(thread)
        assert change.op_id.startswith("backfill:sha256-")

    # Redis loses the plans; the reconciler restores them.
    for thread in threads:
        redis_target.client.delete(repo.plan_key(thread), repo.log_key(thread))
    reconciler = TodoReconciler(repo, saver)
    repaired = (
        await reconciler.areconcile(repair=True)
        if mode == "async"
        else reconciler.reconcile(repair=True)
    )
    assert sorted(d.kind for d in repaired.drifts) == ["missing"] * len(threads)
    assert [d.error for d in repaired.drifts if d.error] == []
    assert repaired.repaired == len(threads)
    for thread in threads:
        assert repo.get(thread).as_langchain() == PLAN


def test_an_ordinary_thread_id_is_named_as_it_is() -> None:
    from deepagents_redis.todos._reconcile import _op_id

    assert _op_id("backfill", "thread-1", PLAN, 0).startswith("backfill:thread-1:0:")
