"""Edge cases of `TaskClient` found in review: each a failure a production caller would hit."""

from __future__ import annotations

import threading
from typing import Any

import msgpack
import pytest
import redis
from deepagents_redis.coord import ResultTimeoutError, TaskClient, TaskFailedError
from deepagents_redis.coord._keys import GROUP
from deepagents_redis.coord._scripts import CLAIM, HEARTBEAT
from deepagents_redis.coord._scripts import GROUP as GROUP_SCRIPT
from deepagents_redis.core import BackpressureError


@pytest.mark.parametrize("wait", [0, -1.0])
async def test_a_zero_timeout_wait_reports_a_task_that_already_ended(
    connector: Any, wait: float
) -> None:
    # `result(task_id, timeout=0)` is the non-blocking look ("is it done yet?"). A task this
    # client submitted was reported as still pending without being looked at, even after it
    # had ended.
    tasks = TaskClient(connector=connector, check_agents=False)
    task_id = tasks.submit("nobody-serves-this", {"n": 1})
    assert tasks.cancel(task_id) == "cancelled"
    with pytest.raises(TaskFailedError, match="cancelled"):
        tasks.result(task_id, timeout=wait)
    again = tasks.submit("nobody-serves-this", {"n": 2})
    tasks.cancel(again)
    assert (await tasks.ajoin(again, timeout=wait)).status == "cancelled"
    third = tasks.submit("nobody-serves-this", {"n": 3})
    tasks.cancel(third)
    assert tasks.join(third, timeout=wait).status == "cancelled"
    # and a task still waiting is reported as waiting, at once
    waiting = tasks.submit("nobody-serves-this", {"n": 4})
    with pytest.raises(ResultTimeoutError, match="still pending"):
        tasks.result(waiting, timeout=wait)
    with pytest.raises(ResultTimeoutError, match="still pending"):
        await tasks.aresult(waiting, timeout=wait)
    tasks.cancel(waiting)


def test_a_retry_refused_by_a_full_backlog_changes_nothing(
    connector: Any, worker_factory: Any
) -> None:
    # `retry` reset the record to pending before asking the queue for room: refused, it left
    # a pending task on no queue, which nothing would run and a second retry refused
    # ("task is pending").
    state = {"fail": True}

    def flaky(_x: Any) -> str:
        if state["fail"]:
            raise RuntimeError("not yet")
        return "ok"

    tasks = TaskClient(connector=connector, check_agents=False)
    with worker_factory({"flaky": flaky}, max_attempts=1):
        task_id = tasks.submit("flaky", {})
        with pytest.raises(TaskFailedError):
            tasks.result(task_id, timeout=10)
    before = tasks.get(task_id)
    raw = connector.client()
    keys = tasks.keys.task(task_id)
    full = TaskClient(connector=connector, check_agents=False, max_backlog=1)
    filler = full.submit("flaky", {"filler": True})  # no worker now: the backlog is full
    with pytest.raises(BackpressureError):
        full.retry(task_id)
    after = tasks.get(task_id)
    assert (after.status, after.attempts, after.ended_at, after.error) == (
        before.status,
        before.attempts,
        before.ended_at,
        before.error,
    )
    assert tasks.join(task_id, timeout=0).status == "error"  # its end list is back
    assert raw.pttl(keys.record) > 0  # and it expires again
    assert raw.pttl(keys.done) > 0
    # with room, the same retry runs it
    state["fail"] = False
    roomy = TaskClient(connector=connector, check_agents=False, max_backlog=10)
    assert roomy.retry(task_id) == task_id
    with worker_factory({"flaky": flaky}, max_attempts=1):
        assert tasks.result(task_id, timeout=10) == "ok"
        assert tasks.result(filler, timeout=10) == "ok"


