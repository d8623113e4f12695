"""Adversarial runs on a real server: cancels, interrupts, time limits, stops and takeovers
racing each other and the run's own steps (standalone and Cluster).

The agent runs in the entry's own asyncio task, so every kind of cancel (a client's cancel, an
interrupting follow-up, the run's time limit, a stop, a lost lease) targets that one task and
is told apart by the run's state and the task's cancel count. These tests drive each race to a
fixed point with events (no wall-clock thresholds) and check that the task ends once, with the
right outcome, without a second attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from deepagents_redis.coord import EventBus, TaskClient, TaskContext, _worker
from deepagents_redis.coord._keys import GROUP
from deepagents_redis.core import RedisConnector

from .conftest import FAST

pytestmark = pytest.mark.integration

_LIFECYCLE = (
    "started",
    "completed",
    "retrying",
    "failed",
    "timeout",
    "cancelled",
    "interrupted",
    "handed_back",
)


def _until(check: Callable[[], Any], what: str, tries: int = 1_000) -> Any:
    """Poll `check` until it is truthy (bounded: `tries` x 20 ms)."""
    for _ in range(tries):
        got = check()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def _kinds(tasks: TaskClient, task_id: str) -> list[str]:
    return [e.type.rsplit(".", 1)[-1] for _, e in tasks.events(task_id)]


def _running(tasks: TaskClient, task_id: str) -> None:
    _until(lambda: tasks.get(task_id).status == "running", f"{task_id} running")


def _messages(*texts: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": t} for t in texts]}


class _Swallower:
    """A runnable (`ainvoke`, not a graph) whose first call swallows its cancel and answers
    with what it has; every later call waits until it is cancelled."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.first = threading.Event()
        self.second = threading.Event()

    async def ainvoke(self, value: dict[str, Any], config: Any = None) -> dict[str, Any]:
        self.calls.append([m["content"] for m in value["messages"]])
        if len(self.calls) == 1:
            self.first.set()
            with contextlib.suppress(asyncio.CancelledError):  # swallowed: it answers
                await asyncio.sleep(30)  # with the conversation so far
            return {"messages": [*value["messages"], {"role": "ai", "content": "partial"}]}
        self.second.set()
        await asyncio.sleep(30)
        return {"messages": [*value["messages"], {"role": "ai", "content": "late"}]}


@pytest.mark.parametrize("ending", ["cancel", "stop"])
def test_an_interrupt_the_agent_swallowed_does_not_hide_the_runs_later_cancel(
    tasks: TaskClient, worker_factory: Any, ending: str
) -> None:
    """An agent call that swallows the interrupting follow-up's cancel and returns leaves the
    run going on (the follow-up is taken as a queued one). A later cancel, or a stop, must
    still end the run as such: not be read as the worker's own teardown, which writes
    nothing and leaves the task to be run again once its lease runs out."""
    agent = _Swallower()
    with worker_factory({"chat": agent}, stop_grace_seconds=0) as worker:
        task_id = tasks.submit("chat", _messages("one"))
        assert agent.first.wait(10)
        tasks.send(task_id, {"role": "user", "content": "two"}, strategy="interrupt")
        assert agent.second.wait(10)  # the follow-up's call: the run went on
        if ending == "cancel":
            assert tasks.cancel(task_id) == "cancelling"
            info = tasks.join(task_id, timeout=20)
            assert info.status == "cancelled"
        else:
            worker.stop()
    info = tasks.get(task_id)
    kinds = _kinds(tasks, task_id)
    if ending == "cancel":
        assert info.status == "cancelled"
        assert kinds.count("cancelled") == 1
    else:
        assert info.status == "pending"  # handed back, to run again elsewhere
        assert kinds.count("handed_back") == 1
        assert info.attempts == 0  # a handed back attempt does not count
    assert agent.calls == [["one"], ["one", "partial", "two"]]
    assert kinds.count("started") == 1  # never run again after a lost lease


