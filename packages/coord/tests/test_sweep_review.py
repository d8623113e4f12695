"""Review of the queue index and the workers' sweep (lost.lua, sweep.lua): false positives.

The sweep queues a task again when its mark still names an entry that is gone (no TTL, not
delayed). These tests look for tasks that are *not* lost yet look so: a cancelled task
(coord_dequeue deletes its entry and leaves it in the index), a promoted retry whose score
trails its entry, and a queue stream trimmed (``XTRIM``, which ADR 0003 rules out for queues
but an operator may still run) under a live run, whose entry then stays on its pending list:
its worker's ack acknowledges it, so a re-queue made meanwhile queued the task twice (a
second dead letter, a retry scheduled while the re-queued entry also ran it). Also: a sweep
whose reply was lost (re-sent by the client's retry) queues once.

"A worker" that is never run: its claim, finish and acks are sent by hand, as in
test_deleted_stream_review.py.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from deepagents_redis.coord import TaskClient, TaskContext, Worker
from deepagents_redis.coord._common import one
from deepagents_redis.coord._keys import GROUP
from deepagents_redis.coord._scripts import LOST, SWEEP
from deepagents_redis.core import (
    RedisConnector,
    Script,
    _connections,
    arun_operation,
    run_operation,
)

from .conftest import FAST
from .test_deleted_stream_review import (
    AGENT,
    _claimed_by_a_dead_worker,
    _drop_stream,
    _finish,
    _group,
    _left_the_queue,
    _text,
    _until,
)
from .test_lost_replies import _Loss, _patch

pytestmark = pytest.mark.integration


@pytest.fixture
def loss(monkeypatch: pytest.MonkeyPatch) -> _Loss:
    """test_lost_replies' fault: the reply of the first armed script call is dropped."""
    state = _Loss()
    for cls in (_connections.DeadlineConnection, _connections.AsyncDeadlineConnection):
        _patch(monkeypatch, cls, state)
    return state


def _sweep(connector: RedisConnector, worker: Worker, tasks: TaskClient) -> int:
    queue = tasks.keys.queue(AGENT)
    return int(run_operation(connector, "test.sweep", worker._sweep_op(queue), deadline_seconds=10))


def _listed(connector: RedisConnector, tasks: TaskClient) -> list[str]:
    queue = tasks.keys.queue(AGENT)
    script = Script(LOST, [queue.stream, queue.queued], [100])
    return [_text(m) for m in run_operation(connector, "t.lost", one(script), deadline_seconds=10)]


@pytest.mark.parametrize("read", [False, True])
def test_a_cancelled_task_is_not_queued_again_and_leaves_the_index(
    connector: RedisConnector, read: bool
) -> None:
    tasks = TaskClient(connector=connector, **FAST)
    _group(connector, tasks)
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    sweeper = Worker(connector=connector, agents={AGENT: lambda x: x}, **FAST)
    task_id = tasks.submit(AGENT, {})
    if read:  # read by a worker that has not claimed it yet
        raw.xreadgroup(GROUP, "c", {queue.stream: ">"}, count=1)
    assert tasks.cancel(task_id) == "cancelled"
    assert raw.xlen(queue.stream) == 0  # dequeued: its entry deleted, its mark given a TTL
    for _ in range(2):
        assert _sweep(connector, sweeper, tasks) == 0
    assert raw.xlen(queue.stream) == 0
    assert raw.zscore(queue.queued, task_id) is None  # tidied by the sweep
    assert raw.pttl(tasks.keys.mark(queue, task_id)) > 0
    assert tasks.get(task_id).status == "cancelled"


