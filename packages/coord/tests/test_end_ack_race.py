"""A run's end is its finish, then its queue entry's ack: two calls on a Cluster.

An entry re-delivered between the two (its worker died there, or another worker took the
entry over just then) must not run the task again, and the late ack must not queue it twice.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from deepagents_redis.coord import TaskClient, TaskContext, Worker, _worker
from deepagents_redis.coord._common import one
from deepagents_redis.core import RedisConnector, Script, run_operation

from .conftest import FAST

pytestmark = pytest.mark.integration

# a retry's backoff long enough that only the test makes it due
SLOW_RETRY = {"backoff_base_seconds": 3600, "backoff_cap_seconds": 3600}


@pytest.fixture(autouse=True)
def _an_hour_of_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every retry waits an hour exactly (no jitter): only the test makes one due."""
    monkeypatch.setattr(_worker, "jittered_backoff", lambda *_args: 3600.0)


def _until(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def _withhold_first(monkeypatch: pytest.MonkeyPatch, mode: str) -> list[Script]:
    """The first `mode` ack a worker sends after a finish does nothing; returned for later.

    Stands for a worker that died between its finish and its ack (or whose ack is late):
    the entry stays pending and is re-delivered once it has been idle for a heartbeat.
    """
    held: list[Script] = []
    real = Worker._ack_plain

    def ack_plain(self: Worker, queue: Any, entry_id: str, task_id: str, *args: Any) -> Script:
        script = real(self, queue, entry_id, task_id, *args)
        if args and args[0] == mode and not held:
            held.append(script)
            return real(self, queue, "", task_id, "ack")  # acknowledges nothing
        return script

    monkeypatch.setattr(Worker, "_ack_plain", ack_plain)
    return held


def test_a_retry_re_delivered_before_its_ack_keeps_its_backoff_and_runs_once(
    connector: RedisConnector, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The entry was claimed again as a plain pending task: attempt 2 ran at once, without
    # the retry's backoff (here an hour).
    held = _withhold_first(monkeypatch, "retry")
    tasks = TaskClient(connector=connector, **FAST)
    calls: list[int] = []

    def flaky(_x: Any, ctx: TaskContext) -> str:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    raw = connector.client()
    with worker_factory({"flaky": flaky}, **SLOW_RETRY):
        task_id = tasks.submit("flaky", {})
        queue = tasks.keys.queue("flaky")
        _until(lambda: bool(held), "the first attempt failed and its ack was withheld")
        _until(
            lambda: (
                raw.zscore(queue.delayed, task_id) is not None
                or tasks.get(task_id).status != "pending"
            ),
            "the re-delivered entry is rescheduled (or run)",
        )
        assert calls == [1]
        info = tasks.get(task_id)
        assert (info.status, info.attempts) == ("pending", 1)
        assert raw.xlen(queue.stream) == 0  # the entry is acknowledged and deleted
        assert raw.zscore(queue.delayed, task_id) > time.time() * 1000 + 3_000_000
        raw.zadd(queue.delayed, {task_id: 0})  # its backoff is over
        assert tasks.result(task_id, timeout=30) == "ok"
    assert calls == [1, 2]


def test_a_late_retry_ack_after_a_re_delivery_does_not_queue_the_task_twice(
    connector: RedisConnector, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The failed attempt's worker acks its entry (rescheduling the retry) after the entry
    # was re-delivered and rescheduled, promoted and run: its ack queued the task a second
    # time, and the task that failed for good was dead-lettered twice.
    held = _withhold_first(monkeypatch, "retry")
    tasks = TaskClient(connector=connector, max_attempts=2, **FAST)
    calls: list[int] = []

    def fails(_x: Any, ctx: TaskContext) -> str:
        calls.append(ctx.attempt)
        raise RuntimeError(f"attempt {ctx.attempt} fails")

    raw = connector.client()
    with worker_factory({"fails": fails}, **SLOW_RETRY):
        task_id = tasks.submit("fails", {})
        queue = tasks.keys.queue("fails")
        _until(lambda: bool(held), "the first attempt failed and its ack was withheld")
        _until(
            lambda: (
                raw.zscore(queue.delayed, task_id) is not None
                or tasks.get(task_id).status != "pending"
            ),
            "the re-delivered entry is rescheduled (or run)",
        )
        if raw.zscore(queue.delayed, task_id) is not None:
            raw.zadd(queue.delayed, {task_id: 0})  # its backoff is over
        info = tasks.join(task_id, timeout=30)
        assert info.status == "error"
        _until(lambda: len(tasks.dead_letters("fails")) == 1, "the task is dead-lettered")
        # now the first attempt's ack arrives
        run_operation(connector, "test.late_ack", one(held[0]), deadline_seconds=10)
        assert raw.zcard(queue.delayed) == 0
        assert raw.xlen(queue.stream) == 0
    assert calls == [1, 2]
    assert len(tasks.dead_letters("fails")) == 1


def test_a_hand_back_re_delivered_before_its_ack_is_queued_once(
    connector: RedisConnector, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stop handed the task back; its ack (which queues it under a new entry) was late:
    # the old entry was re-delivered and run, and the late ack queued the task again after
    # that run had ended it (here: failed for good and dead-lettered, then once more).
    held: list[Any] = []
    real_ack = Worker._ack

    async def ack(
        self: Worker, queue: Any, entry_id: str, task_id: str, mode: str, **kw: Any
    ) -> None:
        if mode == "requeue" and not held:
            held.append((queue, entry_id, kw))
            return  # withheld: sent by the test later
        await real_ack(self, queue, entry_id, task_id, mode, **kw)

    monkeypatch.setattr(Worker, "_ack", ack)
    tasks = TaskClient(connector=connector, max_attempts=1, **FAST)
    started = threading.Event()
    calls: list[int] = []

    async def waits(_x: Any, ctx: TaskContext) -> str:
        calls.append(ctx.attempt)
        started.set()
        await asyncio.sleep(60)  # cancelled by the stop
        return "ok"

    def fails(_x: Any, ctx: TaskContext) -> str:
        calls.append(ctx.attempt)
        raise RuntimeError("fails for good")

    raw = connector.client()
    queue = tasks.keys.queue("handed")
    with worker_factory({"handed": waits}, stop_grace_seconds=0) as first:
        task_id = tasks.submit("handed", {})
        assert started.wait(30)
        first.stop()
    assert held, "the hand-back's ack was withheld"
    assert tasks.get(task_id).status == "pending"
    with worker_factory({"handed": fails}) as second:
        # the old entry, idle for a heartbeat, is re-delivered to this worker
        assert tasks.join(task_id, timeout=30).status == "error"
        _until(lambda: raw.xlen(queue.stream) == 0, "the task's entry is dead-lettered")
        # now the first worker's ack arrives
        late_queue, entry_id, kw = held[0]
        assert second._loop is not None
        asyncio.run_coroutine_threadsafe(
            real_ack(second, late_queue, entry_id, task_id, "requeue", **kw), second._loop
        ).result(30)
        assert raw.xlen(queue.stream) == 0  # not queued again
    assert calls == [1, 1]
    assert len(tasks.dead_letters("handed")) == 1


def test_a_failed_run_re_delivered_before_its_dead_letter_is_dead_lettered_once(
    connector: RedisConnector, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run that fails for good ends in two calls: the finish, then the dead letter. When
    # the entry was re-delivered between the two (a slow worker: the entry had been idle for
    # a heartbeat), the claim read the task as failed and dead-lettered it, and the run's
    # own dead letter, landing after, wrote a second one (seen on a loaded CI machine).
    real = Worker._dead_letter
    raw = connector.client()
    held: list[str] = []
    sent: list[str] = []

    async def late_dead_letter(self: Worker, queue: Any, entry_id: str, *a: Any, **kw: Any) -> None:
        if kw.get("fence") and not held:  # the run's own dead letter (a claim's has fence 0)
            held.append(entry_id)

            def claimed_first() -> bool:
                deadline = time.monotonic() + 30
                while raw.xlen(queue.dlq) == 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
                return raw.xlen(queue.dlq) == 1

            assert await asyncio.to_thread(claimed_first), "the re-delivery dead-lettered it"
        await real(self, queue, entry_id, *a, **kw)
        if kw.get("fence"):
            sent.append(entry_id)

    monkeypatch.setattr(Worker, "_dead_letter", late_dead_letter)
    tasks = TaskClient(connector=connector, max_attempts=1, **FAST)
    calls: list[int] = []

    def fails(_x: Any, ctx: TaskContext) -> str:
        calls.append(ctx.attempt)
        raise RuntimeError("fails for good")

    queue = tasks.keys.queue("once-dead")
    with worker_factory({"once-dead": fails}):
        task_id = tasks.submit("once-dead", {})
        assert tasks.join(task_id, timeout=30).status == "error"
        _until(lambda: sent == held != [], "the run's own dead letter was sent, late")
    assert calls == [1]
    letters = tasks.dead_letters("once-dead")
    assert [letter["task_id"] for letter in letters] == [task_id]
    assert raw.xlen(queue.stream) == 0
