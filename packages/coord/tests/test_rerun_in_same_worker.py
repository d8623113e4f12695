"""A worker claims and runs a task once: its run table and its batched claims."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from deepagents_redis.coord import TaskClient

pytestmark = pytest.mark.integration


def test_an_old_runs_end_does_not_unregister_the_new_run_of_its_task(
    tasks: TaskClient, worker_factory: Any, connector: Any
) -> None:
    # A worker tracks its runs by task id. A run whose lease was lost (another worker took
    # the task over, then handed it back) is fenced, but its agent may go on for a while;
    # if this worker claims the task again meanwhile, the new run replaced the old one in
    # the table, and the old run's end removed the NEW one: no more heartbeats for it (its
    # lease ran out under a live worker: another worker ran it again) and no cancel reached it.
    release_old = threading.Event()
    started = [threading.Event(), threading.Event()]
    calls: list[int] = []

    async def stubborn(_x: Any) -> str:
        n = len(calls)
        calls.append(n)
        started[min(n, 1)].set()
        if n == 0:  # the old run: ignores the cancel of its lost lease until released
            while not release_old.is_set():
                try:
                    await asyncio.sleep(0.02)
                except asyncio.CancelledError:
                    continue
            return "old"
        await asyncio.sleep(30)  # the new run: cancellable
        return "new"

    raw = connector.client()
    with worker_factory({"stubborn": stubborn}) as worker:
        task_id = tasks.submit("stubborn", {})
        assert started[0].wait(10)
        keys = tasks.keys.task(task_id)
        # another worker took the task over and handed it back (its claim and its hand-back
        # each moved the token on), re-queued under a new entry
        raw.hincrby(keys.record, "fence", 2)
        raw.hset(keys.record, mapping={"status": "pending", "lease_until": 0, "worker": ""})
        raw.xadd(tasks.keys.queue("stubborn").stream, {"t": task_id})
        assert started[1].wait(10)  # this worker claimed it again: the new run
        new_fence = int(raw.hget(keys.record, "fence"))
        beats: list[int] = []
        real_beat = worker._beat

        async def spy(run: Any) -> Any:
            if run.task_id == task_id:
                beats.append(run.fence)
            return await real_beat(run)

        worker._beat = spy  # type: ignore[method-assign]
        release_old.set()  # the old run ends now (its result is refused by the fence)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and worker.completed < 1:
            time.sleep(0.02)
        assert worker.completed == 1  # the old run has ended
        beats.clear()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and new_fence not in beats:
            time.sleep(0.02)
        assert new_fence in beats  # the new run is still heartbeated ...
        assert tasks.cancel(task_id) == "cancelling"
        info = tasks.join(task_id, timeout=10)  # ... and its cancel reaches it
    assert info.status == "cancelled"
    assert calls == [0, 1]  # not run a third time


def test_a_claim_batch_whose_call_failed_after_applying_runs_its_tasks_at_once(
    connector: Any, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a single server the claims of one read batch go as one call. When that call
    # failed after the server had run it (its reply lost past the call's retries), each
    # entry claimed again with a new token: the claim read its task as held by a live
    # worker ('busy'), nobody ran it until its lease ran out, and then the attempt was
    # charged to a dead worker ('worker stopped heartbeating', attempt 2).
    from deepagents_redis.coord import Worker
    from deepagents_redis.core import Chain, RedisUnavailableError

    tasks = TaskClient(connector=connector, check_agents=False, lease_seconds=30.0)
    ids = [tasks.submit("batched", {"n": n}) for n in range(4)]  # waiting: one read's batch
    real = Worker._op
    failed: list[int] = []

    async def lossy_claims(self: Worker, name: str, op: Any, **attrs: Any) -> Any:
        if name != "coord.claim" or failed:
            return await real(self, name, op, **attrs)
        request = op.send(None)  # `one(request)`: its reply is the result
        op.close()

        def replay() -> Any:
            reply = yield request
            return reply

        reply = await real(self, name, replay(), **attrs)  # the server runs the claims ...
        if isinstance(request, Chain):
            failed.append(len(request.steps))
            raise RedisUnavailableError("injected: the batch's reply was lost")
        return reply

    monkeypatch.setattr(Worker, "_op", lossy_claims)
    with worker_factory({"batched": lambda x: x["n"]}, lease_seconds=30.0, concurrency=4):
        results = [tasks.result(task_id, timeout=20) for task_id in ids]
    assert results == [0, 1, 2, 3]
    if connector.cluster_hint is False:  # batches are a single server's
        assert failed
        assert failed[0] >= 2
    for task_id in ids:
        info = tasks.get(task_id)
        assert (info.attempts, info.history) == (1, [])