def test_a_promoted_retry_whose_score_trails_its_entry_is_moved_up_not_queued_again(
    connector: RedisConnector,
) -> None:
    tasks = TaskClient(connector=connector, max_attempts=3, **FAST)
    dead, task_id, entry_id, fence, attempt = _claimed_by_a_dead_worker(connector, tasks)
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    _finish(connector, dead, task_id, fence, attempt, "retry", error="RuntimeError: boom")
    retry = dead._ack_plain(queue, entry_id, task_id, "retry", 0.0)
    assert run_operation(connector, "test.retry", one(retry), deadline_seconds=10) == 1
    due = raw.zscore(queue.delayed, task_id)
    assert raw.zscore(queue.queued, task_id) == due

    def later() -> bool:
        sec, usec = raw.time()
        return sec * 1000 + usec // 1000 > due + 1

    _until(later, "the server's clock passed the retry's due time")
    promote = dead._promote_op(queue)
    assert run_operation(connector, "test.promote", promote, deadline_seconds=10) == 1
    (new_entry, _fields) = raw.xrange(queue.stream)[0]
    new_ms = int(_text(new_entry).split("-")[0])
    assert new_ms > due  # its score trails its entry: the stream's first one
    assert _listed(connector, tasks) == [task_id]
    assert _sweep(connector, dead, tasks) == 0
    assert raw.xlen(queue.stream) == 1
    assert raw.zscore(queue.queued, task_id) == new_ms  # moved up: listed no more
    assert _listed(connector, tasks) == []


def _trim_under_a_live_run(connector: RedisConnector, tasks: TaskClient) -> tuple[Any, ...]:
    """Claim a task as a live worker would, then trim the queue (its entry stays pending)."""
    dead, task_id, entry_id, fence, attempt = _claimed_by_a_dead_worker(connector, tasks)
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    raw.xtrim(queue.stream, maxlen=0)
    assert raw.xlen(queue.stream) == 0
    assert raw.xpending(queue.stream, GROUP)["pending"] == 1  # XTRIM leaves the PEL
    return dead, task_id, entry_id, fence, attempt


async def test_a_trimmed_entry_still_pending_is_dead_lettered_once(
    connector: RedisConnector,
) -> None:
    tasks = TaskClient(connector=connector, max_attempts=1, **FAST)
    dead, task_id, entry_id, fence, attempt = await asyncio.to_thread(
        _trim_under_a_live_run, connector, tasks
    )
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    # another worker's sweep runs while the run goes on (its entry still on a pending list)
    await asyncio.to_thread(_sweep, connector, dead, tasks)
    # the run fails for good: its finish, then its dead letter (the worker's own calls)
    await asyncio.to_thread(
        _finish, connector, dead, task_id, fence, attempt, "error", "RuntimeError: boom"
    )
    await dead._dead_letter(queue, entry_id, task_id, reason="failed", error="boom", fence=fence)
    calls: list[Any] = []
    w1 = Worker(connector=connector, agents={AGENT: lambda x: calls.append(x)}, **FAST)

    # whatever the stream still holds is read and handled by a live worker
    async def drain() -> None:
        for entry, fields in [(_text(e), f) for e, f in raw.xrange(queue.stream)]:
            raw.xreadgroup(GROUP, "w1", {queue.stream: ">"}, count=1)
            await w1._handle_entry(AGENT, queue, entry, fields)

    await drain()
    await asyncio.to_thread(_sweep, connector, w1, tasks)
    await drain()
    letters = tasks.dead_letters(AGENT)
    assert [letter["task_id"] for letter in letters] == [task_id]
    assert calls == []
    assert raw.xlen(queue.stream) == 0
    assert raw.zscore(queue.queued, task_id) is None


def test_a_trimmed_entry_still_pending_is_not_queued_besides_its_retry(
    connector: RedisConnector,
) -> None:
    tasks = TaskClient(connector=connector, max_attempts=3, **FAST)
    dead, task_id, entry_id, fence, attempt = _trim_under_a_live_run(connector, tasks)
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    _sweep(connector, dead, tasks)  # another worker's sweep, while the run goes on
    _finish(connector, dead, task_id, fence, attempt, "retry", error="RuntimeError: boom")
    retry = dead._ack_plain(queue, entry_id, task_id, "retry", 3600.0)
    assert run_operation(connector, "test.retry", one(retry), deadline_seconds=10) == 1
    _sweep(connector, dead, tasks)
    # queued once: as the retry the ack scheduled (a promote queues it when due), not also
    # as an entry that runs it at once
    assert raw.zscore(queue.delayed, task_id) is not None
    assert raw.xlen(queue.stream) == 0


