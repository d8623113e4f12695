"""TodoReconciler and TodoBackfill against real checkpointers (SQLite, in-memory).

Threads are produced with langchain's ``create_agent`` (this package does not depend on
deepagents; the checkpoints have the same ``todos`` channel).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deepagents_redis.core import RecordingInstrumentation, set_instrumentation
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
from deepagents_redis.todos import (
    RedisTodoMiddleware,
    RedisTodoRepository,
    TodoBackfill,
    TodoReconciler,
)
from langchain.agents import create_agent
from langchain.agents.middleware import TodoListMiddleware
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

pytestmark = pytest.mark.integration

PLAN_A = [
    {"content": "collect data", "status": "completed"},
    {"content": "analyse", "status": "in_progress"},
]
PLAN_B = [{"content": "draft", "status": "pending"}]


@pytest.fixture
def saver(tmp_path: Path) -> Iterator[SqliteSaver]:
    conn = sqlite3.connect(tmp_path / "checkpoints.db", check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def run_plain(saver: Any, thread: str, todos: list[dict[str, str]] | None) -> None:
    """A thread run under langchain's TodoListMiddleware (todos only in the checkpoint)."""
    script: list[Any] = [tool_call("write_todos", {"todos": todos}, "w")] if todos else []
    model = ScriptedChatModel(script=[*script, AIMessage("ok")])
    graph = create_agent(model, middleware=[TodoListMiddleware()], checkpointer=saver)
    graph.invoke({"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": thread}})


def run_redis(saver: Any, target: Any, thread: str, writes: list[list[dict[str, str]]]) -> None:
    script: list[Any] = [
        tool_call("write_todos", {"todos": w}, f"w{i}") for i, w in enumerate(writes)
    ]
    model = ScriptedChatModel(script=[*script, AIMessage("ok")])
    mw = RedisTodoMiddleware(client=target.client, settings=target.settings)
    graph = create_agent(model, middleware=[mw], checkpointer=saver)
    graph.invoke({"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": thread}})


@pytest.fixture
def recorder() -> Iterator[RecordingInstrumentation]:
    rec = RecordingInstrumentation()
    previous = set_instrumentation(rec)
    try:
        yield rec
    finally:
        set_instrumentation(previous)


def test_backfill_is_idempotent_with_dry_run_and_progress(
    saver: SqliteSaver, redis_target: Any
) -> None:
    run_plain(saver, "old-1", PLAN_A)
    run_plain(saver, "old-2", PLAN_B)
    run_plain(saver, "no-todos", None)
    repo = RedisTodoRepository(client=redis_target.client, settings=redis_target.settings)
    backfill = TodoBackfill(repo, saver)

    ticks: list[tuple[int, int]] = []
    dry = backfill.run(dry_run=True, progress=lambda done, total: ticks.append((done, total)))
    assert (dry.threads, dry.with_todos, dry.written, dry.already_present) == (3, 2, 2, 0)
    assert dry.dry_run
    assert "would write 2" in dry.summary()
    assert ticks == [(1, 3), (2, 3), (3, 3)]
    assert repo.get("old-1").version == 0

    first = backfill.run()
    assert (first.written, first.already_present, first.failed) == (2, 0, [])
    assert repo.get("old-1").as_langchain() == PLAN_A
    assert repo.get("old-2").as_langchain() == PLAN_B
    assert repo.get("no-todos").version == 0
    assert [c.actor for c in repo.history("old-1")] == ["backfill"]

    second = backfill.run()
    assert (second.written, second.already_present) == (0, 2)
    assert repo.get("old-1").version == 1  # nothing written twice

    report = TodoReconciler(repo, saver).reconcile()
    assert (report.checked, report.in_sync, report.drifts) == (2, 2, [])


def test_reconcile_reports_and_repairs_drift(
    saver: SqliteSaver,
    redis_target: Any,
    recorder: RecordingInstrumentation,
    caplog: pytest.LogCaptureFixture,
) -> None:
    repo = RedisTodoRepository(client=redis_target.client, settings=redis_target.settings)
    run_plain(saver, "old-1", PLAN_A)
    run_plain(saver, "old-2", PLAN_B)
    TodoBackfill(repo, saver).run()
    run_redis(saver, redis_target, "new-1", [PLAN_A])
    run_redis(saver, redis_target, "new-2", [PLAN_B, PLAN_A])  # checkpoint at version 2
    run_redis(saver, redis_target, "ok", [PLAN_B])

    # missing: the plan vanished (eviction, FLUSHDB, a wrong prefix...)
    redis_target.client.delete(repo.plan_key("old-1"))
    # behind: the plan was rolled back to an older state (failover lost a write)
    redis_target.client.delete(repo.plan_key("new-2"))
    repo.replace("new-2", [{"content": "draft"}])
    # diverged: someone changed a plan whose thread never ran with the middleware
    repo.add("old-2", "extra step", actor="human")
    # lagging: an outside update the thread has not pulled yet (normal)
    repo.update("new-1", repo.get("new-1").ids[1], status="completed", actor="human")

    reconciler = TodoReconciler(repo, saver)
    with caplog.at_level(logging.WARNING, logger="deepagents_redis.todos"):
        report = reconciler.reconcile()
    assert report.counts() == {"missing": 1, "behind": 1, "diverged": 1, "lagging": 1}
    assert (report.checked, report.in_sync) == (5, 1)
    assert {d.thread_id: d.kind for d in report.drifts} == {
        "old-1": "missing",
        "new-2": "behind",
        "old-2": "diverged",
        "new-1": "lagging",
    }
    assert len(report.alerts) == 3
    assert report.repaired == 0
    assert recorder.total("todos.reconcile.drift", kind="behind") == 1
    assert recorder.total("todos.reconcile.drift") == 4
    assert recorder.total("todos.reconcile.checked") == 5
    (record,) = [r for r in caplog.records if "todos drift" in r.getMessage()]
    assert "missing=1 behind=1 diverged=1" in record.getMessage()

    repaired = reconciler.reconcile(repair=True)
    assert repaired.repaired == 2
    assert {d.thread_id for d in repaired.drifts if d.repaired} == {"old-1", "new-2"}
    assert repo.get("old-1").as_langchain() == PLAN_A
    assert repo.get("new-2").as_langchain() == PLAN_A
    assert [c.actor for c in repo.history("new-2")][-1] == "reconcile"

    after = reconciler.reconcile()
    assert after.counts() == {"missing": 0, "behind": 0, "diverged": 1, "lagging": 1}

    # The lagging thread heals on its next run: the middleware pulls the plan.
    run_redis(saver, redis_target, "new-1", [])
    assert {d.thread_id for d in reconciler.reconcile().drifts} == {"old-2"}


