"""A task's queue stream deleted under it (and its group made again), then its worker dies.

The pending lists go with the stream, so ``XAUTOCLAIM`` never finds the task again: before
the sweep (lost.lua, sweep.lua) a task whose worker died mid-run stayed ``running``, and one
whose worker died between its finish and its ack (a retry, a hand-back) stayed ``pending``,
for good; one that failed for good was never dead-lettered. The sweep queues such a task
again, once (its mark moves), and the claim does the rest as for any re-delivered entry: it
re-runs the task only once its lease expired (fenced), records the lost attempt, writes the
missing dead letter once, acknowledges an ended task.

"A worker that died" is a `Worker` object that is never run: its claim, finish and
hand-back are sent by hand, exactly as the worker builds them, and then nothing more.
Also pinned: a repeat submit with the same idempotency key of a task whose entry is gone
returns the same task id, queues it once and runs it once.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from deepagents_redis.coord import TaskClient, TaskContext, Worker, _worker
from deepagents_redis.coord._common import one
from deepagents_redis.coord._keys import GROUP
from deepagents_redis.coord._scripts import FINISH, HANDBACK, SWEEP
from deepagents_redis.coord._scripts import GROUP as GROUP_SCRIPT
from deepagents_redis.core import RedisConnector, Script, arun_operation, run_operation
from redis.crc import key_slot

from .conftest import FAST

pytestmark = pytest.mark.integration

AGENT = "lost-entry"


def _until(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _drop_stream(raw: Any, stream: str) -> None:
    """Delete the queue stream and make its group again (as a worker's reader would)."""
    raw.delete(stream)
    try:
        raw.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except Exception as exc:  # a worker's reader made it again first
        if "BUSYGROUP" not in str(exc) and "BUSYGROUP" not in str(exc.__cause__):
            raise


def _group(connector: RedisConnector, tasks: TaskClient) -> None:
    queue = tasks.keys.queue(AGENT)
    run_operation(
        connector,
        "test.group",
        one(Script(GROUP_SCRIPT, [queue.stream], [GROUP])),
        deadline_seconds=10,
    )
    raw = connector.client()
    raw.zadd(tasks.keys.registry, {AGENT: int(time.time() * 1000)})  # as a worker announces


def _claimed_by_a_dead_worker(
    connector: RedisConnector, tasks: TaskClient, **submit: Any
) -> tuple[Worker, str, str, int, int]:
    """Submit a task, read its entry and claim it as a worker that then dies.

    Returns:
        That worker (never run), the task id, the entry id, the run's fence and attempt.
    """
    _group(connector, tasks)
    raw = connector.client()
    queue = tasks.keys.queue(AGENT)
    dead = Worker(connector=connector, agents={AGENT: lambda x: x}, worker_id="dead", **FAST)
    task_id = tasks.submit(AGENT, {}, **submit)
    read = raw.xreadgroup(GROUP, "dead", {queue.stream: ">"}, count=1)
    entry_id = _text(read[0][1][0][0])
    claim, _event = dead._claim(AGENT, task_id, entry_id)
    reply = _worker._claim_reply(
        run_operation(connector, "test.claim", one(claim), deadline_seconds=10)
    )
    assert _text(reply[0]) == "run"
    assert tasks.get(task_id).status == "running"
    return dead, task_id, entry_id, int(reply[1]), int(reply[2])


def _finish(
    connector: RedisConnector,
    dead: Worker,
    task_id: str,
    fence: int,
    attempt: int,
    outcome: str,
    error: str = "",
) -> None:
    """The run's finish, as `Worker._end` sends it (its ack never follows)."""
    keys = dead.keys.task(task_id)
    kind = {"retry": "task.retrying", "error": "task.failed"}[outcome]
    event = dead._encoded(kind, dead.worker_id, task_id, AGENT, keys, attempt=attempt)
    entry = json.dumps({"attempt": attempt, "worker": "dead", "error": error, "at_ms": 0})
    args = [fence, outcome, b"", error, event, 1000, 86_400_000, entry, 10_000, task_id, 3_600_000]
    run_operation(
        connector, "test.finish", one(Script(FINISH, keys.scripted, args)), deadline_seconds=10
    )


def _hand_back(connector: RedisConnector, dead: Worker, task_id: str, fence: int) -> None:
    """A stop's hand-back, as `Worker._hand_back` sends it (its requeue never follows)."""
    keys = dead.keys.task(task_id)
    event = dead._encoded("task.handed_back", dead.worker_id, task_id, AGENT, keys)
    script = Script(HANDBACK, [keys.record, keys.events], [fence, event, 1000])
    assert run_operation(connector, "test.handback", one(script), deadline_seconds=10) == 1


def _left_the_queue(tasks: TaskClient, task_id: str) -> Callable[[], bool]:
    """The task's mark has its TTL and the queue holds nothing of it (index, stream)."""
    raw = tasks._connector.client()
    queue = tasks.keys.queue(AGENT)
    mark = tasks.keys.mark(queue, task_id)
    return lambda: (
        raw.pttl(mark) > 0
        and raw.zscore(queue.queued, task_id) is None
        and raw.xlen(queue.stream) == 0
        and raw.zcard(queue.delayed) == 0
    )


def _two_workers(
    worker_factory: Any, agent: Callable[..., Any], body: Callable[[], None], **options: Any
) -> None:
    """Run `body` with two workers serving `agent` (both sweep, every heartbeat)."""
    with worker_factory({AGENT: agent}, **options), worker_factory({AGENT: agent}, **options):
        body()


@pytest.mark.parametrize("died", ["mid-run", "after-retry-finish", "after-hand-back"])
def test_a_task_whose_stream_was_deleted_and_whose_worker_died_runs_again_once(
    connector: RedisConnector, worker_factory: Any, died: str
) -> None:
    tasks = TaskClient(connector=connector, max_attempts=3, **FAST)
    dead, task_id, _entry, fence, attempt = _claimed_by_a_dead_worker(connector, tasks)
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    _drop_stream(raw, queue.stream)
    if died == "after-retry-finish":
        _finish(connector, dead, task_id, fence, attempt, "retry", error="RuntimeError: boom")
    elif died == "after-hand-back":
        _hand_back(connector, dead, task_id, fence)
    calls: list[int] = []

    def agent(_x: Any, ctx: TaskContext) -> str:
        calls.append(ctx.attempt)
        return "ok"

    def body() -> None:
        # no pending list holds the task, no stream entry names it: only the sweep finds it
        assert tasks.result(task_id, timeout=30) == "ok"
        _until(_left_the_queue(tasks, task_id), "the task's entry was acknowledged")

    _two_workers(worker_factory, agent, body)
    info = tasks.get(task_id)
    assert info.status == "success"
    assert calls == [{"mid-run": 2, "after-retry-finish": 2, "after-hand-back": 1}[died]]
    assert info.attempts == calls[0]
    if died == "mid-run":
        # the dead worker's attempt is recorded as lost, and its token moved on
        assert [h["error"] for h in info.history] == ["worker stopped heartbeating"]
    assert tasks.dead_letters(AGENT) == []


def test_a_task_that_failed_for_good_and_lost_its_stream_is_dead_lettered_once(
    connector: RedisConnector, worker_factory: Any
) -> None:
    # its worker died between the finish ('error', out of attempts) and the dead letter
    tasks = TaskClient(connector=connector, max_attempts=1, **FAST)
    dead, task_id, _entry, fence, attempt = _claimed_by_a_dead_worker(connector, tasks)
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    _drop_stream(raw, queue.stream)
    _finish(connector, dead, task_id, fence, attempt, "error", error="RuntimeError: boom")
    assert tasks.get(task_id).status == "error"
    calls: list[Any] = []

    def body() -> None:
        _until(lambda: len(tasks.dead_letters(AGENT)) >= 1, "the dead letter was written")
        _until(_left_the_queue(tasks, task_id), "the task left the queue")
        # two workers swept all along; a later sweep finds nothing more to do
        swept = run_operation(
            connector, "test.sweep", Worker._sweep_op(dead, queue), deadline_seconds=10
        )
        assert swept == 0

    _two_workers(worker_factory, lambda x: calls.append(x), body)
    letters = tasks.dead_letters(AGENT)
    assert len(letters) == 1
    assert letters[0]["task_id"] == task_id
    assert letters[0]["error"] == "RuntimeError: boom"
    assert calls == []  # ended: never run again
    assert tasks.get(task_id).status == "error"


def test_a_live_workers_task_is_not_run_again_after_its_stream_was_deleted(
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

    def body() -> None:
        task_id = tasks.submit(AGENT, {})
        assert started.wait(30)
        _drop_stream(raw, queue.stream)

        def looked_at_twice() -> bool:
            # the sweep queued it again and a claim found it busy at least twice (its
            # read, then a reclaim): the live lease kept it from running again
            pending = raw.xpending_range(queue.stream, GROUP, "-", "+", 10)
            return any(p["times_delivered"] >= 2 for p in pending)

        _until(looked_at_twice, "the re-queued entry was claimed and found busy twice")
        assert calls == [1]
        assert tasks.get(task_id).status == "running"
        release.set()
        assert tasks.result(task_id, timeout=30) == "ok"
        _until(_left_the_queue(tasks, task_id), "the re-queued entry was acknowledged")
        assert calls == [1]
        assert tasks.get(task_id).attempts == 1
        assert tasks.get(task_id).history == []

    _two_workers(worker_factory, slow, body)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_racing_sweeps_queue_a_lost_task_once(connector: RedisConnector, mode: str) -> None:
    tasks = TaskClient(connector=connector, **FAST)
    _dead, task_id, _entry, _fence, _attempt = await asyncio.to_thread(
        _claimed_by_a_dead_worker, connector, tasks
    )
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    _drop_stream(raw, queue.stream)
    sweepers = [Worker(connector=connector, agents={AGENT: lambda x: x}, **FAST) for _ in range(4)]
    if mode == "async":
        done = await asyncio.gather(
            *(
                arun_operation(connector, "test.sweep", w._sweep_op(queue), deadline_seconds=10)
                for w in sweepers
            )
        )
    else:
        threads_done: list[int] = []

        def sweep(w: Worker) -> None:
            threads_done.append(
                run_operation(connector, "test.sweep", w._sweep_op(queue), deadline_seconds=10)
            )

        threads = [threading.Thread(target=sweep, args=(w,)) for w in sweepers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        done = threads_done
    assert sorted(done) == [0, 0, 0, 1]
    assert raw.xlen(queue.stream) == 1
    entry = raw.xrange(queue.stream)[0]
    assert _text(entry[1][b"t"]) == task_id
    assert _text(raw.get(tasks.keys.mark(queue, task_id))) == _text(entry[0])
    # the same call re-sent after its reply was lost: it checks the mark, queues nothing
    marks = [tasks.keys.mark(queue, task_id)]
    again = Script(SWEEP, [queue.stream, queue.delayed, queue.queued, *marks], [1, GROUP, task_id])
    assert run_operation(connector, "test.again", one(again), deadline_seconds=10) == 0
    assert raw.xlen(queue.stream) == 1


def test_the_sweep_leaves_a_delayed_retry_and_a_task_that_left_the_queue_alone(
    connector: RedisConnector,
) -> None:
    tasks = TaskClient(connector=connector, **FAST)
    dead, task_id, entry_id, fence, attempt = _claimed_by_a_dead_worker(connector, tasks)
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    _drop_stream(raw, queue.stream)
    _finish(connector, dead, task_id, fence, attempt, "retry", error="RuntimeError: boom")
    # the retry's ack lands (its entry on no pending list: the mark still names it)
    retry = dead._ack_plain(queue, entry_id, task_id, "retry", 3600.0)
    assert run_operation(connector, "test.retry", one(retry), deadline_seconds=10) == 1
    due = raw.zscore(queue.delayed, task_id)
    assert due is not None
    for _ in range(2):
        assert run_operation(connector, "s", dead._sweep_op(queue), deadline_seconds=10) == 0
    assert raw.xlen(queue.stream) == 0  # a promote queues it, when due
    assert raw.zscore(queue.delayed, task_id) == due
    # a task queued and run as usual leaves the index with its ack
    other = tasks.submit(AGENT, {"n": 2})
    read = raw.xreadgroup(GROUP, "c", {queue.stream: ">"}, count=1)
    other_entry = _text(read[0][1][0][0])
    assert raw.zscore(queue.queued, other) is not None
    ack = dead._ack_plain(queue, other_entry, other, "ack")
    assert run_operation(connector, "test.ack", one(ack), deadline_seconds=10) == 1
    assert raw.zscore(queue.queued, other) is None
    assert run_operation(connector, "s", dead._sweep_op(queue), deadline_seconds=10) == 0
    assert raw.xlen(queue.stream) == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_repeat_submit_of_a_task_whose_entry_went_with_its_stream(
    connector: RedisConnector, worker_factory: Any, mode: str
) -> None:
    # queued, never read; the stream deleted: the repeat submit returns the same task id and
    # queues it once, however often it is repeated; it runs once (the sweeps race with it)
    tasks = TaskClient(connector=connector, **FAST)
    await asyncio.to_thread(_group, connector, tasks)
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()

    async def submit() -> str:
        if mode == "async":
            return await tasks.asubmit(AGENT, {"q": 1}, idempotency_key="k-lost")
        return await asyncio.to_thread(tasks.submit, AGENT, {"q": 1}, idempotency_key="k-lost")

    task_id = await submit()
    _drop_stream(raw, queue.stream)
    assert await submit() == task_id
    assert await submit() == task_id
    assert raw.xlen(queue.stream) == 1
    calls: list[Any] = []

    def body() -> None:
        assert tasks.result(task_id, timeout=30) == {"q": 1}
        _until(_left_the_queue(tasks, task_id), "the task left the queue")

    await asyncio.to_thread(_two_workers, worker_factory, lambda x: calls.append(x) or x, body)
    assert calls == [{"q": 1}]
    assert tasks.get(task_id).attempts == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_repeat_submit_of_a_running_task_whose_worker_died_with_its_stream(
    connector: RedisConnector, worker_factory: Any, mode: str
) -> None:
    # the repeat submit finds the task running and returns its id, queuing nothing; the
    # sweep queues it again, and it runs once more when the dead worker's lease ran out
    tasks = TaskClient(connector=connector, **FAST)
    _dead, task_id, _entry, _fence, _attempt = await asyncio.to_thread(
        _claimed_by_a_dead_worker, connector, tasks, idempotency_key="k-dead"
    )
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    _drop_stream(raw, queue.stream)
    if mode == "async":
        again = await tasks.asubmit(AGENT, {}, idempotency_key="k-dead")
    else:
        again = await asyncio.to_thread(tasks.submit, AGENT, {}, idempotency_key="k-dead")
    assert again == task_id
    assert raw.xlen(queue.stream) == 0
    calls: list[int] = []

    def agent(_x: Any, ctx: TaskContext) -> str:
        calls.append(ctx.attempt)
        return "ok"

    def body() -> None:
        assert tasks.result(task_id, timeout=30) == "ok"
        _until(_left_the_queue(tasks, task_id), "the task left the queue")

    await asyncio.to_thread(_two_workers, worker_factory, agent, body)
    assert calls == [2]


def test_every_key_of_the_sweep_is_in_one_slot(connector: RedisConnector) -> None:
    tasks = TaskClient(connector=connector, **FAST)
    queue = tasks.keys.queue(AGENT)
    keys = [queue.stream, queue.delayed, queue.queued, tasks.keys.mark(queue, "0" * 32)]
    assert len({key_slot(k.encode()) for k in keys}) == 1


def test_a_repeat_submit_of_a_retry_whose_ack_never_came_queues_it_once(
    connector: RedisConnector, worker_factory: Any
) -> None:
    # the first attempt failed and its worker died before its 'retry' ack, the stream
    # deleted: the repeat submit queues the task (its mark named no entry, it was not
    # delayed), and the late ack then schedules nothing (the mark moved on)
    tasks = TaskClient(connector=connector, max_attempts=3, **FAST)
    dead, task_id, entry_id, fence, attempt = _claimed_by_a_dead_worker(
        connector, tasks, idempotency_key="k-retry"
    )
    queue = tasks.keys.queue(AGENT)
    raw = connector.client()
    _drop_stream(raw, queue.stream)
    _finish(connector, dead, task_id, fence, attempt, "retry", error="RuntimeError: boom")
    assert tasks.get(task_id).status == "pending"
    assert tasks.submit(AGENT, {}, idempotency_key="k-retry") == task_id
    assert tasks.submit(AGENT, {}, idempotency_key="k-retry") == task_id
    assert raw.xlen(queue.stream) == 1
    late = dead._ack_plain(queue, entry_id, task_id, "retry", 3600.0)
    assert run_operation(connector, "test.late", one(late), deadline_seconds=10) == 0
    assert raw.zcard(queue.delayed) == 0
    calls: list[int] = []

    def agent(_x: Any, ctx: TaskContext) -> str:
        calls.append(ctx.attempt)
        return "ok"

    def body() -> None:
        assert tasks.result(task_id, timeout=30) == "ok"
        _until(_left_the_queue(tasks, task_id), "the task left the queue")

    _two_workers(worker_factory, agent, body)
    assert calls == [2]
