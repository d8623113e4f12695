"""LangGraph graphs on `RedisSaver`: interrupts, time travel, pending writes, subgraphs.

Each scenario runs on `InMemorySaver` too, and the two histories must be the same: the state
values, the next nodes and the metadata of every checkpoint, newest first.
"""

from __future__ import annotations

import operator
import threading
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.core import RedisConnector
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt


class State(TypedDict):
    log: Annotated[list[str], operator.add]


def _config() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"t-{uuid.uuid4()}"}}


def _history(graph: Any, config: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (snap.values, snap.next, snap.metadata.get("step"), snap.metadata.get("source"))
        for snap in graph.get_state_history(config)
    ]


def _both(connector: RedisConnector) -> list[BaseCheckpointSaver[Any]]:
    return [RedisSaver(connector=connector), InMemorySaver()]


# ------------------------------------------------------------------ interrupts
def _approval_graph(saver: BaseCheckpointSaver[Any]) -> Any:
    def draft(state: State) -> dict[str, Any]:
        return {"log": ["draft"]}

    def review(state: State) -> dict[str, Any]:
        answer = interrupt({"question": "ship it?"})
        return {"log": [f"review:{answer}"]}

    builder = StateGraph(State)
    builder.add_node("draft", draft)
    builder.add_node("review", review)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", END)
    return builder.compile(checkpointer=saver)


def test_interrupt_then_resume_from_another_saver(connector: RedisConnector) -> None:
    histories = []
    for saver in _both(connector):
        config = _config()
        first = _approval_graph(saver).invoke({"log": []}, config)
        assert first["__interrupt__"][0].value == {"question": "ship it?"}
        # another process (a second saver on its own connection) resumes the thread
        other = RedisSaver(settings=connector.settings) if isinstance(saver, RedisSaver) else saver
        graph = _approval_graph(other)
        assert graph.get_state(config).next == ("review",)
        done = graph.invoke(Command(resume="yes"), config)
        assert done["log"] == ["draft", "review:yes"]
        histories.append(_history(graph, config))
        if other is not saver:
            other.close()
    assert histories[0] == histories[1]


async def test_interrupt_then_resume_async(connector: RedisConnector) -> None:
    histories = []
    for saver in _both(connector):
        graph = _approval_graph(saver)
        config = _config()
        await graph.ainvoke({"log": []}, config)
        done = await graph.ainvoke(Command(resume="no"), config)
        assert done["log"] == ["draft", "review:no"]
        histories.append([(s.values, s.next) async for s in graph.aget_state_history(config)])
    assert histories[0] == histories[1]


# ------------------------------------------------------------------ time travel
def _counter_graph(saver: BaseCheckpointSaver[Any]) -> Any:
    def step(name: str) -> Callable[[State], dict[str, Any]]:
        return lambda state: {"log": [name]}

    builder = StateGraph(State)
    for name in ("a", "b", "c"):
        builder.add_node(name, step(name))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    builder.add_edge("c", END)
    return builder.compile(checkpointer=saver)


def test_time_travel_replay_fork_and_update(connector: RedisConnector) -> None:
    histories = []
    for saver in _both(connector):
        graph = _counter_graph(saver)
        config = _config()
        graph.invoke({"log": []}, config)
        history = list(graph.get_state_history(config))
        assert [s.next for s in history] == [(), ("c",), ("b",), ("a",), ("__start__",)]
        before_b = next(s for s in history if s.next == ("b",))
        # replay from the past: b and c run again on a new branch
        replayed = graph.invoke(None, before_b.config)
        assert replayed["log"] == ["a", "b", "c"]
        # fork: edit the past and run from there
        forked = graph.update_state(before_b.config, {"log": ["edited"]})
        result = graph.invoke(None, forked)
        assert result["log"] == ["a", "edited", "b", "c"]
        histories.append(_history(graph, config))
        # list with before/limit walks the same history as get_state_history
        newest = list(saver.list(config, limit=3))
        assert len(newest) == 3
        older = list(saver.list(config, before=newest[-1].config, limit=2))
        assert [t.checkpoint["id"] for t in older] < [newest[-1].checkpoint["id"]] * 2
    assert histories[0] == histories[1]


