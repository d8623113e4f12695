"""`remote_subagent`: a wait that gives up (its timeout, the parent's cancel) stops the run."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from deepagents_redis.coord import ResultTimeoutError, TaskClient, remote_subagent

pytestmark = pytest.mark.integration


async def sleepy(_x: Any) -> str:
    await asyncio.sleep(3600)
    return "never"


def _running(tasks: TaskClient) -> str:
    for _ in range(400):  # bounded: 20 s
        ids = [t["task_id"] for t in tasks.active("sleepy")]
        if ids and tasks.get(ids[0]).status == "running":
            return ids[0]
        threading.Event().wait(0.05)
    raise AssertionError("the remote run never started")


def test_a_timed_out_wait_cancels_the_remote_run(tasks: TaskClient, worker_factory: Any) -> None:
    # The parent gave up on the subagent: its run kept a worker slot (forever, here) and
    # its result was never read.
    spec = remote_subagent(name="sleepy", description="Sleeps.", client=tasks, timeout=0.3)
    with worker_factory({"sleepy": sleepy}):
        with pytest.raises(ResultTimeoutError):
            spec["runnable"].invoke({"messages": [{"role": "user", "content": "go"}]})
        [task_id] = [t["task_id"] for t in tasks.active("sleepy")]  # it never ends alone
        assert tasks.join(task_id, timeout=20).status == "cancelled"


async def test_cancelling_the_parent_cancels_the_remote_run(
    tasks: TaskClient, worker_factory: Any
) -> None:
    # deepagents' in-process `task` subagent dies with its parent; a remote one ran on.
    spec = remote_subagent(name="sleepy", description="Sleeps.", client=tasks, timeout=None)
    with worker_factory({"sleepy": sleepy}):
        call = asyncio.create_task(
            spec["runnable"].ainvoke({"messages": [{"role": "user", "content": "go"}]})
        )
        task_id = await asyncio.to_thread(_running, tasks)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert (await tasks.ajoin(task_id, timeout=20)).status == "cancelled"