def test_a_trimmed_entry_of_a_live_run_is_not_run_twice(
    connector: RedisConnector, worker_factory: Any
) -> None:
    tasks = TaskClient(connector=connector, **FAST)
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    async def slow(_x: Any, ctx: TaskContext) -> str:
        calls.append(ctx.attempt)
        started.set()
        await asyncio.to_thread(release.wait, 60)  # heartbeats go on meanwhile
        return "ok"

    with worker_factory({AGENT: slow}), worker_factory({AGENT: slow}):
        task_id = tasks.submit(AGENT, {})
        assert started.wait(30)
        raw.xtrim(queue.stream, maxlen=0)
        mark = tasks.keys.mark(queue, task_id)
        first = raw.get(mark)

        def swept_or_reclaimed() -> bool:
            # the entry is gone for good (a reclaim dropped it from the pending list) and
            # a sweep queued the task again
            return raw.get(mark) != first and raw.xlen(queue.stream) == 1

        _until(swept_or_reclaimed, "the task was queued again after its entry was trimmed")
        assert calls == [1]
        release.set()
        assert tasks.result(task_id, timeout=30) == "ok"
        _until(_left_the_queue(tasks, task_id), "the re-queued entry was acknowledged")
    assert calls == [1]
    info = tasks.get(task_id)
    assert info.attempts == 1
    assert info.history == []


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_sweep_whose_reply_was_lost_queues_the_task_once(
    connector: RedisConnector, loss: _Loss, mode: str
) -> None:
    tasks = TaskClient(connector=connector, **FAST)
    dead, task_id, _entry, _fence, _attempt = await asyncio.to_thread(
        _claimed_by_a_dead_worker, connector, tasks
    )
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    _drop_stream(raw, queue.stream)
    loss.arm(SWEEP.sha.encode(), b"coord_sweep")
    if mode == "async":
        await arun_operation(connector, "test.sweep", dead._sweep_op(queue), deadline_seconds=10)
    else:
        await asyncio.to_thread(_sweep, connector, dead, tasks)
    assert loss.lost == 1  # the server queued it; the client re-sent the call
    assert raw.xlen(queue.stream) == 1
    assert _text(raw.xrange(queue.stream)[0][1][b"t"]) == task_id
    assert await asyncio.to_thread(_sweep, connector, dead, tasks) == 0
    assert raw.xlen(queue.stream) == 1


def test_an_empty_stream_lists_no_retry_that_is_not_due(connector: RedisConnector) -> None:
    # every entry acknowledged and deleted while a retry waits: the first step of every
    # worker's every sweep listed it (and the second checked it and left it as it was)
    tasks = TaskClient(connector=connector, max_attempts=3, **FAST)
    dead, task_id, entry_id, fence, attempt = _claimed_by_a_dead_worker(connector, tasks)
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    _finish(connector, dead, task_id, fence, attempt, "retry", error="RuntimeError: boom")
    retry = dead._ack_plain(queue, entry_id, task_id, "retry", 3600.0)
    assert run_operation(connector, "test.retry", one(retry), deadline_seconds=10) == 1
    assert raw.xlen(queue.stream) == 0
    assert raw.zscore(queue.queued, task_id) == raw.zscore(queue.delayed, task_id)
    assert _listed(connector, tasks) == []
    assert _sweep(connector, dead, tasks) == 0
    assert raw.zscore(queue.delayed, task_id) is not None


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_cancels_behind_an_old_entry_leave_the_index(
    connector: RedisConnector, mode: str
) -> None:
    # an old entry (a long run, here one never read) stands first in the stream: a sweep
    # lists nothing scored after it, so the cancelled tasks stayed in the index till it went
    tasks = TaskClient(connector=connector, **FAST)
    await asyncio.to_thread(_group, connector, tasks)
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    first = await asyncio.to_thread(tasks.submit, AGENT, {"first": True})
    for n in range(5):
        task_id = await asyncio.to_thread(tasks.submit, AGENT, {"n": n})
        if mode == "async":
            assert await tasks.acancel(task_id) == "cancelled"
        else:
            assert await asyncio.to_thread(tasks.cancel, task_id) == "cancelled"
    assert raw.xlen(queue.stream) == 1
    assert [_text(m) for m in raw.zrange(queue.queued, 0, -1)] == [first]