# ------------------------------------------------------------------ pending writes
def _pending_writes_case(saver: BaseCheckpointSaver[Any]) -> dict[str, int]:
    """One parallel superstep where a node fails once; returns how often each node ran."""
    calls: dict[str, int] = {"ok": 0, "flaky": 0}
    done = threading.Event()

    def ok(state: State, calls: dict[str, int] = calls) -> dict[str, Any]:
        calls["ok"] += 1
        done.set()
        return {"log": ["ok"]}

    def flaky(state: State, calls: dict[str, int] = calls) -> dict[str, Any]:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            # fail only once the sibling's writes are saved (else it would be cut short
            # and re-run, LangGraph's rule for an unfinished task, not what is tested here)
            done.wait(timeout=10)
            end = time.monotonic() + 10
            while time.monotonic() < end:
                tup = saver.get_tuple(config)
                if tup and any(w[1] == "log" for w in tup.pending_writes or []):
                    break
                time.sleep(0.01)
            raise RuntimeError("transient")
        return {"log": ["flaky"]}

    builder = StateGraph(State)
    builder.add_node("ok", ok)
    builder.add_node("flaky", flaky)
    builder.add_edge(START, "ok")
    builder.add_edge(START, "flaky")
    builder.add_edge("ok", END)
    builder.add_edge("flaky", END)
    graph = builder.compile(checkpointer=saver)
    config = _config()
    with pytest.raises(RuntimeError, match="transient"):
        graph.invoke({"log": []}, config)
    pending = saver.get_tuple(config)
    assert pending is not None
    assert any(channel == "log" for _, channel, _ in pending.pending_writes or [])
    result = graph.invoke(None, config)
    assert sorted(result["log"]) == ["flaky", "ok"]
    return calls


def test_pending_writes_spare_the_successful_sibling(connector: RedisConnector) -> None:
    """A superstep where one of two parallel nodes fails: the retry re-runs only that one."""
    for saver in _both(connector):
        assert _pending_writes_case(saver) == {"ok": 1, "flaky": 2}


# ------------------------------------------------------------------ subgraphs
def _nested_graph(saver: BaseCheckpointSaver[Any]) -> Any:
    def inner_step(state: State) -> dict[str, Any]:
        answer = interrupt("inner?")
        return {"log": [f"inner:{answer}"]}

    inner = StateGraph(State)
    inner.add_node("inner_step", inner_step)
    inner.add_edge(START, "inner_step")
    inner.add_edge("inner_step", END)

    outer = StateGraph(State)
    outer.add_node("before", lambda state: {"log": ["before"]})
    outer.add_node("child", inner.compile())
    outer.add_node("after", lambda state: {"log": ["after"]})
    outer.add_edge(START, "before")
    outer.add_edge("before", "child")
    outer.add_edge("child", "after")
    outer.add_edge("after", END)
    return outer.compile(checkpointer=saver)


def test_subgraph_state_lives_in_its_namespace(connector: RedisConnector) -> None:
    results = []
    for saver in _both(connector):
        graph = _nested_graph(saver)
        config = _config()
        graph.invoke({"log": []}, config)
        state = graph.get_state(config, subgraphs=True)
        child = state.tasks[0].state
        assert child is not None
        assert child.next == ("inner_step",)
        assert child.config["configurable"]["checkpoint_ns"].startswith("child:")
        done = graph.invoke(Command(resume="fine"), config)
        assert done["log"] == ["before", "before", "inner:fine", "after"]
        namespaces = {t.config["configurable"]["checkpoint_ns"] for t in saver.list(config)}
        assert "" in namespaces
        assert any(ns.startswith("child:") for ns in namespaces)
        root_only = {
            t.config["configurable"]["checkpoint_ns"]
            for t in saver.list({"configurable": {**config["configurable"], "checkpoint_ns": ""}})
        }
        assert root_only == {""}
        results.append((done, _history(graph, config)))
    assert results[0] == results[1]


# ------------------------------------------------------------------ DeltaChannel histories
def _merge(state: list[str] | None, writes: list[Any]) -> list[str]:
    out = list(state or [])
    for write in writes:
        out.extend(write if isinstance(write, list) else [write])
    return out


class DeltaState(TypedDict):
    notes: Annotated[list[str], DeltaChannel(_merge, snapshot_frequency=3)]
    turn: int


def _delta_graph(saver: BaseCheckpointSaver[Any]) -> Any:
    def step(state: DeltaState) -> dict[str, Any]:
        return {"notes": [f"note {state['turn']}"], "turn": state["turn"] + 1}

    builder = StateGraph(DeltaState)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize("scan_batch", [1, 2, 256])
