"""RedisAsyncSubAgentMiddleware in a scripted deep agent: the five tools, on worker processes."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

import pytest
from deepagents import create_deep_agent
from deepagents.middleware.async_subagents import (
    _ASYNC_FORK_TASK_PREAMBLE,
    AsyncSubAgentMiddleware,
    _start_task_messages,
)
from deepagents_redis.coord import RedisAsyncSubAgentMiddleware, TaskClient
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call, tool_calls
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

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
        # B runs for 30 s once a worker has claimed it; A ending first does not mean B's
        # claim happened yet (under load its reader can lag): wait for it to be running.
        for _ in range(2000):
            if tasks.get(second).status == "running":
                break
            time.sleep(0.01)
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
        assert mine.description == upstream.description
    assert ours.state_schema is theirs.state_schema


@pytest.mark.filterwarnings("ignore::langchain_core._api.beta_decorator.LangChainBetaWarning")
def test_strategies_and_fork_mode_read_as_deepagents_writes_them(tasks: TaskClient) -> None:
    specs: list[Any] = [
        {"name": "a", "description": "A.", "update_strategy": "enqueue"},
        {"name": "b", "description": "B.", "mode": "fork"},
        {"name": "c", "description": "C.", "update_strategy": "interrupt", "mode": "isolated"},
    ]
    ours = RedisAsyncSubAgentMiddleware(subagents=specs, client=tasks, system_prompt="Use them.")
    theirs = AsyncSubAgentMiddleware(
        async_subagents=[{**s, "graph_id": s["name"], "url": "http://x.invalid"} for s in specs],
        system_prompt="Use them.",
    )
    for mine, upstream in zip(ours.tools, theirs.tools, strict=True):
        assert mine.description == upstream.description
    assert "for `a`, follow-ups queue behind" in ours.tools[2].description
    assert ours.system_prompt == theirs.system_prompt
    with pytest.raises(ValueError, match="invalid update_strategy 'later'"):
        RedisAsyncSubAgentMiddleware(
            subagents=[{"name": "x", "description": "x", "update_strategy": "later"}],  # type: ignore[typeddict-item]
            client=tasks,
        )
    with pytest.raises(ValueError, match="invalid mode 'shared'"):
        RedisAsyncSubAgentMiddleware(
            subagents=[{"name": "x", "description": "x", "mode": "shared"}],  # type: ignore[typeddict-item]
            client=tasks,
        )


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


# ---------------------------------------------------------------- follow-ups and fork


class _State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _last_user(state: _State) -> str:
    return str(next(m for m in reversed(state["messages"]) if isinstance(m, HumanMessage)).content)


def _note(state: _State) -> dict[str, Any]:
    return {"messages": [AIMessage(content=f"noted: {_last_user(state)}")]}


async def _answer(state: _State) -> dict[str, Any]:
    asked = _last_user(state)
    await asyncio.sleep({"slow": 60.0, "medium": 0.8}.get(asked.split()[0], 0.0))
    return {"messages": [AIMessage(content=f"answer to {asked}")]}


def _thinker() -> Any:
    graph = StateGraph(_State)
    graph.add_node("note", _note)
    graph.add_node("answer", _answer)
    graph.add_edge(START, "note")
    graph.add_edge("note", "answer")
    graph.add_edge("answer", END)
    return graph.compile()


def _started(tasks: TaskClient, task_id: str) -> None:
    for _ in range(1_000):
        if any(e.type.endswith("task.started") for _, e in tasks.events(task_id)):
            time.sleep(0.3)  # the note step is done; the answer is under way
            return
        time.sleep(0.01)
    raise AssertionError("the task never started")


def _follow_up_script(tasks: TaskClient, question: str) -> ScriptedChatModel:
    def update(messages: Sequence[BaseMessage]) -> AIMessage:
        (task_id,) = _ids(messages)
        _started(tasks, task_id)
        return tool_call("update_async_task", {"task_id": task_id, "message": "quick one"}, "u1")

    def wait(messages: Sequence[BaseMessage]) -> AIMessage:
        (task_id,) = _ids(messages)
        tasks.join(task_id, timeout=30)  # the next model call is told it ended
        return tool_call("write_todos", {"todos": []}, "w1")

    return ScriptedChatModel(
        script=[
            tool_call("start_async_task", {"description": question, "subagent_type": "t"}, "s1"),
            update,
            wait,
            AIMessage(content="all done"),
        ]
    )


def _contents(messages: Sequence[Any]) -> list[tuple[str, str]]:
    return [(m.type, str(m.content)) for m in messages]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("strategy", ["interrupt", "enqueue"])
async def test_update_async_task_with_each_strategy(
    tasks: TaskClient, worker_factory: Any, strategy: str, use_async: bool
) -> None:
    question = "slow question" if strategy == "interrupt" else "medium question"
    spec: Any = {"name": "t", "description": "Thinks.", "update_strategy": strategy}
    with worker_factory({"t": _thinker()}):
        agent = create_deep_agent(
            model=_follow_up_script(tasks, question),
            middleware=[RedisAsyncSubAgentMiddleware(subagents=[spec], client=tasks)],
        )
        request = {"messages": [("user", "think")]}
        result = (
            await agent.ainvoke(request)
            if use_async
            else await asyncio.to_thread(agent.invoke, request)
        )
    outputs = _tool_outputs(result)
    (task,) = result["async_tasks"].values()
    if strategy == "interrupt":
        assert outputs["u1"] == f"Updated async subagent. task_id: {task['task_id']}"
    else:
        assert outputs["u1"] == (
            "Queued follow-up to async subagent without interrupting its current run. "
            f"task_id: {task['task_id']}"
        )
    assert task["status"] == "success"
    assert task["run_id"] == task["task_id"]  # the same run went on: no new task
    info = tasks.get(task["task_id"])
    if strategy == "interrupt":  # stopped after its note; the follow-up ran at once
        assert _contents(info.result["messages"]) == [
            ("human", "slow question"),
            ("ai", "noted: slow question"),
            ("human", "quick one"),
            ("ai", "noted: quick one"),
            ("ai", "answer to quick one"),
        ]
    else:  # the first run ended, then the follow-up ran
        assert _contents(info.result["messages"]) == [
            ("human", "medium question"),
            ("ai", "noted: medium question"),
            ("ai", "answer to medium question"),
            ("human", "quick one"),
            ("ai", "noted: quick one"),
            ("ai", "answer to quick one"),
        ]
    notes = [m for m in result["messages"] if "deepagents_notification" in m.additional_kwargs]
    assert [n.additional_kwargs["deepagents_notification"]["status"] for n in notes] == ["success"]
    assert "answer to quick one" in str(notes[0].content)


@pytest.mark.filterwarnings("ignore::langchain_core._api.beta_decorator.LangChainBetaWarning")
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_fork_mode_sends_the_parents_conversation(
    tasks: TaskClient, worker_factory: Any, use_async: bool
) -> None:
    received: list[Any] = []

    def echo(state: dict[str, Any]) -> dict[str, Any]:
        received.append(state["messages"])
        return {"messages": [*state["messages"], AIMessage(content="forked")]}

    spec: Any = {"name": "f", "description": "Forks.", "mode": "fork"}
    snapshots: list[Any] = []

    def start(messages: Sequence[BaseMessage]) -> AIMessage:
        return tool_call("start_async_task", {"description": "go on", "subagent_type": "f"}, "s1")

    def wait(messages: Sequence[BaseMessage]) -> AIMessage:
        (task_id,) = _ids(messages)
        tasks.join(task_id, timeout=30)
        return AIMessage(content="all done")

    class Spy(RedisAsyncSubAgentMiddleware):
        def _start(self, subagent_type: str, messages: list[Any], runtime: Any) -> Any:
            upstream = _start_task_messages(
                {**spec, "graph_id": "f", "url": "http://x.invalid"}, runtime, "go on"
            )
            snapshots.append((messages, upstream))
            return super()._start(subagent_type, messages, runtime)

    with worker_factory({"f": RunnableLambda(echo)}):
        agent = create_deep_agent(
            model=ScriptedChatModel(script=[start, wait, AIMessage(content="done")]),
            middleware=[Spy(subagents=[spec], client=tasks)],
        )
        request = {"messages": [("user", "the parent's question")]}
        result = (
            await agent.ainvoke(request)
            if use_async
            else await asyncio.to_thread(agent.invoke, request)
        )
    ((snapshot, upstream),) = snapshots
    assert json.dumps(snapshot, sort_keys=True) == json.dumps(upstream, sort_keys=True)
    assert snapshot[0]["type"] == "human"
    assert snapshot[0]["content"] == "the parent's question"
    assert snapshot[-1]["type"] == "human"
    assert snapshot[-1]["content"] == _ASYNC_FORK_TASK_PREAMBLE + "go on"
    (got,) = received
    assert got == snapshot  # what the worker ran is the snapshot, through the codec
    # The task ends before "all done" is written: the notification comes before that call
    # (the task ended before it), or after it, when it gives the model one more turn.
    answers = [m.content for m in result["messages"] if m.type == "ai"]
    assert answers[-1] == "all done" or answers[-2:] == ["all done", "done"], answers


# ---------------------------------------------------------------- the turn after an answer


def _answer_after_task_ends(tasks: TaskClient, gate: Any) -> ScriptedChatModel:
    """Start a task, then answer: the task ends while the answer is being written."""

    def answer_while_it_ends(messages: Sequence[BaseMessage]) -> AIMessage:
        [task_id] = _ids(messages)
        gate.set()  # the task ends now: after this call's before_model looked at it
        tasks.join(task_id, timeout=20)
        return AIMessage(content="started it; nothing back yet")

    return ScriptedChatModel(
        script=[
            tool_call(
                "start_async_task", {"description": "topic C", "subagent_type": "gated"}, "s0"
            ),
            answer_while_it_ends,
            AIMessage(content="the findings came in"),
        ]
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_task_that_ends_during_the_final_answer_gives_the_model_another_turn(
    tasks: TaskClient, worker_factory: Any, mode: str
) -> None:
    """Upstream's `aafter_model`: after a final answer the tasks are looked at once more, and
    news gives the model another turn. Without it the run ended on "nothing back yet" and
    the outcome waited for a next run that may never come."""
    import threading

    gate = threading.Event()

    def gated(state: dict[str, Any]) -> dict[str, Any]:
        assert gate.wait(20)
        return _research(state)

    with worker_factory({"gated": RunnableLambda(gated)}):
        model = _answer_after_task_ends(tasks, gate)
        agent = create_deep_agent(
            model=model,
            middleware=[
                RedisAsyncSubAgentMiddleware(
                    subagents=[{"name": "gated", "description": "Waits."}], client=tasks
                )
            ],
        )
        request = {"messages": [("user", "research C")]}
        result = agent.invoke(request) if mode == "sync" else await agent.ainvoke(request)
    assert [m.content for m in result["messages"] if m.type == "ai"][-2:] == [
        "started it; nothing back yet",
        "the findings came in",
    ]
    notes = [m for m in result["messages"] if "deepagents_notification" in m.additional_kwargs]
    assert [n.additional_kwargs["deepagents_notification"]["status"] for n in notes] == ["success"]
    assert "findings about topic C" in str(notes[0].content)
    assert [t["status"] for t in result["async_tasks"].values()] == ["success"]
