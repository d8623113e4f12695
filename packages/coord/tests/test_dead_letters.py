"""A task that failed for good is dead-lettered even when its first dead letter failed."""

from __future__ import annotations

import time
from typing import Any

import pytest
from deepagents_redis.coord import TaskClient, TaskFailedError
from deepagents_redis.core import RedisUnavailableError

pytestmark = pytest.mark.integration


def _eventually(read: Any) -> Any:
    for _ in range(250):
        got = read()
        if got:
            return got
        time.sleep(0.02)
    return read()


def test_a_dead_letter_whose_write_failed_is_written_when_the_entry_comes_back(
    tasks: TaskClient, worker_factory: Any
) -> None:
    # The dead letter is a call of its own after the finish that ends the task 'error'. When
    # it failed (Redis unreachable past the call's retries; or the worker died between the
    # two), the entry stayed pending and came back to a worker at the next reclaim, whose
    # claim read the task as done and acknowledged the entry plainly: the task was never
    # dead-lettered (nothing for `tasks dlq` to show or `tasks retry` to find).
    def poison(_x: Any) -> None:
        raise RuntimeError("boom")

    with worker_factory({"poison": poison}) as worker:
        real = worker._op
        failed: list[str] = []

        async def flaky_op(name: str, op: Any, **attrs: Any) -> Any:
            if name == "coord.ack" and not failed:
                failed.append(name)
                op.close()
                raise RedisUnavailableError("injected: the dead letter's call failed")
            return await real(name, op, **attrs)

        worker._op = flaky_op  # type: ignore[method-assign]
        task_id = tasks.submit("poison", {})
        with pytest.raises(TaskFailedError, match="boom"):
            tasks.result(task_id, timeout=15)
        letters = _eventually(lambda: tasks.dead_letters("poison"))
        assert failed == ["coord.ack"]
    assert [ltr["task_id"] for ltr in letters] == [task_id]
    assert "boom" in letters[0]["error"]
    assert [h["attempt"] for h in letters[0]["history"]] == [1, 2, 3]  # the client's 3
    assert letters[0]["reason"] == "failed"
    # and the entry is off the queue: nothing pending, nothing left to read
    raw = tasks.connector.client()
    queue = tasks.keys.queue("poison")
    assert raw.xlen(queue.stream) == 0
    assert raw.xpending(queue.stream, "workers")["pending"] == 0