def test_a_refused_submit_never_removes_a_task_another_submit_queued(
    connector: Any, monkeypatch: Any
) -> None:
    # Two submits with one idempotency key while the backlog is full: the first creates the
    # record and, refused, removes it; if the second queued that task between the first's
    # refusal and its removal, the queue held a task whose record was gone, and the id the
    # second submit returned was unknown (NotFoundError).
    from deepagents_redis.coord import _client
    from deepagents_redis.core import Script

    full = TaskClient(connector=connector, check_agents=False, max_backlog=1)
    roomy = TaskClient(connector=connector, check_agents=False, max_backlog=10)
    full.submit("racy", {"filler": True})
    queued: list[str] = []
    original = TaskClient._submit_op

    def racing(self: TaskClient, *args: Any, **kwargs: Any) -> Any:
        op = original(self, *args, **kwargs)
        reply: Any = None
        while True:
            try:
                request = op.send(reply)
            except StopIteration as stop:
                return stop.value
            if self is full and isinstance(request, Script) and request.script is _client.ABANDON:
                queued.append(roomy.submit("racy", {"n": 1}, idempotency_key="same"))
            reply = yield request

    monkeypatch.setattr(TaskClient, "_submit_op", racing)
    with pytest.raises(BackpressureError):
        full.submit("racy", {"n": 1}, idempotency_key="same")
    [task_id] = queued
    assert full.get(task_id).status == "pending"  # the record the queue entry points at
    assert [t["task_id"] for t in full.active("racy")][-1] == task_id
    assert full.submit("racy", {"n": 1}, idempotency_key="same") == task_id


def test_cancelling_waiting_tasks_makes_room_in_the_backlog(connector: Any) -> None:
    # Under overload a producer cancels the work nobody needs any more to make room: the
    # cancelled tasks stayed on the queue (and in the backlog) until a worker with a free
    # slot read them, so every submit kept failing with BackpressureError.
    small = TaskClient(connector=connector, check_agents=False, max_backlog=2)
    ids = [small.submit("busy", {"i": i}) for i in range(2)]
    with pytest.raises(BackpressureError):
        small.submit("busy", {"i": 2})
    assert [small.cancel(task_id) for task_id in ids] == ["cancelled", "cancelled"]
    assert small.active("busy") == []
    fresh = small.submit("busy", {"i": 3})
    assert [t["task_id"] for t in small.active("busy")] == [fresh]
    assert small.cancel(ids[0]) == "cancelled"  # again: nothing more to remove
    assert small.cancel(fresh) == "cancelled"


def _queued(connector: Any, tasks: TaskClient, agent: str) -> int:
    """Entries on `agent`'s queue (waiting or read) plus its delayed retries: the backlog."""
    queue = tasks.keys.queue(agent)
    raw = connector.client()
    return int(raw.xlen(queue.stream)) + int(raw.zcard(queue.delayed))


def _failed_once(tasks: TaskClient, worker_factory: Any, agent: str) -> str:
    """A task whose first attempt failed: now a delayed retry, due in about an hour."""
    failed = threading.Event()

    def fails(_x: Any) -> str:
        failed.set()
        raise RuntimeError("not yet")

    with worker_factory(
        {agent: fails}, max_attempts=3, backoff_base_seconds=3600, backoff_cap_seconds=3600
    ):
        task_id = tasks.submit(agent, {})
        assert failed.wait(10)
        _until(lambda: tasks.get(task_id).attempts == 1, "the first attempt ended")
    return task_id


def _until(check: Any, what: str) -> None:
    for _ in range(400):
        if check():
            return
        threading.Event().wait(0.025)
    raise AssertionError(f"timed out waiting until {what}")


async def test_cancelling_a_task_whose_retry_came_due_takes_it_off_the_queue(
    connector: Any, worker_factory: Any
) -> None:
    # A due retry was moved to the queue as a new entry, but the task's enqueue mark still
    # named the entry it was first queued as: a cancel before a worker read the new entry
    # left it there, holding a place in the backlog, so cancelling stale work under
    # overload made no room.
    from deepagents_redis.coord import Worker

    tasks = TaskClient(connector=connector, check_agents=False)
    task_id = _failed_once(tasks, worker_factory, "later")
    queue = tasks.keys.queue("later")
    raw = connector.client()
    assert raw.zscore(queue.delayed, task_id) is not None
    raw.zadd(queue.delayed, {task_id: 0})  # due now; no worker runs to read it
    idle = Worker(connector=connector, agents={"later": lambda _x: "ok"})
    assert await idle._op("coord.promote", idle._promote_op(queue)) == 1
    assert await idle._op("coord.promote", idle._promote_op(queue)) == 0  # moved once
    assert raw.xlen(queue.stream) == 1
    assert tasks.cancel(task_id) == "cancelled"
    assert _queued(connector, tasks, "later") == 0


