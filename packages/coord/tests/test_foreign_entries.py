"""Queue entries someone else wrote: a worker never runs a task of another agent."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from deepagents_redis.coord import TaskClient
from deepagents_redis.core import (
    RecordingInstrumentation,
    SerializationError,
    set_instrumentation,
)


def test_an_entry_naming_another_agents_task_is_dead_lettered_untouched(
    connector: Any, worker_factory: Any
) -> None:
    # A queue entry is only a task id. One appended to agent B's queue for a task submitted
    # to agent A (an operator's script, a bug elsewhere) was claimed by B's worker: A's input
    # ran on B's agent, B's result was written as A's, and an attempt of A's was spent.
    calls: list[Any] = []

    def wrong(x: Any) -> str:
        calls.append(x)
        return "ran on the wrong agent"

    tasks = TaskClient(connector=connector, check_agents=False)
    raw = connector.client()
    task_id = tasks.submit("right-agent", {"for": "right"})
    wrong_queue = tasks.keys.queue("wrong-agent")
    recorder = RecordingInstrumentation()
    previous = set_instrumentation(recorder)
    try:
        with worker_factory({"wrong-agent": wrong}):
            raw.xadd(wrong_queue.stream, {"t": task_id})
            for _ in range(600):
                if tasks.dead_letters("wrong-agent"):
                    break
                threading.Event().wait(0.05)
            [letter] = tasks.dead_letters("wrong-agent")
    finally:
        set_instrumentation(previous)
    assert calls == []
    # The metric's label is the reason's fixed words: the submitter's agent name (unbounded
    # label values) is in the letter and the log only.
    labels = [dict(attrs) for name, attrs in recorder.counts if name == "coord.dead_letter"]
    assert labels == [{"reason": "entry names a task of another agent"}]
    info = tasks.get(task_id)
    assert (info.status, info.attempts, info.agent) == ("pending", 0, "right-agent")
    assert "another agent" in letter["reason"]
    assert raw.xlen(wrong_queue.stream) == 0
    assert [t["task_id"] for t in tasks.active("right-agent")] == [task_id]
    assert tasks.cancel(task_id) == "cancelled"


def test_an_entry_whose_task_record_is_unusable_is_dead_lettered(
    connector: Any, worker_factory: Any
) -> None:
    # A queue entry naming a task whose record someone else wrote (a key of another type, a
    # hash without the numbers the claim compares) failed its claim with a script error at
    # every delivery: logged as a worker error each heartbeat, never dead-lettered, for ever.
    tasks = TaskClient(connector=connector, check_agents=False)
    raw = connector.client()
    queue = tasks.keys.queue("careful")
    not_a_hash, no_numbers = "a" * 32, "b" * 32
    raw.set(tasks.keys.task(not_a_hash).record, "a string")
    raw.hset(
        tasks.keys.task(no_numbers).record,
        mapping={"status": "pending", "agent": "careful", "attempts": "x", "max_attempts": "3"},
    )
    with worker_factory({"careful": lambda x: x}):
        raw.xadd(queue.stream, {"t": not_a_hash})
        raw.xadd(queue.stream, {"t": no_numbers})
        good = tasks.submit("careful", {"ok": 1})
        assert tasks.result(good, timeout=10) == {"ok": 1}
        for _ in range(600):
            if len(tasks.dead_letters("careful")) >= 2:
                break
            threading.Event().wait(0.05)
        letters = tasks.dead_letters("careful")
    assert sorted(ltr["fields"]["t"] for ltr in letters) == [not_a_hash, no_numbers]
    assert all("unusable" in ltr["reason"] for ltr in letters)
    assert raw.xlen(queue.stream) == 0
    assert raw.get(tasks.keys.task(not_a_hash).record) == b"a string"  # left as it was
    assert raw.hget(tasks.keys.task(no_numbers).record, "attempts") == b"x"


@pytest.mark.parametrize("field", ["attempts", "max_attempts"])
async def test_reading_a_record_whose_counts_are_not_numbers_is_a_serialization_error(
    connector: Any, field: str
) -> None:
    # A task record someone else changed: `get`, `join` (and `tasks list` behind them)
    # raised int()'s bare ValueError, outside the package's error tree.
    tasks = TaskClient(connector=connector, check_agents=False)
    raw = connector.client()
    task_id = tasks.submit("hostile-record", {"n": 1})
    raw.hset(tasks.keys.task(task_id).record, field, "not a number")
    with pytest.raises(SerializationError, match=field):
        tasks.get(task_id)
    with pytest.raises(SerializationError, match=field):
        await tasks.aget(task_id)
    with pytest.raises(SerializationError, match=field):
        tasks.join(task_id, timeout=0)


async def test_a_record_time_out_of_range_reads_as_unknown(connector: Any) -> None:
    # A creation time past what a datetime holds raised OverflowError out of `get`.
    tasks = TaskClient(connector=connector, check_agents=False)
    raw = connector.client()
    task_id = tasks.submit("hostile-record", {"n": 2})
    raw.hset(tasks.keys.task(task_id).record, "created_ms", "9" * 30)
    assert tasks.get(task_id).created_at is None
    assert (await tasks.aget(task_id)).created_at is None
    tasks.cancel(task_id)


@pytest.mark.parametrize("limit", ["soon", "0x10", "-5.0", "nan"])
def test_an_entry_whose_record_has_an_unusable_run_timeout_is_dead_lettered_at_once(
    connector: Any, worker_factory: Any, limit: str
) -> None:
    # A record whose run timeout is not positive seconds (someone else wrote it): the
    # claim marked the task running, then the worker's run set-up failed on float(): no
    # run, no heartbeat, so the task waited out its lease at every delivery and was
    # dead-lettered only once out of attempts, each attempt blamed on a dead worker.
    tasks = TaskClient(connector=connector, check_agents=False)
    raw = connector.client()
    queue = tasks.keys.queue("timed")
    bad = tasks.submit("timed", {"n": 1}, run_timeout=5)
    good = tasks.submit("timed", {"ok": 1})
    raw.hset(tasks.keys.task(bad).record, "timeout_s", limit)
    with worker_factory({"timed": lambda x: x}, lease_seconds=60, heartbeat_seconds=0.25):
        assert tasks.result(good, timeout=10) == {"ok": 1}
        for _ in range(600):
            if tasks.dead_letters("timed"):
                break
            threading.Event().wait(0.05)
        letters = tasks.dead_letters("timed")
    assert [ltr["fields"]["t"] for ltr in letters] == [bad]
    assert "timeout_s" in letters[0]["reason"]
    assert raw.xlen(queue.stream) == 0
    assert tasks.get(bad).attempts == 0  # nothing was run, nothing blamed on a worker


@pytest.mark.parametrize("limit", [float("inf"), 1e-3 * 60_000, 2.5e20, 7])
def test_every_run_timeout_a_submit_writes_passes_the_claims_check(
    connector: Any, worker_factory: Any, limit: float
) -> None:
    # The claim refuses a record whose run timeout the worker cannot read; every form a
    # submit writes (repr of a float: 'inf', '60.0', '2.5e+20', '7.0') must pass it.
    tasks = TaskClient(connector=connector, check_agents=False)
    with worker_factory({"limits": lambda x: x}):
        task_id = tasks.submit("limits", {"n": 1}, run_timeout=limit)
        assert tasks.result(task_id, timeout=10) == {"n": 1}


@pytest.mark.parametrize("status", ["pending", "running"])
def test_an_entry_whose_record_history_is_not_json_is_dead_lettered(
    connector: Any, worker_factory: Any, status: str
) -> None:
    # The claim of a task whose worker stopped heartbeating and the finish of a failed
    # attempt add to the record's history with cjson.decode: a history someone else wrote
    # failed that script (a failed finish leaves the task running: its lease runs out and
    # the claim fails next) at every delivery, so the entry was never dead-lettered.
    tasks = TaskClient(connector=connector, check_agents=False)
    raw = connector.client()
    bad = tasks.submit("historic", {"n": 1})
    raw.hset(
        tasks.keys.task(bad).record,
        mapping={"history": "not json", "status": status, "lease_until": 0},
    )

    def fails(_x: Any) -> str:  # its failure is added to the history by the finish
        raise RuntimeError("fails")

    with worker_factory({"historic": fails}):
        for _ in range(600):
            if tasks.dead_letters("historic"):
                break
            threading.Event().wait(0.05)
        letters = tasks.dead_letters("historic")
    assert [ltr["fields"]["t"] for ltr in letters] == [bad]
    assert "history" in letters[0]["reason"]
    assert raw.hget(tasks.keys.task(bad).record, "history") == b"not json"  # left as it was
