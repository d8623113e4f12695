"""Dead letters written by a claim, and a retry whose queue stream went under the run.

1. Every heartbeat a reader `XAUTOCLAIM`s entries idle that long, so one entry can be in the
   hands of two workers' claims at once (the first still handling it when the entry, idle
   again, is taken over by the second). For an entry that is dead-lettered by its claim (a
   task that failed for good whose letter was never written, a task out of attempts, a
   malformed entry) both claims dead-letter it: one letter must be written, and
   `coord.dead_letter` counted once. Both calls used the same op id (``...:0:dead``), so the
   second one was answered with the first one's recorded reply (1) and counted it again.
2. A run that failed and is to be retried after a backoff: when its queue stream was deleted
   under it (its group made again, every pending record gone), the 'retry' ack's XACK
   answered 0 and the retry was not scheduled: the task stayed 'pending' on no queue and in
   no delayed set, for good. Like 'dead' and 'requeue' (349aab9), 'retry' now also acts when
   the task's mark still names the entry with no TTL and the task is not in the delayed set
   already: retried once, never twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from deepagents_redis.coord import TaskClient, TaskContext, Worker, _worker
from deepagents_redis.coord._common import one
from deepagents_redis.coord._keys import GROUP
from deepagents_redis.coord._scripts import CLAIM
from deepagents_redis.coord._scripts import GROUP as GROUP_SCRIPT
from deepagents_redis.core import (
    RecordingInstrumentation,
    RedisConnector,
    Script,
    run_operation,
    set_instrumentation,
)

from .conftest import FAST

pytestmark = pytest.mark.integration


def _until(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def _pending(raw: Any, stream: str) -> int:
    return int(raw.xpending(stream, GROUP)["pending"])


@pytest.fixture
def recorder() -> Iterator[RecordingInstrumentation]:
    rec = RecordingInstrumentation()
    previous = set_instrumentation(rec)
    try:
        yield rec
    finally:
        set_instrumentation(previous)


# ------------------------------------------------------------------ 1. one letter, one count


def _failed_without_letter(
    connector: RedisConnector, worker_factory: Any, monkeypatch: pytest.MonkeyPatch, agent: str
) -> str:
    """A task that failed for good whose run's own dead letter never went (its worker died
    between the finish and the letter): status 'error', its entry still pending."""
    real = Worker._dead_letter
    dropped: list[str] = []

    async def dead_letter(self: Worker, queue: Any, entry_id: str, *a: Any, **kw: Any) -> None:
        if kw.get("fence"):  # the run's own: lost
            dropped.append(entry_id)
            return
        await real(self, queue, entry_id, *a, **kw)

    monkeypatch.setattr(Worker, "_dead_letter", dead_letter)
    tasks = TaskClient(connector=connector, max_attempts=1, **FAST)

    def fails(_x: Any) -> str:
        raise RuntimeError("fails for good")

    # its reader takes over no entry before it is gone (entries idle for 30 s only)
    with worker_factory({agent: fails}, lease_seconds=60, heartbeat_seconds=30) as first:
        task_id = tasks.submit(agent, {})
        assert tasks.join(task_id, timeout=30).status == "error"
        _until(lambda: bool(dropped), "the run's dead letter was dropped")
        first.stop()
    monkeypatch.setattr(Worker, "_dead_letter", real)
    return task_id


def _out_of_attempts(connector: RedisConnector, agent: str) -> str:
    """A task whose only attempt's worker died mid-run (lease run out): out of attempts."""
    tasks = TaskClient(connector=connector, check_agents=False, max_attempts=1)
    task_id = tasks.submit(agent, {})
    queue, keys = tasks.keys.queue(agent), tasks.keys.task(task_id)
    raw = connector.client()
    GROUP_SCRIPT(raw, keys=[queue.stream], args=[GROUP])
    raw.xreadgroup(GROUP, "doomed", {queue.stream: ">"}, count=1)
    started = tasks._encoded("task.started", "doomed", task_id, agent, keys)
    CLAIM(raw, keys=keys.scripted, args=["doomed", 1, started, 10, b"", 60_000])
    time.sleep(0.05)  # its 1 ms lease runs out
    return task_id


def _malformed(connector: RedisConnector, agent: str) -> str:
    tasks = TaskClient(connector=connector, check_agents=False)
    queue = tasks.keys.queue(agent)
    raw = connector.client()
    GROUP_SCRIPT(raw, keys=[queue.stream], args=[GROUP])
    raw.xadd(queue.stream, {"x": "not a task"})
    raw.xreadgroup(GROUP, "doomed", {queue.stream: ">"}, count=1)
    return ""


