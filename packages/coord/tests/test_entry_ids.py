"""A task's new queue entry never takes the id of the entry its mark named before.

Acks tell a task's current entry from an old one by its enqueue mark ("the mark names this
entry"). A queue stream that was deleted (its group made again) forgets its last id, so an
entry made again in the same millisecond as the old one got the very same id, and a late
'retry' ack of the old entry then read as an ack of the new one and scheduled the task a
second time (seen once in CI: the stream-deleted case of test_claim_retry_review, on Valkey).

Deterministic here: the old entry is given an id in the future (`F-0`), and the recreated
stream's last id is set just before it (`F-1` with the largest sequence number, then deleted),
so the server's next automatic id is exactly `F-0`, the same millisecond as the old entry.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from deepagents_redis.coord._common import one
from deepagents_redis.coord._scripts import ACK_PLAIN
from deepagents_redis.core import RedisConnector, Script, run_operation

from .test_claim_retry_review import AGENT, _drop_stream, _promote_now, _retry, _setup

pytestmark = pytest.mark.integration

_MAX_SEQ = 2**64 - 1


def _same_millisecond_next(raw: Any, stream: str) -> str:
    """Drop the stream and make the server's next automatic id `F-0` (F in the future)."""
    _drop_stream(raw, stream)
    future = int(time.time() * 1000) + 600_000
    raw.xadd(stream, {"t": "x"}, id=f"{future - 1}-{_MAX_SEQ}")
    raw.xdel(stream, f"{future - 1}-{_MAX_SEQ}")
    return f"{future}-0"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def test_a_promoted_retry_gets_an_id_of_its_own(connector: RedisConnector) -> None:
    _tasks, worker, raw, task_id, _entry = _setup(connector)
    queue = worker.keys.queue(AGENT)
    mark = worker.keys.mark(queue, task_id)
    old = _same_millisecond_next(raw, queue.stream)
    raw.set(mark, old)  # the run's entry, gone with the stream
    assert _retry(connector, worker, task_id, old) == 1
    _promote_now(connector, worker, raw, task_id)
    new = _text(raw.get(mark))
    assert new != old
    assert [_text(e[0]) for e in raw.xrange(queue.stream)] == [new]
    # a late retry ack of the old entry (the claim's 'retrying', a re-send) schedules nothing
    assert _retry(connector, worker, task_id, old) == 0
    assert raw.zcard(queue.delayed) == 0


def test_a_handed_back_task_gets_an_id_of_its_own(connector: RedisConnector) -> None:
    _tasks, worker, raw, task_id, _entry = _setup(connector)
    queue = worker.keys.queue(AGENT)
    mark = worker.keys.mark(queue, task_id)
    old = _same_millisecond_next(raw, queue.stream)
    raw.set(mark, old)
    keys, args = worker._ack_request(queue, old, task_id, "requeue", 0.0, b"")
    assert run_operation(
        connector, "test.requeue", one(Script(ACK_PLAIN, keys, args)), deadline_seconds=10
    )
    new = _text(raw.get(mark))
    assert new != old
    assert [_text(e[0]) for e in raw.xrange(queue.stream)] == [new]
    assert _retry(connector, worker, task_id, old) == 0
    assert raw.zcard(queue.delayed) == 0