def test_a_stop_during_a_cancelled_agents_clean_up_still_ends_it_cancelled(
    tasks: TaskClient, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's cancel reaches the agent, which cleans up before it lets the cancel go
    on; a stop arriving meanwhile must not turn the cancel into a hand-back, nor (cancelling
    the task a second time) into the worker's teardown, which writes nothing."""
    running, cleaning, release = threading.Event(), threading.Event(), threading.Event()

    async def careful(_x: Any) -> str:
        running.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cleaning.set()
            await asyncio.to_thread(release.wait, 10)  # its clean-up takes a round trip
            raise
        return "late"

    real = _worker.Worker._interrupt

    def interrupt(self: Any, run: Any, reason: str) -> None:
        real(self, run, reason)
        if reason == "stop":  # the stop has looked at this run: the clean-up may end now
            release.set()

    monkeypatch.setattr(_worker.Worker, "_interrupt", interrupt)
    with worker_factory({"careful": careful}, stop_grace_seconds=0) as worker:
        task_id = tasks.submit("careful", {})
        assert running.wait(10)
        assert tasks.cancel(task_id) == "cancelling"
        assert cleaning.wait(10)
        worker.stop()
    release.set()
    info = tasks.get(task_id)
    assert info.status == "cancelled"
    kinds = _kinds(tasks, task_id)
    assert kinds.count("cancelled") == 1
    assert "handed_back" not in kinds


def test_an_agents_own_cancelled_error_fails_the_attempt(
    tasks: TaskClient, worker_factory: Any
) -> None:
    """A CancelledError that no cancel of the run caused (the agent raised it, or an inner
    task of its own was cancelled) is the agent's failure: retried, then an error that says
    so. It is not the worker's teardown, which would leave the task 'running' until its lease
    ran out and then blame a worker that 'stopped heartbeating'."""
    calls: list[int] = []

    async def confused(_x: Any) -> str:
        calls.append(1)
        raise asyncio.CancelledError("an inner task of the agent was cancelled")

    twice = TaskClient(connector=tasks.connector, max_attempts=2, **FAST)
    with worker_factory({"confused": confused}):
        task_id = twice.submit("confused", {})
        info = twice.join(task_id, timeout=30)
    assert info.status == "error"
    assert info.error is not None
    assert "CancelledError" in info.error
    assert info.attempts == 2
    assert len(calls) == 2
    assert not any("heartbeating" in str(h.get("error")) for h in info.history)
    assert _kinds(tasks, task_id).count("retrying") == 1


def test_a_cancel_during_retry_backoff_ends_the_task_and_the_retry_never_runs(
    connector: RedisConnector, tasks: TaskClient, worker_factory: Any
) -> None:
    calls: list[int] = []

    def flaky(_x: Any) -> str:
        calls.append(1)
        raise ValueError("first attempt fails")

    queue = tasks.keys.queue("flaky")
    raw = connector.client()
    # a backoff of a minute: the retry waits in the delayed set while the cancel arrives
    with worker_factory(
        {"flaky": flaky}, backoff_base_seconds=60, backoff_cap_seconds=60
    ) as worker:
        task_id = tasks.submit("flaky", {})  # three attempts
        _until(lambda: raw.zcard(queue.delayed) == 1, "the retry is scheduled")
        assert tasks.get(task_id).status == "pending"
        assert tasks.cancel(task_id) == "cancelled"
        done = worker.completed
        raw.zadd(queue.delayed, {task_id: 0})  # the retry is due now
        _until(lambda: raw.zcard(queue.delayed) == 0, "the retry is promoted")
        # the promoted entry is read, found cancelled and acknowledged, not run
        _until(lambda: raw.xlen(queue.stream) == 0, "the promoted entry is acknowledged")
        assert worker.completed == done
    info = tasks.get(task_id)
    assert info.status == "cancelled"
    assert info.attempts == 1
    assert calls == [1]
    assert _kinds(tasks, task_id).count("started") == 1


def test_a_cancel_while_the_result_is_written_changes_nothing(
    tasks: TaskClient, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the agent returned, its result is written: a cancel or an interrupting follow-up
    arriving then (and seen by the heartbeats meanwhile) interrupts nothing."""
    writing, release = threading.Event(), threading.Event()
    beats = [0]
    real_end, real_beats = _worker.Worker._end, _worker.Worker._heartbeats

    async def held_end(self: Any, *args: Any, **kwargs: Any) -> None:
        writing.set()
        await asyncio.to_thread(release.wait, 10)
        await real_end(self, *args, **kwargs)

    async def counted(self: Any) -> None:
        await real_beats(self)
        beats[0] += 1

    monkeypatch.setattr(_worker.Worker, "_end", held_end)
    monkeypatch.setattr(_worker.Worker, "_heartbeats", counted)
    with worker_factory({"double": lambda x: {"n": x["n"] * 2}}):
        task_id = tasks.submit("double", {"n": 5})
        assert writing.wait(10)
        tasks.send(task_id, "too late to interrupt", strategy="interrupt")
        assert tasks.cancel(task_id) == "cancelling"
        seen = beats[0]
        _until(lambda: beats[0] >= seen + 2, "two heartbeats saw the flags")
        release.set()
        info = tasks.join(task_id, timeout=10)
    assert info.status == "success"
    assert info.result == {"n": 10}
    kinds = _kinds(tasks, task_id)
    assert kinds.count("completed") == 1
    assert "cancelled" not in kinds
    assert "interrupted" not in kinds


@pytest.mark.parametrize("what", ["cancel", "interrupt"])
def test_a_cancel_landing_inside_the_agents_own_redis_calls_is_still_a_cancel(
    tasks: TaskClient, worker_factory: Any, what: str
) -> None:
    """An agent that does nothing but report progress is cancelled inside one of those Redis
    calls. A cancel still ends the run 'cancelled', and an interrupting follow-up still
    starts the next call, on the first attempt: never a failed attempt (a cancel that the
    Redis client turned into a connection error would be one)."""
    calls: list[int] = []
    reporting = threading.Event()

    async def chatty(_x: Any, ctx: TaskContext) -> Any:
        calls.append(1)
        if len(calls) > 1:
            return await ctx.amessages()
        for n in range(100_000):
            await ctx.aprogress(n=n)
            reporting.set()
        return "ran to the end"

    with worker_factory({"chatty": chatty}):
        task_id = tasks.submit("chatty", {})  # three attempts
        assert reporting.wait(10)
        if what == "cancel":
            assert tasks.cancel(task_id) == "cancelling"
        else:
            tasks.send(task_id, "next", strategy="interrupt")
        info = tasks.join(task_id, timeout=20)
    if what == "cancel":
        assert info.status == "cancelled"
        assert calls == [1]
    else:
        assert info.status == "success"
        assert info.result == ["next"]
        assert calls == [1, 1]
    assert info.attempts == 1
    kinds = _kinds(tasks, task_id)
    assert "retrying" not in kinds


def test_a_sync_agent_past_its_time_limit_is_told_to_stop(
    tasks: TaskClient, worker_factory: Any
) -> None:
    told = threading.Event()

    def slow(_x: Any, ctx: TaskContext) -> str:
        if ctx.cancelled.wait(30):
            told.set()
            return "stopped"
        return "ran to the end"

    with worker_factory({"slow": slow}):
        task_id = tasks.submit("slow", {}, run_timeout=0.2)
        info = tasks.join(task_id, timeout=20)
        assert told.wait(10)
    assert info.status == "timeout"
    assert info.attempts == 1
    assert _kinds(tasks, task_id).count("timeout") == 1


def test_a_cancel_during_the_time_limits_clean_up_ends_the_run_once(
    tasks: TaskClient, worker_factory: Any
) -> None:
    """The time limit cancels the agent, which cleans up; the client's cancel arrives during
    the clean-up. The run ends once (cancelled: the last word), on its first attempt."""
    cleaning = threading.Event()

    async def slow(_x: Any) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cleaning.set()
            await asyncio.sleep(30)  # a clean-up that only a cancel ends
            raise
        return "late"

    with worker_factory({"slow": slow}):
        task_id = tasks.submit("slow", {}, run_timeout=0.2)
        assert cleaning.wait(10)
        assert tasks.cancel(task_id) == "cancelling"
        info = tasks.join(task_id, timeout=20)
    assert info.status == "cancelled"
    assert info.attempts == 1
    kinds = _kinds(tasks, task_id)
    assert [k for k in kinds if k in ("cancelled", "timeout", "failed", "retrying")] == [
        "cancelled"
    ]


def test_an_interrupt_racing_a_cancel_ends_the_run_cancelled_once(
    tasks: TaskClient, worker_factory: Any
) -> None:
    """An interrupting follow-up and a cancel sent back to back: the cancel wins (if the
    follow-up's call started first, the cancel ends that one), on the first attempt."""
    calls: list[str] = []
    started = threading.Event()

    async def chat(value: dict[str, Any]) -> dict[str, Any]:
        calls.append(value["messages"][-1]["content"])
        started.set()
        await asyncio.sleep(30)
        return value

    with worker_factory({"chat": chat}):
        task_id = tasks.submit("chat", _messages("one"))
        assert started.wait(10)
        tasks.send(task_id, {"role": "user", "content": "two"}, strategy="interrupt")
        assert tasks.cancel(task_id) == "cancelling"
        info = tasks.join(task_id, timeout=20)
    assert info.status == "cancelled"
    assert info.attempts == 1
    assert calls in (["one"], ["one", "two"])
    kinds = _kinds(tasks, task_id)
    assert kinds.count("started") == 1
    assert kinds.count("cancelled") == 1


@pytest.mark.parametrize("meanwhile", ["heartbeat", "stop"])
def test_an_interrupts_restart_is_not_lost_to_what_happens_meanwhile(
    tasks: TaskClient, worker_factory: Any, monkeypatch: pytest.MonkeyPatch, meanwhile: str
) -> None:
    """An interrupting follow-up restarts the run with a new fencing token. While that
    restart's reply is on its way: a heartbeat sent with the old token is refused (FENCED),
    which is the restart's own doing, not a lost lease (the run goes on, once); a stop
    cancels the run, which must still end with the new token (handed back), not be refused
    and left to run again once its lease runs out."""
    rounds = {"started": 0, "done": 0}
    held: list[int] = []
    holding = threading.Event()
    real_beats, real_op = _worker.Worker._heartbeats, _worker.Worker._op

    async def counted(self: Any) -> None:
        rounds["started"] += 1
        try:
            await real_beats(self)
        finally:
            rounds["done"] += 1

    async def op(self: Any, name: str, operation: Any, **attrs: Any) -> Any:
        reply = await real_op(self, name, operation, **attrs)
        if name == "coord.take" and held:
            # the restart is applied on the server; its reply waits until a whole heartbeat
            # round sent after it was handled, or until the stop has cancelled the run
            held.pop()
            holding.set()
            mark = rounds["started"]
            for _ in range(1_000):
                if meanwhile == "heartbeat" and rounds["done"] > mark:
                    break
                if meanwhile == "stop" and any(r.reason for r in self._runs.values()):
                    break
                await asyncio.sleep(0.01)
        return reply

    calls: list[str] = []
    started = threading.Event()

    def chat(value: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        calls.append(value["messages"][-1]["content"])
        if len(calls) == 1:
            held.append(1)  # hold the restart that this call's interrupt makes
            started.set()
            ctx.cancelled.wait(20)
            return {"messages": []}
        return {"messages": [*value["messages"], {"role": "ai", "content": "fresh"}]}

    monkeypatch.setattr(_worker.Worker, "_heartbeats", counted)
    monkeypatch.setattr(_worker.Worker, "_op", op)
    with worker_factory({"chat": chat}, stop_grace_seconds=0) as worker:
        task_id = tasks.submit("chat", _messages("one"))
        assert started.wait(10)
        tasks.send(task_id, {"role": "user", "content": "two"}, strategy="interrupt")
        if meanwhile == "heartbeat":
            info = tasks.join(task_id, timeout=20)
        else:
            assert holding.wait(10)
            worker.stop()
    info = tasks.get(task_id)
    kinds = _kinds(tasks, task_id)
    if meanwhile == "heartbeat":
        assert info.status == "success"
        assert info.result["messages"][-1] == {"role": "ai", "content": "fresh"}
        assert info.attempts == 1
        assert calls == ["one", "two"]
    else:
        assert info.status == "pending"  # handed back, to run again elsewhere
        assert info.attempts == 0
        assert calls == ["one"]
        assert kinds.count("handed_back") == 1
    assert kinds.count("started") == 1
    assert kinds.count("interrupted") == 1


@pytest.mark.parametrize("then", ["returns", "waits"])
def test_a_run_whose_lease_was_taken_over_writes_nothing(
    connector: RedisConnector, tasks: TaskClient, worker_factory: Any, then: str
) -> None:
    """Another worker took the task over (new token, fresh lease) while this run went on.
    Whether the agent then returns (its progress and its end are refused, or a heartbeat
    stops it first) or keeps waiting (a heartbeat finds the lease lost and stops it), the
    stale run writes nothing and acknowledges nothing: the task is the new holder's."""
    running, release = threading.Event(), threading.Event()

    async def slow(_x: Any, ctx: TaskContext) -> str:
        running.set()
        await asyncio.to_thread(release.wait, 10)
        await ctx.aprogress(note="stale")  # refused: the token is not this run's any more
        return "stale result"

    raw = connector.client()
    queue = tasks.keys.queue("slow").stream
    with worker_factory({"slow": slow}) as worker:
        task_id = tasks.submit("slow", {})
        assert running.wait(10)
        record = tasks.keys.task(task_id).record
        far = int(time.time() * 1000) + 600_000
        raw.hincrby(record, "fence", 1)  # the takeover: a new token, the other's lease
        raw.hset(record, mapping={"worker": "someone-else", "lease_until": far})
        if then == "returns":
            release.set()
        _until(lambda: not worker._runs, "the stale run is over")
        release.set()
        # its queue entry is the new holder's to acknowledge
        assert raw.xpending(queue, GROUP)["pending"] == 1
    info = tasks.get(task_id)
    assert info.status == "running"
    assert info.worker == "someone-else"
    assert info.result is None
    kinds = _kinds(tasks, task_id)
    assert [k for k in kinds if k not in ("submitted", "started")] == []


def test_the_namespace_log_has_every_lifecycle_event_once(
    connector: RedisConnector, tasks: TaskClient, worker_factory: Any
) -> None:
    """Each worker-side lifecycle event of a task (started, completed, retrying, failed,
    timeout, cancelled, interrupted) is in the namespace log exactly once, as the very bytes
    of the task's own stream (same event id): a reader of both can tell an event seen twice."""
    chat_started = threading.Event()

    def boom(_x: Any) -> str:
        raise ValueError("no")

    async def sleepy(_x: Any) -> str:
        await asyncio.sleep(30)
        return "late"

    def chat(value: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        if len(value["messages"]) == 1:
            chat_started.set()
            ctx.cancelled.wait(20)
            return {"messages": []}
        return {"messages": [*value["messages"], {"role": "ai", "content": "ok"}]}

    agents = {"double": lambda x: {"n": x["n"] * 2}, "boom": boom, "sleepy": sleepy, "chat": chat}
    with worker_factory(agents):
        ok = tasks.submit("double", {"n": 1})
        failed = TaskClient(connector=tasks.connector, max_attempts=2, **FAST).submit("boom", {})
        late = tasks.submit("sleepy", {}, run_timeout=0.2)
        cancelled = tasks.submit("sleepy", {})
        chatted = tasks.submit("chat", _messages("one"))
        _running(tasks, cancelled)
        assert tasks.cancel(cancelled) == "cancelling"
        assert chat_started.wait(10)
        tasks.send(chatted, {"role": "user", "content": "two"}, strategy="interrupt")
        ids = (ok, failed, late, cancelled, chatted)
        ends = {t: tasks.join(t, timeout=20).status for t in ids}
    # the worker has stopped: every line it had queued for the log is written
    assert ends == {
        ok: "success",
        failed: "error",
        late: "timeout",
        cancelled: "cancelled",
        chatted: "success",
    }
    bus = EventBus(connector=connector, namespace=tasks.namespace)
    log_rows = connector.client().xrange(bus.keys.log)
    for task_id in ids:
        own = [
            fields[b"e"]
            for _eid, fields in connector.client().xrange(tasks.keys.task(task_id).events)
        ]
        own_kinds = [e.type.rsplit(".", 1)[-1] for _, e in tasks.events(task_id)]
        expected = [b for b, kind in zip(own, own_kinds, strict=True) if kind in _LIFECYCLE]
        logged = [f[b"e"] for _eid, f in log_rows if f.get(b"t") == task_id.encode()]
        # once each, and in the task's own order (an interrupt's line came after the run's
        # end when the take script left it to the log writer)
        assert logged == expected, (task_id, own_kinds)
    assert _kinds(tasks, failed).count("retrying") == 1
    assert _kinds(tasks, chatted).count("interrupted") == 1


@pytest.mark.parametrize("ending", ["fails", "stops"])
def test_a_cancel_requested_during_an_attempt_that_ends_early_runs_no_other(
    connector: RedisConnector, tasks: TaskClient, worker_factory: Any, ending: str
) -> None:
    """The client's cancel answered 'cancelling'; before the worker's heartbeat saw it, the
    attempt failed (to be retried) or the worker stopped (handing the task back). No other
    attempt may run for a task whose cancel was requested: it ends cancelled, logged once."""
    calls: list[int] = []
    running, release = threading.Event(), threading.Event()

    def flaky(_x: Any) -> str:
        calls.append(1)
        if len(calls) > 1:
            return "ran again after its cancel"
        running.set()
        release.wait(10)
        raise ValueError("the first attempt fails")

    # heartbeats far apart: the cancel is not seen by the run, only by what follows it
    slow_beats = {"lease_seconds": 600, "heartbeat_seconds": 300}
    options = {"stop_grace_seconds": 0, **slow_beats}
    with worker_factory({"flaky": flaky}, **options) as worker:
        task_id = tasks.submit("flaky", {})
        assert running.wait(10)
        assert tasks.cancel(task_id) == "cancelling"
        if ending == "fails":
            release.set()
            queue, raw = tasks.keys.queue("flaky"), connector.client()
            # (on a Cluster the retry's ZADD is a call of its own, after the finish's events)
            _until(lambda: raw.zscore(queue.delayed, task_id) is not None, "a retry is due")
            # the retry is due: move it to the queue as the promoter would (its next run
            # is a heartbeat away)
            assert raw.zrem(queue.delayed, task_id) == 1
            raw.xadd(queue.stream, {"t": task_id})
            info = tasks.join(task_id, timeout=20)
        else:
            worker.stop()
            _until(lambda: tasks.get(task_id).status == "pending", "the task is handed back")
            release.set()  # the attempt's thread ends (its failure is nobody's now)
    if ending == "stops":  # another worker takes the handed back task
        assert tasks.get(task_id).status == "pending"
        with worker_factory({"flaky": flaky}, **slow_beats):
            info = tasks.join(task_id, timeout=20)
    assert info.status == "cancelled"
    assert calls == [1]
    kinds = _kinds(tasks, task_id)
    assert kinds.count("started") == 1
    assert kinds.count("cancelled") == 1
    bus = EventBus(connector=connector, namespace=tasks.namespace)
    logged = [
        bus._decode_entry(bus.keys.log, f).type.rsplit(".", 1)[-1]
        for _eid, f in connector.client().xrange(bus.keys.log)
        if f.get(b"t") == task_id.encode()
    ]
    assert logged.count("cancelled") == 1


def test_a_handed_back_task_is_in_the_namespace_log_in_order(
    connector: RedisConnector, tasks: TaskClient, worker_factory: Any
) -> None:
    """A stop hands a running task back: its 'handed_back' event is in the namespace log
    once, between the first attempt's 'started' and the next worker's, as the task's own
    bytes (a live tail saw a task start twice with nothing in between)."""
    first, release = threading.Event(), threading.Event()

    async def waits_once(_x: Any) -> str:
        if not first.is_set():
            first.set()
            await asyncio.sleep(30)  # cancelled by the stop
        return "done"

    with worker_factory({"w": waits_once}, stop_grace_seconds=0) as worker:
        task_id = tasks.submit("w", {})
        assert first.wait(10)
        _running(tasks, task_id)
        worker.stop()
        _until(lambda: tasks.get(task_id).status == "pending", "the task is handed back")
    release.set()
    with worker_factory({"w": waits_once}):
        assert tasks.join(task_id, timeout=20).status == "success"
    own = [f[b"e"] for _eid, f in connector.client().xrange(tasks.keys.task(task_id).events)]
    kinds = _kinds(tasks, task_id)
    assert kinds == ["submitted", "started", "handed_back", "started", "completed"], kinds
    bus = EventBus(connector=connector, namespace=tasks.namespace)
    logged = [
        f[b"e"]
        for _eid, f in connector.client().xrange(bus.keys.log)
        if f.get(b"t") == task_id.encode()
    ]
    assert logged == [b for b, kind in zip(own, kinds, strict=True) if kind in _LIFECYCLE]


def test_a_stop_does_not_wait_for_an_agent_that_ignores_its_cancel(
    tasks: TaskClient, worker_factory: Any
) -> None:
    """An agent that swallows every cancel held `stop()` (and SIGTERM) for as long as it
    ran. After the grace, and as long again for the cancel to be taken, the stop hands the
    task back and leaves the run behind: the task runs on another worker, once, and what the
    left-behind run returns later is refused by the fence."""
    started, release, returned = threading.Event(), threading.Event(), threading.Event()

    async def stubborn(_x: Any) -> str:
        started.set()
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # ignores every cancel
                await asyncio.sleep(0.02)
        returned.set()
        return "late"

    with worker_factory({"stub": stubborn}, stop_grace_seconds=0) as first:
        task_id = tasks.submit("stub", {})
        assert started.wait(10)
        _running(tasks, task_id)
        first.stop()
        _until(lambda: tasks.get(task_id).status == "pending", "the task is handed back")
        assert first.abandoned == 1
        assert not returned.is_set()  # the stop did not wait for the agent
        with worker_factory({"stub": lambda _x: "second"}):
            assert tasks.result(task_id, timeout=20) == "second"
        release.set()  # the left-behind run returns now: its success must be refused
        assert returned.wait(10)
    info = tasks.get(task_id)
    assert info.status == "success"
    assert info.result == "second"
    kinds = _kinds(tasks, task_id)
    assert kinds.count("started") == 2
    assert kinds.count("handed_back") == 1
    assert kinds.count("completed") == 1


def test_run_returns_without_waiting_for_a_sync_agent_left_in_its_thread(
    connector: RedisConnector, tasks: TaskClient
) -> None:
    """A sync agent in a blocking call does not see the stop until its own check of
    `ctx.cancelled`. The stop hands its task back at once; `Worker.run()` then returned only
    when the thread did (`asyncio.run` waits for executor threads), so SIGTERM did not stop
    the CLI's worker for as long as the call lasted."""
    entered, release = threading.Event(), threading.Event()

    def blocking(_x: Any) -> str:
        entered.set()
        release.wait(60)  # a blocking call that never looks at ctx.cancelled
        return "late"

    conn = RedisConnector(settings=connector.settings)
    worker = _worker.Worker(
        connector=conn, agents={"block": blocking}, stop_grace_seconds=0, **FAST
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        _until(lambda: "block" in tasks.agents(), "the worker announced its agent")
        task_id = tasks.submit("block", {})
        assert entered.wait(10)
        worker.stop()
        thread.join(timeout=20)
        assert not thread.is_alive(), "run() waited for the agent's thread"
        assert worker.threads_running == 1
        assert tasks.get(task_id).status == "pending"
        assert _kinds(tasks, task_id).count("handed_back") == 1
    finally:
        release.set()
        worker.stop()
        thread.join(timeout=20)
    _until(lambda: worker.threads_running == 0, "the agent's thread ended")


def test_the_call_after_a_swallowed_interrupt_gets_a_context_that_is_not_cancelled(
    tasks: TaskClient, worker_factory: Any
) -> None:
    """The interrupt told the call's context to stop (a sync agent's check). The agent
    swallowed it and answered, so the run goes on with the follow-up: the next call's
    context must not read as cancelled (its follow-ups would read as none)."""
    agent = _Swallower()
    seen: list[bool] = []

    async def second_call(value: dict[str, Any], config: Any = None) -> dict[str, Any]:
        run = worker._runs[task_id]
        seen.append(run.ctx.cancelled.is_set())
        return {"messages": [*value["messages"], {"role": "ai", "content": "done"}]}

    with worker_factory({"chat": agent}) as worker:
        task_id = tasks.submit("chat", _messages("one"))
        assert agent.first.wait(10)
        first_call = agent.ainvoke
        agent.ainvoke = second_call  # type: ignore[method-assign]
        try:
            tasks.send(task_id, {"role": "user", "content": "two"}, strategy="interrupt")
            info = tasks.join(task_id, timeout=20)
        finally:
            agent.ainvoke = first_call  # type: ignore[method-assign]
    assert info.status == "success"
    assert seen == [False]
