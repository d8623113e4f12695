"""`coord_ack`'s 'dead' and 'requeue' when the entry is not (or no longer) on the pending list.

Since d726382 they add the dead letter / the new queue entry only when their own XACK took
the entry off the pending list (so a late second call for the same entry adds nothing). These
are the cases where the entry's pending record moved, or its stream entry went, and the
task must still be queued once or dead-lettered once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from deepagents_redis.coord import TaskClient, TaskContext, Worker
from deepagents_redis.coord._keys import GROUP
from deepagents_redis.core import RedisConnector

from .conftest import FAST, handed_back

pytestmark = pytest.mark.integration


def _until(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def _pending(raw: Any, stream: str) -> int:
    return int(raw.xpending(stream, GROUP)["pending"])


def _drop_stream(raw: Any, stream: str) -> None:
    """Delete the queue stream (and its group), then make the group again, as a reader does."""
    raw.delete(stream)
    try:
        raw.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except Exception as exc:  # a worker's reader made it again first
        if "BUSYGROUP" not in str(exc) and "BUSYGROUP" not in str(exc.__cause__):
            raise


def _before_requeue(
    monkeypatch: pytest.MonkeyPatch, act: Callable[[Any, str], None]
) -> list[tuple[str, bool]]:
    """Run `act(queue, entry_id)` just before the first 'requeue' ack; its (entry, reply)."""
    real = Worker._ack
    sent: list[tuple[str, bool]] = []

    async def ack(
        self: Worker, queue: Any, entry_id: str, task_id: str, mode: str, **kw: Any
    ) -> bool:
        if mode == "requeue" and not sent:
            await asyncio.to_thread(act, queue, entry_id)
            done = await real(self, queue, entry_id, task_id, mode, **kw)
            sent.append((entry_id, done))
            return done
        return await real(self, queue, entry_id, task_id, mode, **kw)

    monkeypatch.setattr(Worker, "_ack", ack)
    return sent


def _before_run_dead_letter(
    monkeypatch: pytest.MonkeyPatch, act: Callable[[Any, str], None]
) -> list[str]:
    """Run `act(queue, entry_id)` just before a run's own dead letter (one with a fence)."""
    real = Worker._dead_letter
    sent: list[str] = []

    async def dead_letter(self: Worker, queue: Any, entry_id: str, *a: Any, **kw: Any) -> None:
        if kw.get("fence") and not sent:
            await asyncio.to_thread(act, queue, entry_id)
            await real(self, queue, entry_id, *a, **kw)
            sent.append(entry_id)
            return
        await real(self, queue, entry_id, *a, **kw)

    monkeypatch.setattr(Worker, "_dead_letter", dead_letter)
    return sent


def _fails(calls: list[int]) -> Callable[[Any, TaskContext], str]:
    def fails(_x: Any, ctx: TaskContext) -> str:
        calls.append(ctx.attempt)
        raise RuntimeError("fails for good")

    return fails


# ------------------------------------------------------------------ the pending record moved


