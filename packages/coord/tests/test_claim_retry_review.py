"""Review of 149aebf (a claim's dead letter has an op id per call) and faf8db0 ('retry' acts
when the queue stream was deleted under the run).

Deterministic: the acks are sent as the worker builds them, against a task queued by a
submit and read by a consumer of the group, with no worker running.

1. A claim's dead letter re-sent by core's driver after a lost reply (the same call, the same
   op id) is answered with its recorded reply: written and counted once; another claim's
   dead letter (a call of its own) adds nothing.
2. 'retry' schedules once, and never for a task that was cancelled (dequeued), ended by an
   'ack', dead-lettered, re-queued by a hand-back's 'requeue', or already promoted.
3. Every key the ack touches is declared and in one slot (the Cluster run sends them all).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from deepagents_redis.coord import TaskClient, Worker
from deepagents_redis.coord._common import one
from deepagents_redis.coord._keys import GROUP
from deepagents_redis.coord._scripts import ACK_PLAIN
from deepagents_redis.coord._scripts import GROUP as GROUP_SCRIPT
from deepagents_redis.core import Operation, RedisConnector, Script, run_operation
from redis.crc import key_slot

from .conftest import FAST

pytestmark = pytest.mark.integration

AGENT = "retry-review"


def _setup(connector: RedisConnector) -> tuple[TaskClient, Worker, Any, str, str]:
    """A submitted task whose entry a consumer of the group has read (it is pending)."""
    tasks = TaskClient(connector=connector, **FAST)
    worker = Worker(connector=connector, agents={AGENT: lambda x: x}, **FAST)
    queue = tasks.keys.queue(AGENT)
    run_operation(
        connector,
        "test.group",
        one(Script(GROUP_SCRIPT, [queue.stream], [GROUP])),
        deadline_seconds=10,
    )
    raw = connector.client()
    raw.zadd(tasks.keys.registry, {AGENT: int(time.time() * 1000)})  # as a worker announces
    task_id = tasks.submit(AGENT, {})
    read = raw.xreadgroup(GROUP, "reader", {queue.stream: ">"}, count=1)
    entry_id = read[0][1][0][0]
    entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    assert raw.get(worker.keys.mark(queue, task_id)) in (entry_id, entry_id.encode())
    return tasks, worker, raw, task_id, entry_id


def _retry(connector: RedisConnector, worker: Worker, task_id: str, entry_id: str) -> int:
    queue = worker.keys.queue(AGENT)
    ack = worker._ack_plain(queue, entry_id, task_id, "retry", 3600.0)
    return int(run_operation(connector, "test.retry", one(ack), deadline_seconds=10))


def _drop_stream(raw: Any, stream: str) -> None:
    raw.delete(stream)
    raw.xgroup_create(stream, GROUP, id="0", mkstream=True)


def _promote_now(connector: RedisConnector, worker: Worker, raw: Any, task_id: str) -> None:
    queue = worker.keys.queue(AGENT)
    raw.zadd(queue.delayed, {task_id: 0})
    moved = run_operation(connector, "test.promote", worker._promote_op(queue), deadline_seconds=10)
    assert moved == 1


@pytest.mark.parametrize("dropped", [False, True], ids=["pending", "stream-deleted"])
def test_two_racing_retry_acks_schedule_once_and_none_after_the_promote(
    connector: RedisConnector, dropped: bool
) -> None:
    _tasks, worker, raw, task_id, entry_id = _setup(connector)
    queue = worker.keys.queue(AGENT)
    if dropped:
        _drop_stream(raw, queue.stream)
    assert _retry(connector, worker, task_id, entry_id) == 1
    due = raw.zscore(queue.delayed, task_id)
    assert due is not None
    # the run's worker's ack and a claim's 'retrying' ack, or a re-send after a lost reply
    assert _retry(connector, worker, task_id, entry_id) == 0
    assert raw.zscore(queue.delayed, task_id) == due
    _promote_now(connector, worker, raw, task_id)
    # late, after the promote queued it anew (the mark names the new entry)
    assert _retry(connector, worker, task_id, entry_id) == 0
    assert raw.zcard(queue.delayed) == 0
    assert raw.xlen(queue.stream) == 1


@pytest.mark.parametrize("dropped", [False, True], ids=["pending", "stream-deleted"])
def test_no_retry_for_a_task_cancelled_and_dequeued(
    connector: RedisConnector, dropped: bool
) -> None:
    tasks, worker, raw, task_id, entry_id = _setup(connector)
    queue = worker.keys.queue(AGENT)
    if dropped:
        _drop_stream(raw, queue.stream)
    else:
        raw.xack(queue.stream, GROUP, entry_id)  # its run's ack landed already
    tasks.cancel(task_id)  # pending: cancelled at once, taken off the queue (mark's TTL)
    assert tasks.get(task_id).status == "cancelled"
    assert raw.pttl(worker.keys.mark(queue, task_id)) > 0
    assert _retry(connector, worker, task_id, entry_id) == 0
    assert raw.zcard(queue.delayed) == 0


@pytest.mark.parametrize("mode", ["ack", "dead"])
def test_no_retry_for_an_entry_ended_first_on_a_deleted_stream(
    connector: RedisConnector, mode: str
) -> None:
    _tasks, worker, raw, task_id, entry_id = _setup(connector)
    queue = worker.keys.queue(AGENT)
    _drop_stream(raw, queue.stream)
    keys, args = worker._ack_request(queue, entry_id, task_id, mode, 0.0, b"letter")
    run_operation(connector, "test.end", one(Script(ACK_PLAIN, keys, args)), deadline_seconds=10)
    assert raw.pttl(worker.keys.mark(queue, task_id)) > 0
    assert _retry(connector, worker, task_id, entry_id) == 0
    assert raw.zcard(queue.delayed) == 0
    assert raw.xlen(queue.stream) == 0


async def test_no_retry_after_a_hand_back_requeued_it_on_a_deleted_stream(
    connector: RedisConnector,
) -> None:
    _tasks, worker, raw, task_id, entry_id = _setup(connector)
    queue = worker.keys.queue(AGENT)
    _drop_stream(raw, queue.stream)
    assert await worker._ack(queue, entry_id, task_id, "requeue", fence=7) is True
    assert raw.xlen(queue.stream) == 1
    assert _retry(connector, worker, task_id, entry_id) == 0
    assert raw.zcard(queue.delayed) == 0
    assert raw.xlen(queue.stream) == 1


@pytest.mark.parametrize("dropped", [False, True], ids=["pending", "stream-deleted"])
async def test_a_claim_dead_letter_resent_after_a_lost_reply_is_written_once(
    connector: RedisConnector, monkeypatch: pytest.MonkeyPatch, dropped: bool
) -> None:
    # The driver re-sends the same operation (same op key) when a reply is lost: the
    # re-send must answer 1 (the first send wrote the letter), not 0 (the op id made anew).
    _tasks, worker, raw, task_id, entry_id = _setup(connector)
    queue = worker.keys.queue(AGENT)
    if dropped:
        _drop_stream(raw, queue.stream)
    real = Worker._op
    sent: list[Any] = []

    async def op_sent_twice(self: Worker, name: str, op: Operation[Any], **attrs: Any) -> Any:
        if name != "coord.ack":
            return await real(self, name, op, **attrs)
        request = next(op)  # the Idempotent the worker built: its op key is fixed per call
        op.close()
        sent.append(request)

        def resent() -> Operation[Any]:
            yield request  # applied, its reply lost
            return (yield request)  # the driver's re-send of the same request

        return await real(self, name, resent(), **attrs)

    monkeypatch.setattr(Worker, "_op", op_sent_twice)
    assert await worker._ack(queue, entry_id, task_id, "dead", fence=0, letter=b"x") is True
    assert raw.xlen(queue.dlq) == 1
    # a second worker's claim of the same entry: a call of its own, adds nothing
    other = Worker(connector=connector, agents={AGENT: lambda x: x}, **FAST)
    assert await other._ack(queue, entry_id, task_id, "dead", fence=0, letter=b"y") is False
    assert raw.xlen(queue.dlq) == 1
    assert len(sent) == 2


def test_every_key_of_the_ack_is_declared_and_in_one_slot(connector: RedisConnector) -> None:
    tasks = TaskClient(connector=connector, **FAST)
    worker = Worker(connector=connector, agents={AGENT: lambda x: x}, **FAST)
    queue = tasks.keys.queue(AGENT)
    task_id = "0" * 32
    for mode in ("ack", "retry", "dead", "requeue"):
        for tid in (task_id, ""):
            keys, _args = worker._ack_request(queue, "1-0", tid, mode, 0.0, b"")
            assert len(keys) == 5  # + the queue's index of queued tasks (the sweep's)
            if tid:
                assert keys[3] == worker.keys.mark(queue, tid)
            assert keys[4] == queue.queued
            assert len({key_slot(k.encode()) for k in keys}) == 1, (mode, keys)
