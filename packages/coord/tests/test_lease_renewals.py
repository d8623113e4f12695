"""Each run's lease is renewed on its own: one stalled renewal holds up no other run's."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from deepagents_redis.coord import TaskClient, TaskContext, Worker

from .conftest import FAST

pytestmark = pytest.mark.integration


def _until(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def test_a_stalled_renewal_holds_up_no_other_lease_and_its_own_run_stops(
    tasks: TaskClient, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The renewals of a beat were awaited together: with one stalled (a blackholed
    # connection, up to the write deadline), no other run's lease was renewed until it
    # returned, so with a lease close to the heartbeat a healthy long task's lease ran out
    # and it was claimed and run again. The stalled run's own lease ran out silently.
    stall, stalled = threading.Event(), threading.Event()
    healthy_beats: list[int] = []
    real_beat = Worker._beat

    async def beat(self: Worker, run: Any) -> Any:
        if run.agent == "stalled" and stall.is_set():
            stalled.set()
            await asyncio.Event().wait()  # this renewal never returns (cancelled at stop)
        if run.agent == "healthy":
            healthy_beats.append(run.attempt)
        return await real_beat(self, run)

    monkeypatch.setattr(Worker, "_beat", beat)
    release = threading.Event()
    started = {"healthy": threading.Event(), "stalled": threading.Event()}
    stopped: list[str] = []
    calls: list[str] = []

    def agent(name: str) -> Callable[..., Any]:
        async def waits(_x: Any, ctx: TaskContext) -> str:
            calls.append(name)
            started[name].set()
            if ctx.attempt > 1:
                return "again"
            try:
                await asyncio.to_thread(release.wait, 60)
            except asyncio.CancelledError:
                stopped.append(name)
                raise
            return "done"

        return waits

    agents = {"healthy": agent("healthy"), "stalled": agent("stalled")}
    with worker_factory(agents, concurrency=2):
        healthy = tasks.submit("healthy", {})
        other = tasks.submit("stalled", {})
        assert started["healthy"].wait(30)
        assert started["stalled"].wait(30)
        stall.set()
        _until(stalled.is_set, "a renewal of the stalled run hangs")
        seen = len(healthy_beats)
        # the healthy run's renewals go on, for two leases' worth of beats
        more = 2 * int(FAST["lease_seconds"] / FAST["heartbeat_seconds"])
        _until(lambda: len(healthy_beats) >= seen + more, "the healthy run's renewals go on")
        # the stalled run is stopped once its lease has surely run out: not left writing
        _until(lambda: "stalled" in stopped, "the run whose lease could not be renewed stops")
        info = tasks.get(healthy)
        assert (info.status, info.attempts) == ("running", 1)
        stall.clear()  # its task is taken over (here, by this same worker) and runs again
        release.set()
        assert tasks.result(healthy, timeout=30) == "done"
        assert tasks.result(other, timeout=30) == "again"
    assert set(healthy_beats) == {1}
    assert calls.count("healthy") == 1
    assert stopped == ["stalled"]
    assert tasks.get(other).attempts == 2