@pytest.mark.parametrize("kind", ["failed", "out of attempts", "malformed entry"])
def test_an_entry_two_workers_claimed_is_dead_lettered_and_counted_once(
    connector: RedisConnector,
    worker_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    recorder: RecordingInstrumentation,
    kind: str,
) -> None:
    agent = {"failed": "dl-failed", "out of attempts": "dl-exhausted", "malformed entry": "dl-bad"}[
        kind
    ]
    if kind == "failed":
        task_id = _failed_without_letter(connector, worker_factory, monkeypatch, agent)
    elif kind == "out of attempts":
        task_id = _out_of_attempts(connector, agent)
    else:
        task_id = _malformed(connector, agent)
    tasks = TaskClient(connector=connector, check_agents=False)
    queue = tasks.keys.queue(agent)
    raw = connector.client()
    assert _pending(raw, queue.stream) == 1
    assert raw.xlen(queue.dlq) == 0
    before = recorder.total("coord.dead_letter")

    # Two workers (serving another agent: their own readers leave this queue alone) each
    # take the entry over, as two readers' XAUTOCLAIMs do when the first one's handling
    # outlasts a heartbeat; then each handles it, one after the other.
    with (
        worker_factory({"bystander": lambda _x: "ok"}) as one,
        worker_factory({"bystander": lambda _x: "ok"}) as two,
    ):
        taken = []
        for worker in (one, two):
            reply = raw.xautoclaim(queue.stream, GROUP, worker.worker_id, 0, "0-0")
            assert len(reply[1]) == 1
            taken.append(reply[1][0])
        for worker, (entry_id, fields) in zip((one, two), taken, strict=True):
            assert worker._loop is not None
            asyncio.run_coroutine_threadsafe(
                worker._handle_entry(agent, queue, entry_id.decode(), fields), worker._loop
            ).result(30)
    letters = tasks.dead_letters(agent)
    assert [letter["task_id"] for letter in letters] == [task_id]
    assert recorder.total("coord.dead_letter") - before == 1
    assert _pending(raw, queue.stream) == 0
    assert raw.xlen(queue.stream) == 0
    if task_id:
        assert tasks.get(task_id).status == "error"


# ------------------------------------------------------------------ 2. a retry, stream gone


def _drop_stream(raw: Any, stream: str) -> None:
    """Delete the queue stream (and its group), then make the group again, as a reader does."""
    raw.delete(stream)
    try:
        raw.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except Exception as exc:  # a worker's reader made it again first
        if "BUSYGROUP" not in str(exc) and "BUSYGROUP" not in str(exc.__cause__):
            raise


def _keep_retry_acks(monkeypatch: pytest.MonkeyPatch) -> list[Script]:
    """Every 'retry' ack a worker builds (sent as usual), to be sent again by the test."""
    kept: list[Script] = []
    real = Worker._ack_plain

    def ack_plain(self: Worker, queue: Any, entry_id: str, task_id: str, *args: Any) -> Script:
        script = real(self, queue, entry_id, task_id, *args)
        if args and args[0] == "retry":
            kept.append(script)
        return script

    monkeypatch.setattr(Worker, "_ack_plain", ack_plain)
    return kept


def test_a_retry_whose_queue_stream_was_deleted_under_the_run_is_scheduled_once(
    connector: RedisConnector, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stream (and its group) deleted while the first attempt ran, the group made again:
    # the 'retry' ack's XACK answered 0 and nothing was scheduled, so the task stayed
    # 'pending' on no queue and in no delayed set, run by nobody, for good.
    real_backoff = _worker.jittered_backoff

    def backoff(attempt: int, base: float, cap: float) -> float:
        # the retry's waits an hour (only the test makes it due); the reader's own backoff
        # after the NOGROUP its read met stays as it is
        return 3600.0 if base == 3600 else real_backoff(attempt, base, cap)

    monkeypatch.setattr(_worker, "jittered_backoff", backoff)
    kept = _keep_retry_acks(monkeypatch)
    tasks = TaskClient(connector=connector, max_attempts=3, **FAST)
    queue = tasks.keys.queue("lost-retry")
    raw = connector.client()
    calls: list[int] = []

    def flaky(_x: Any, ctx: TaskContext) -> str:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            _drop_stream(raw, queue.stream)
            raise RuntimeError("first attempt fails")
        return "ok"

    with worker_factory({"lost-retry": flaky}, backoff_base_seconds=3600, backoff_cap_seconds=3600):
        task_id = tasks.submit("lost-retry", {})
        _until(lambda: bool(kept), "the first attempt failed and its retry ack was sent")
        _until(
            lambda: tasks.get(task_id).attempts == 1 and tasks.get(task_id).status == "pending",
            "the first attempt's end was written",
        )
        _until(
            lambda: raw.zscore(queue.delayed, task_id) is not None,
            "the retry is scheduled (the task is on no queue, in no delayed set otherwise)",
            seconds=5,
        )
        assert raw.xlen(queue.stream) == 0
        # The same ack again (a re-send after its reply was lost): the task is delayed
        # already, so nothing is scheduled a second time (and its due time stays).
        due = raw.zscore(queue.delayed, task_id)
        assert run_operation(connector, "test.again", one(kept[0]), deadline_seconds=10) == 0
        assert raw.zscore(queue.delayed, task_id) == due
        raw.zadd(queue.delayed, {task_id: 0})  # its backoff is over
        assert tasks.result(task_id, timeout=30) == "ok"
        # ... and once more after the retry ran: the mark names the new entry, then expires
        # with the task: nothing queued or delayed again
        assert run_operation(connector, "test.late", one(kept[0]), deadline_seconds=10) == 0
        assert raw.zcard(queue.delayed) == 0
        # On a Cluster the run's finish and its entry's ack are two calls: the result can be
        # read before the ack has removed the entry (seen once under load in CI)
        _until(lambda: raw.xlen(queue.stream) == 0, "the second attempt's entry is acked")
        assert raw.zcard(queue.delayed) == 0
    assert calls == [1, 2]
    assert len(kept) == 1
    assert tasks.dead_letters("lost-retry") == []