def test_cancelling_a_task_an_operator_retried_takes_it_off_the_queue(
    connector: Any, worker_factory: Any
) -> None:
    # `retry()` queued the task again under a mark of its own; the task's mark, the one a
    # cancel reads, still named the first entry, so the retried task stayed queued.
    tasks = TaskClient(connector=connector, check_agents=False)
    with worker_factory({"once": _raises}, max_attempts=1):
        task_id = tasks.submit("once", {})
        with pytest.raises(TaskFailedError):
            tasks.result(task_id, timeout=10)
    assert _queued(connector, tasks, "once") == 0
    assert tasks.retry(task_id) == task_id
    assert _queued(connector, tasks, "once") == 1
    assert tasks.cancel(task_id) == "cancelled"
    assert _queued(connector, tasks, "once") == 0


def test_cancelling_a_handed_back_task_takes_it_off_the_queue(
    hand_back: Any, connector: Any
) -> None:
    # A stop hands a running task back as a new queue entry; the mark still named the
    # entry the stopped worker had read and acknowledged, so a cancel left the new one.
    tasks, task_id = hand_back("slow")
    _until(lambda: tasks.get(task_id).status == "pending", "the task is handed back")
    assert _queued(connector, tasks, "slow") == 1
    assert tasks.cancel(task_id) == "cancelled"
    assert _queued(connector, tasks, "slow") == 0


def _raises(_x: Any) -> str:
    raise RuntimeError("boom")


async def test_operator_methods_have_async_twins_that_agree(
    connector: Any, worker_factory: Any
) -> None:
    # `retry`, `agents`, `workers`, `dead_letters` and `active` were sync only: an asyncio
    # service (a dashboard, an operator API) had to block its loop on them.
    tasks = TaskClient(connector=connector, check_agents=False)
    with worker_factory({"dead": _raises}, max_attempts=1):
        task_id = tasks.submit("dead", {})
        with pytest.raises(TaskFailedError):
            await tasks.aresult(task_id, timeout=10)
        assert await tasks.aagents() == tasks.agents() == ["dead"]
        assert await tasks.aworkers() == tasks.workers()
        assert len(await tasks.aworkers()) == 1
    letters = await tasks.adead_letters("dead")
    assert letters == tasks.dead_letters("dead") == await tasks.adead_letters()
    assert [letter["task_id"] for letter in letters] == [task_id]
    assert await tasks.aactive() == tasks.active() == []
    assert await tasks.aretry(task_id) == task_id
    assert (
        await tasks.aactive("dead")
        == tasks.active()
        == [{"task_id": task_id, "agent": "dead", "queued": "queue"}]
    )
    assert (await tasks.aget(task_id)).status == "pending"
    assert await tasks.acancel(task_id) == "cancelled"


@pytest.mark.parametrize("count", [0, -1, 1.5, True, "10"])
async def test_a_listing_count_that_is_not_a_positive_int_is_refused(
    connector: Any, count: Any
) -> None:
    # `active(count=0)` listed every delayed retry (``ZRANGE 0 -1``) and a negative count
    # was a raw server error; each is now refused before any call.
    from deepagents_redis.core import InvalidInputError

    tasks = TaskClient(connector=connector, check_agents=False)
    for call in (tasks.active, tasks.dead_letters):
        with pytest.raises(InvalidInputError, match="count"):
            call("a", count=count)
    for acall in (tasks.aactive, tasks.adead_letters):
        with pytest.raises(InvalidInputError, match="count"):
            await acall("a", count=count)


async def test_promotion_moves_members_that_are_not_task_ids_without_stalling(
    connector: Any, worker_factory: Any
) -> None:
    # Someone else's members in the delayed set (not UTF-8, not a task id, huge): each is
    # moved to the queue like any due retry (its reader dead-letters it), with no mark, and
    # the due retry beside them is moved with its mark. Left behind, such members would sit
    # first in the listed page for ever and, a page of them, stop every promotion.
    from deepagents_redis.coord import Worker

    tasks = TaskClient(connector=connector, check_agents=False)
    task_id = _failed_once(tasks, worker_factory, "mixed")
    queue = tasks.keys.queue("mixed")
    raw = connector.client()
    hostile = [b"\xff\xfe-not-utf8", b"X" * 32, b"y" * 100_000]
    raw.zadd(queue.delayed, {task_id: 1, **{member: 0 for member in hostile}})
    idle = Worker(connector=connector, agents={"mixed": lambda _x: "ok"})
    assert await idle._op("coord.promote", idle._promote_op(queue)) == 4
    assert raw.zcard(queue.delayed) == 0
    moved = [fields[b"t"] for _eid, fields in raw.xrange(queue.stream)]
    assert sorted(moved) == sorted([*hostile, task_id.encode()])
    assert tasks.cancel(task_id) == "cancelled"  # its mark followed it
    assert task_id.encode() not in [f[b"t"] for _eid, f in raw.xrange(queue.stream)]