def test_a_hand_back_whose_entry_another_consumer_holds_is_queued_once(
    connector: RedisConnector, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every heartbeat a reader XAUTOCLAIMs entries idle that long, a live worker's long run
    # included (its claim answers 'busy'): the run's entry is routinely pending under another
    # consumer when the run ends. XACK takes it off the group's list whoever holds it, so the
    # hand-back's ack still re-queues the task.
    raw = connector.client()
    sent = _before_requeue(
        monkeypatch,
        lambda queue, entry_id: raw.xclaim(queue.stream, GROUP, "someone-else", 0, [entry_id]),
    )
    tasks, task_id = handed_back(connector, "moved-back")
    queue = tasks.keys.queue("moved-back")
    assert [done for _entry, done in sent] == [True]
    assert tasks.get(task_id).status == "pending"
    assert raw.xlen(queue.stream) == 1  # queued again, once
    assert _pending(raw, queue.stream) == 0
    with worker_factory({"moved-back": lambda _x: "ok"}):
        assert tasks.result(task_id, timeout=30) == "ok"
    assert raw.xlen(queue.stream) == 0


def test_a_failed_run_whose_entry_another_consumer_holds_is_dead_lettered_once(
    connector: RedisConnector, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = connector.client()
    sent = _before_run_dead_letter(
        monkeypatch,
        lambda queue, entry_id: raw.xclaim(queue.stream, GROUP, "someone-else", 0, [entry_id]),
    )
    tasks = TaskClient(connector=connector, max_attempts=1, **FAST)
    calls: list[int] = []
    queue = tasks.keys.queue("moved-dead")
    with worker_factory({"moved-dead": _fails(calls)}):
        task_id = tasks.submit("moved-dead", {})
        assert tasks.join(task_id, timeout=30).status == "error"
        _until(lambda: bool(sent), "the run's dead letter was sent")
    assert calls == [1]
    assert [letter["task_id"] for letter in tasks.dead_letters("moved-dead")] == [task_id]
    assert raw.xlen(queue.stream) == 0
    assert _pending(raw, queue.stream) == 0


# ------------------------------------------------------------------ the stream entry went


@pytest.mark.parametrize("how", ["xdel", "xtrim"])
def test_a_failed_run_whose_entry_was_deleted_while_pending_is_dead_lettered_once(
    connector: RedisConnector, worker_factory: Any, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # XDEL and XTRIM leave the pending record: XACK still takes it off, the letter is written.
    raw = connector.client()

    def delete(queue: Any, entry_id: str) -> None:
        if how == "xdel":
            assert raw.xdel(queue.stream, entry_id) == 1
        else:
            raw.xtrim(queue.stream, maxlen=0, approximate=False)
        assert _pending(raw, queue.stream) == 1

    sent = _before_run_dead_letter(monkeypatch, delete)
    tasks = TaskClient(connector=connector, max_attempts=1, **FAST)
    calls: list[int] = []
    with worker_factory({"gone-dead": _fails(calls)}):
        task_id = tasks.submit("gone-dead", {})
        assert tasks.join(task_id, timeout=30).status == "error"
        _until(lambda: bool(sent), "the run's dead letter was sent")
    queue = tasks.keys.queue("gone-dead")
    assert [letter["task_id"] for letter in tasks.dead_letters("gone-dead")] == [task_id]
    assert _pending(raw, queue.stream) == 0


def test_a_failed_run_whose_queue_stream_was_deleted_is_still_dead_lettered(
    connector: RedisConnector, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The queue stream deleted (with its group: an operator, a FLUSH of that key, a Cluster
    # shard that lost it) while the run went on; the reader makes the group again. The
    # entry is on no pending list any more, and no other call dead-lettered the task: the
    # run's own dead letter must still be written (the task's mark still names the entry).
    raw = connector.client()

    sent = _before_run_dead_letter(monkeypatch, lambda queue, _id: _drop_stream(raw, queue.stream))
    tasks = TaskClient(connector=connector, max_attempts=1, **FAST)
    calls: list[int] = []
    with worker_factory({"lost-dead": _fails(calls)}):
        task_id = tasks.submit("lost-dead", {})
        assert tasks.join(task_id, timeout=30).status == "error"
        _until(lambda: bool(sent), "the run's dead letter was sent")
    assert calls == [1]
    assert [letter["task_id"] for letter in tasks.dead_letters("lost-dead")] == [task_id]


def test_a_hand_back_after_its_queue_stream_was_deleted_queues_the_task_again(
    connector: RedisConnector, worker_factory: Any
) -> None:
    # As above, for a stop's hand-back: its 'requeue' found the entry on no pending list
    # and added nothing, so the task stayed 'pending' on no queue, run by nobody, for ever.
    raw = connector.client()
    tasks = TaskClient(connector=connector, check_agents=False)
    queue = tasks.keys.queue("lost-back")

    tasks, task_id = handed_back(
        connector, "lost-back", before_stop=lambda: _drop_stream(raw, queue.stream)
    )
    assert tasks.get(task_id).status == "pending"
    assert raw.xlen(queue.stream) == 1, "the handed-back task is on no queue"
    with worker_factory({"lost-back": lambda _x: "ok"}):
        assert tasks.result(task_id, timeout=30) == "ok"
    assert raw.xlen(queue.stream) == 0


# ------------------------------------------------------------------ requeue skipped, rightly


def test_a_hand_back_cancelled_and_swept_before_its_ack_is_not_queued_again(
    connector: RedisConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between the hand-back (task 'pending') and its ack, a cancel ends the task at once and
    # takes its entry off the queue (XDEL: still pending), and a reader's XAUTOCLAIM drops
    # the deleted entry from the pending list. The ack finds nothing to take off and adds no
    # entry: the task has ended ('cancelled'), so nothing is stuck.
    raw = connector.client()
    client = TaskClient(connector=connector, check_agents=False)
    ended: list[str] = []

    def cancel_and_sweep(queue: Any, entry_id: str) -> None:
        task_id = raw.xrange(queue.stream, entry_id, entry_id)[0][1][b"t"].decode()
        ended.append(client.cancel(task_id))
        assert raw.xlen(queue.stream) == 0  # dequeued: deleted, still pending
        raw.xautoclaim(queue.stream, GROUP, "sweeper", 0, "0-0")
        assert _pending(raw, queue.stream) == 0

    sent = _before_requeue(monkeypatch, cancel_and_sweep)
    tasks, task_id = handed_back(connector, "swept-back")
    queue = tasks.keys.queue("swept-back")
    assert ended == ["cancelled"]
    assert [done for _entry, done in sent] == [False]
    assert tasks.get(task_id).status == "cancelled"
    assert raw.xlen(queue.stream) == 0
    assert raw.pttl(tasks.keys.mark(queue, task_id)) > 0  # the mark expires with the task


def test_a_late_hand_back_ack_after_its_op_record_expired_queues_nothing_twice(
    connector: RedisConnector, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hand-back's ack was late; the old entry was re-delivered and the claim re-queued
    # the task itself ('requeue', same op id). Should the late ack land after that op record
    # has expired (10 minutes), it finds the entry off the pending list and the task's mark
    # on the new entry: it adds nothing (it queued the task a second time before d726382).
    held: list[tuple[Any, str, dict[str, Any]]] = []
    real_ack = Worker._ack

    async def ack(
        self: Worker, queue: Any, entry_id: str, task_id: str, mode: str, **kw: Any
    ) -> bool:
        if mode == "requeue" and not held:
            held.append((queue, entry_id, kw))
            return True  # withheld: sent by the test later
        return await real_ack(self, queue, entry_id, task_id, mode, **kw)

    monkeypatch.setattr(Worker, "_ack", ack)
    tasks = TaskClient(connector=connector, **FAST)
    started = threading.Event()
    calls: list[str] = []

    async def waits(_x: Any) -> str:
        calls.append("first")
        started.set()
        await asyncio.sleep(60)  # cancelled by the stop
        return "never"

    async def blocks(_x: Any) -> str:
        calls.append("second")
        await asyncio.sleep(60)  # holds the task while the late ack lands
        return "never"

    raw = connector.client()
    queue = tasks.keys.queue("late-back")
    with worker_factory({"late-back": waits}, stop_grace_seconds=0) as first:
        task_id = tasks.submit("late-back", {})
        assert started.wait(30)
        first.stop()
    assert held, "the hand-back's ack was withheld"
    late_queue, entry_id, kw = held[0]
    with worker_factory({"late-back": blocks}, stop_grace_seconds=0) as second:
        _until(lambda: calls == ["first", "second"], "the re-delivered entry was re-queued, run")
        assert raw.xlen(queue.stream) == 1  # the new entry, held by the run
        op_key = tasks.keys.op(queue.scope, f"ack:{task_id}:{entry_id}:{kw['fence']}:requeue")
        assert raw.delete(op_key) == 1  # the op record's TTL ran out
        assert second._loop is not None
        done = asyncio.run_coroutine_threadsafe(
            real_ack(second, late_queue, entry_id, task_id, "requeue", **kw), second._loop
        ).result(30)
        assert done is False
        assert raw.xlen(queue.stream) == 1  # not queued a second time
        assert tasks.cancel(task_id) == "cancelling"
        assert tasks.join(task_id, timeout=30).status == "cancelled"
    assert raw.xlen(queue.stream) == 0
    assert calls == ["first", "second"]