async def test_async_reconcile_and_backfill(redis_target: Any) -> None:
    saver = InMemorySaver()
    run_plain(saver, "a-1", PLAN_A)
    repo = RedisTodoRepository(
        async_client=redis_target.async_client, settings=redis_target.settings
    )
    dry = await TodoBackfill(repo, saver).arun(dry_run=True)
    assert dry.written == 1
    report = await TodoReconciler(repo, saver).areconcile()
    assert report.counts()["missing"] == 1
    done = await TodoBackfill(repo, saver).arun()
    assert done.written == 1
    again = await TodoBackfill(repo, saver).arun()
    assert again.already_present == 1
    assert (await repo.aget("a-1")).as_langchain() == PLAN_A
    report = await TodoReconciler(repo, saver).areconcile(repair=True)
    assert report.in_sync == 1


def test_reconcile_reports_an_unreadable_plan_and_checks_the_rest(
    saver: SqliteSaver,
    redis_target: Any,
    recorder: RecordingInstrumentation,
    caplog: pytest.LogCaptureFixture,
) -> None:
    repo = RedisTodoRepository(client=redis_target.client, settings=redis_target.settings)
    for thread in ("t-1", "t-2", "t-3"):
        run_plain(saver, thread, PLAN_A)
    TodoBackfill(repo, saver).run()
    # Bytes no writer of this package makes, under the middle thread's plan key.
    redis_target.client.hset(repo.plan_key("t-2"), mapping={"version": "1", "items": "{oops"})
    redis_target.client.delete(repo.plan_key("t-3"))  # and a plan lost after it

    ticks: list[tuple[int, int]] = []
    with caplog.at_level(logging.WARNING, logger="deepagents_redis.todos"):
        report = TodoReconciler(repo, saver).reconcile(
            repair=True, progress=lambda done, total: ticks.append((done, total))
        )
    assert [thread for thread, _why in report.unreadable] == ["t-2"]
    assert report.unreadable[0][1].startswith("SerializationError")
    # The threads after the unreadable one were still compared, and repaired.
    assert {d.thread_id: (d.kind, d.repaired) for d in report.drifts} == {"t-3": ("missing", True)}
    assert (report.checked, report.in_sync) == (3, 1)
    assert ticks == [(1, 3), (2, 3), (3, 3)]
    assert repo.get("t-3").as_langchain() == PLAN_A
    assert recorder.total("todos.reconcile.unreadable") == 1
    assert any("could not be read" in r.getMessage() for r in caplog.records)
    # Nothing was written over the unreadable plan.
    assert redis_target.client.hget(repo.plan_key("t-2"), "items") == b"{oops"


async def test_async_reconcile_goes_on_past_an_unreadable_plan(redis_target: Any) -> None:
    saver = InMemorySaver()
    run_plain(saver, "u-1", PLAN_A)
    run_plain(saver, "u-2", PLAN_B)
    repo = RedisTodoRepository(
        async_client=redis_target.async_client, settings=redis_target.settings
    )
    await TodoBackfill(repo, saver).arun()
    await redis_target.async_client.hset(repo.plan_key("u-1"), "version", "x")
    report = await TodoReconciler(repo, saver).areconcile()
    assert [thread for thread, _why in report.unreadable] == ["u-1"]
    assert (report.checked, report.in_sync) == (2, 1)


def test_reconcile_fails_when_redis_itself_fails(saver: SqliteSaver, redis_target: Any) -> None:
    from deepagents_redis.core import RedisUnavailableError

    run_plain(saver, "d-1", PLAN_A)
    repo = RedisTodoRepository(client=redis_target.client, settings=redis_target.settings)
    reconciler = TodoReconciler(repo, saver)

    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise RedisUnavailableError("down")

    repo.get = down  # type: ignore[method-assign]
    with pytest.raises(RedisUnavailableError):
        reconciler.reconcile()
