"""A worker's heartbeats keep their own schedule: slow upkeep never lets a live lease lapse."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from deepagents_redis.coord import TaskClient, Worker
from deepagents_redis.core import RedisConnector

from .conftest import FAST, _wait_announced

pytestmark = pytest.mark.integration


def _until(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


@pytest.mark.parametrize("how", ["run", "arun"])
@pytest.mark.parametrize("step", ["_promote", "_announce"])
def test_slow_upkeep_does_not_hold_up_the_heartbeats(
    connector: RedisConnector, monkeypatch: pytest.MonkeyPatch, how: str, step: str
) -> None:
    # Every heartbeat the worker renewed its runs' leases, then moved due retries back to
    # the queues and announced itself, one after the other in one loop: one slow upkeep
    # step (a queue on a slow shard, a deadline-long stall) held up the next renewals, the
    # lease of a live worker's task ran out, and another worker ran the task again.
    stuck = threading.Event()
    beats: list[str] = []
    real_beat, real_step = Worker._beat, getattr(Worker, step)
    calls = {"n": 0}

    async def slow(self: Worker, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 1 or step == "_promote":  # the start-up announce goes through
            stuck.set()
            await asyncio.Event().wait()  # until the worker stops (cancelled)
        return await real_step(self, *args, **kwargs)

    async def beat(self: Worker, run: Any) -> Any:
        beats.append(run.task_id)
        return await real_beat(self, run)

    monkeypatch.setattr(Worker, step, slow)
    monkeypatch.setattr(Worker, "_beat", beat)
    started, release = threading.Event(), threading.Event()

    def waits(_x: Any) -> str:  # a sync agent under `run()`, an async one under `arun()`
        started.set()
        release.wait(60)
        return "done"

    async def awaits(_x: Any) -> str:
        started.set()
        await asyncio.to_thread(release.wait, 60)
        return "done"

    agent = waits if how == "run" else awaits
    # its own connector, closed at the end of its own loop (`run()` closes what it built)
    worker = Worker(settings=connector.settings, agents={"slow-upkeep": agent}, **FAST)
    errors: list[BaseException] = []

    async def serve() -> None:
        try:
            await worker.arun()
        finally:
            await worker.aclose()

    def main() -> None:
        try:
            if how == "run":
                worker.run()
            else:
                asyncio.run(serve())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    tasks = TaskClient(connector=connector, check_agents=False)
    try:
        _wait_announced(connector, ["slow-upkeep"], "default")
        task_id = tasks.submit("slow-upkeep", {})
        assert started.wait(30)
        _until(stuck.is_set, "an upkeep step is stuck")
        seen = len(beats)
        # renewals go on while the upkeep step stays stuck, for two leases' worth of beats
        more = 2 * int(FAST["lease_seconds"] / FAST["heartbeat_seconds"])
        _until(lambda: len(beats) >= seen + more, "heartbeats go on past the stuck upkeep")
        info = tasks.get(task_id)
        assert (info.status, info.attempts, info.worker) == ("running", 1, worker.worker_id)
        release.set()
        assert tasks.result(task_id, timeout=30) == "done"
    finally:
        release.set()
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert not errors, errors