@pytest.mark.parametrize("blob_bytes", [32_768, 40, 0])  # values inside, some around, all around
def test_delta_channel_history_matches_the_base_walk(
    connector: RedisConnector, scan_batch: int, blob_bytes: int
) -> None:
    """The server-side walk returns what BaseCheckpointSaver's get_tuple walk returns."""
    saver = RedisSaver(connector=connector, scan_batch=scan_batch, script_blob_bytes=blob_bytes)
    graph = _delta_graph(saver)
    config = _config()
    turn = 0
    for _ in range(8):  # a multi-turn thread: each turn resumes from the last checkpoint
        state = graph.invoke({"notes": [f"user {turn}"], "turn": turn}, config)
        turn = state["turn"]
    assert state["notes"][:3] == ["user 0", "note 0", "user 1"]
    history = list(saver.list(config))
    assert len(history) > 10
    seen_writes = seen_seed = False
    for tup in history:
        ours = saver.get_delta_channel_history(config=tup.config, channels=["notes", "turn"])
        base = BaseCheckpointSaver.get_delta_channel_history(
            saver, config=tup.config, channels=["notes", "turn"]
        )
        assert ours == base
        seen_writes |= bool(ours["notes"]["writes"])
        seen_seed |= "seed" in ours["notes"]
    assert seen_writes
    assert seen_seed  # the walk met writes to replay and snapshots to start from
    newest = {"configurable": {"thread_id": config["configurable"]["thread_id"]}}
    assert saver.get_delta_channel_history(
        config=newest, channels=["notes"]
    ) == BaseCheckpointSaver.get_delta_channel_history(saver, config=newest, channels=["notes"])
    assert saver.get_delta_channel_history(config=newest, channels=[]) == {}
    missing = {"configurable": {"thread_id": "nope", "checkpoint_id": history[0].checkpoint["id"]}}
    assert saver.get_delta_channel_history(config=missing, channels=["notes"]) == {
        "notes": {"writes": []}
    }


async def test_delta_channel_history_async(connector: RedisConnector) -> None:
    saver = RedisSaver(connector=connector)
    graph = _delta_graph(saver)
    config = _config()
    for turn in range(4):
        await graph.ainvoke({"notes": [f"user {turn}"], "turn": turn}, config)
    tup = await saver.aget_tuple(config)
    assert tup is not None
    ours = await saver.aget_delta_channel_history(config=tup.config, channels=["notes"])
    base = await BaseCheckpointSaver.aget_delta_channel_history(
        saver, config=tup.config, channels=["notes"]
    )
    assert ours == base


def test_prune_keep_latest_refuses_a_delta_channel_thread(connector: RedisConnector) -> None:
    """keep_latest drops the ancestors a DeltaChannel rebuilds its value from (the notes of a
    thread silently came back short); like LangGraph's PostgresSaver, it refuses such a
    thread and prunes nothing of the batch. 'delete' still deletes it."""
    saver = RedisSaver(connector=connector)
    graph = _delta_graph(saver)
    config = _config()
    plain_graph = _approval_graph(saver)
    plain = _config()
    plain_graph.invoke({"log": []}, plain)
    state: dict[str, Any] = {}
    for turn in range(4):
        state = graph.invoke({"notes": [f"user {turn}"], "turn": turn}, config)
    thread = config["configurable"]["thread_id"]
    before = len(list(saver.list(config)))
    with pytest.raises(NotImplementedError, match="DeltaChannel"):
        saver.prune([plain["configurable"]["thread_id"], thread])
    assert len(list(saver.list(config))) == before
    assert len(list(saver.list(plain))) > 1  # nothing of the batch pruned
    assert graph.get_state(config).values["notes"] == state["notes"]
    saver.prune([plain["configurable"]["thread_id"]])
    assert len(list(saver.list(plain))) == 1
    saver.prune([thread], strategy="delete")
    assert list(saver.list(config)) == []


async def test_aprune_keep_latest_refuses_a_delta_channel_thread(
    connector: RedisConnector,
) -> None:
    saver = RedisSaver(connector=connector)
    graph = _delta_graph(saver)
    config = _config()
    for turn in range(4):
        await graph.ainvoke({"notes": [f"user {turn}"], "turn": turn}, config)
    before = len([t async for t in saver.alist(config)])
    with pytest.raises(NotImplementedError, match="DeltaChannel"):
        await saver.aprune([config["configurable"]["thread_id"]])
    assert len([t async for t in saver.alist(config)]) == before