def _claimed_by_a_worker_that_dies(
    connector: Any, tasks: TaskClient, agent: str, lease_ms: int
) -> tuple[str, int]:
    """A task a worker ("doomed") read and claimed with a `lease_ms` lease, then never renewed
    (the worker died): (task id, its fencing token)."""
    task_id = tasks.submit(agent, {"n": 1})
    queue, keys = tasks.keys.queue(agent), tasks.keys.task(task_id)
    raw = connector.client()
    GROUP_SCRIPT(raw, keys=[queue.stream], args=[GROUP])
    raw.xreadgroup(GROUP, "doomed", {queue.stream: ">"}, count=1)
    started = tasks._encoded("task.started", "doomed", task_id, agent, keys)
    reply = CLAIM(raw, keys=keys.scripted, args=["doomed", lease_ms, started, 10, b"", 60_000])
    unpacked = msgpack.unpackb(reply, raw=True)
    assert unpacked[0] == b"run"
    return task_id, int(unpacked[1])


def _lease_ran_out(connector: Any, tasks: TaskClient, task_id: str) -> bool:
    """Whether the task's lease ran out, by the server's clock (the one the scripts use)."""
    raw = connector.client()
    until = int(raw.hget(tasks.keys.task(task_id).record, "lease_until") or 0)
    secs, micros = raw.time()
    return secs * 1000 + micros // 1000 > until


@pytest.mark.parametrize("use_async", [False, True])
async def test_cancelling_a_task_whose_worker_died_ends_it_at_once(
    connector: Any, use_async: bool
) -> None:
    # A running task's cancel only set the flag its worker reads at its next heartbeat. With
    # the worker dead the task stayed 'cancelling', and every join waited, until another
    # worker took its entry over after the lease: never, when none serves the agent.
    tasks = TaskClient(connector=connector, check_agents=False)
    agent = f"dies-{use_async}"
    task_id, fence = _claimed_by_a_worker_that_dies(connector, tasks, agent, lease_ms=1)
    _until(lambda: _lease_ran_out(connector, tasks, task_id), "the lease runs out")
    status = await tasks.acancel(task_id) if use_async else tasks.cancel(task_id)
    assert status == "cancelled"
    info = tasks.join(task_id, timeout=0)
    assert info.status == "cancelled"
    assert [(h["worker"], h["error"]) for h in info.history] == [
        ("doomed", "worker stopped heartbeating")
    ]
    kinds = [e.type.rsplit(".", 1)[-1] for _, e in tasks.events(task_id)]
    assert kinds == ["submitted", "started", "cancelled"]
    assert _queued(connector, tasks, agent) == 0  # its entry is off the queue
    # the worker, should it come back, writes nothing more (its token moved on)
    keys, raw = tasks.keys.task(task_id), connector.client()
    with pytest.raises(redis.exceptions.ResponseError, match="FENCED"):
        HEARTBEAT(raw, keys=[keys.record], args=[fence, 60_000])
    assert tasks.cancel(task_id) == "cancelled"
    assert tasks.get(task_id).status == "cancelled"


def test_cancelling_a_task_under_a_live_lease_asks_its_worker(connector: Any) -> None:
    # Within the lease a dead worker cannot be told from a live one: the cancel is the
    # worker's to carry out (it reads the flag at its next heartbeat).
    tasks = TaskClient(connector=connector, check_agents=False)
    task_id, fence = _claimed_by_a_worker_that_dies(connector, tasks, "lives", lease_ms=600_000)
    assert tasks.cancel(task_id) == "cancelling"
    info = tasks.get(task_id)
    assert (info.status, info.cancel_requested, info.history) == ("running", True, [])
    raw = connector.client()
    assert HEARTBEAT(raw, keys=[tasks.keys.task(task_id).record], args=[fence, 1]) == 1
