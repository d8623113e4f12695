"""Writes whose reply is lost: redis-py's retry re-sends them, and they must apply once.

The connector's clients retry a command after a timeout (`RedisSettings.retries`), so a
script whose reply was lost runs again. These tests drop one script reply on the socket (the
server applied the call; the client sees a timeout and re-sends) and check what was written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from deepagents_redis.coord import TaskClient
from deepagents_redis.coord._keys import GROUP
from deepagents_redis.coord._scripts import RESET, UNRESET
from deepagents_redis.core import BackpressureError, NotFoundError, _connections


class _Loss:
    """Drops the reply of the first script call whose packed command holds one of `match`
    (a script's SHA for EVALSHA, its name for EVAL, or a distinctive argument)."""

    def __init__(self) -> None:
        self.match: tuple[bytes, ...] = ()
        self.lost = 0

    def arm(self, *match: bytes) -> None:
        self.match, self.lost = match, 0


@pytest.fixture
def loss(monkeypatch: pytest.MonkeyPatch) -> _Loss:
    state = _Loss()
    for cls in (_connections.DeadlineConnection, _connections.AsyncDeadlineConnection):
        _patch(monkeypatch, cls, state)
    return state


def _flat(command: Any) -> Iterator[bytes]:
    if isinstance(command, list | tuple):
        for part in command:
            yield from _flat(part)
    else:
        yield bytes(command)


def _chosen(state: _Loss, command: Any) -> bool:
    data = b"".join(_flat(command))
    return state.lost == 0 and b"EVAL" in data[:30] and any(m in data for m in state.match)


def _patch(monkeypatch: pytest.MonkeyPatch, cls: Any, state: _Loss) -> None:
    send, read = cls.send_packed_command, cls.read_response
    if cls is _connections.AsyncDeadlineConnection:

        async def asend(self: Any, command: Any, check_health: bool = True) -> None:
            # marked once sent: a health-check PING sent (and read) inside this call comes
            # first, and its reply is not the one to drop
            chosen = _chosen(state, command)
            await send(self, command, check_health)
            self._test_lose = chosen

        async def aread(self: Any, *args: Any, **kwargs: Any) -> Any:
            reply = await read(self, *args, **kwargs)
            if getattr(self, "_test_lose", False):
                self._test_lose = False
                state.lost += 1
                raise redis.exceptions.TimeoutError("reply dropped by the test")
            return reply

        monkeypatch.setattr(cls, "send_packed_command", asend)
        monkeypatch.setattr(cls, "read_response", aread)
        return

    def ssend(self: Any, command: Any, check_health: bool = True) -> None:
        chosen = _chosen(state, command)
        send(self, command, check_health)
        self._test_lose = chosen

    def sread(self: Any, *args: Any, **kwargs: Any) -> Any:
        reply = read(self, *args, **kwargs)
        if getattr(self, "_test_lose", False):
            self._test_lose = False
            state.lost += 1
            raise redis.exceptions.TimeoutError("reply dropped by the test")
        return reply

    monkeypatch.setattr(cls, "send_packed_command", ssend)
    monkeypatch.setattr(cls, "read_response", sread)


async def test_a_follow_up_whose_reply_was_lost_is_delivered_once(
    connector: Any, loss: _Loss
) -> None:
    # send() is one script call; its reply lost, the client's retry ran it again and the
    # task's inbox held the follow-up twice (the agent got the same message twice, and the
    # events stream two 'message' events), though send() returned one entry id.
    tasks = TaskClient(connector=connector, check_agents=False)
    task_id = tasks.submit("nobody-serves-this", {"n": 1})
    inbox = tasks.keys.task(task_id).inbox
    raw = connector.client()
    loss.arm(b"follow-up-sync")
    entry = tasks.send(task_id, "follow-up-sync")
    assert loss.lost == 1
    loss.arm(b"follow-up-async")
    aentry = await tasks.asend(task_id, "follow-up-async")
    assert loss.lost == 1
    rows = raw.xrange(inbox)
    assert [r[0].decode() for r in rows] == [entry, aentry]
    kinds = [e.type.rsplit(".", 1)[-1] for _, e in tasks.events(task_id)]
    assert kinds.count("message") == 2
    tasks.cancel(task_id)


def _failed_task(connector: Any, worker_factory: Any, agent: str) -> tuple[TaskClient, str]:
    """A task that ran out of attempts (status error), with no worker left running."""

    def broken(_x: Any) -> str:
        raise RuntimeError("always")

    tasks = TaskClient(connector=connector, check_agents=False)
    with worker_factory({agent: broken}, max_attempts=1):
        task_id = tasks.submit(agent, {"n": 1})
        assert tasks.join(task_id, timeout=30).status == "error"
    return tasks, task_id


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_retry_whose_reset_reply_was_lost_queues_the_task(
    connector: Any, worker_factory: Any, loss: _Loss, use_async: bool
) -> None:
    # retry() resets the record (coord_reset), then queues the task. The reset's reply lost,
    # the client's retry ran it again on the now pending task: 'task is pending', so retry()
    # raised InvalidInputError though the reset had applied, and the task stayed pending on
    # no queue: run by nothing, and every later retry() refused it ('task is pending').
    tasks, task_id = _failed_task(connector, worker_factory, f"reset-lost-{use_async}")
    loss.arm(RESET.sha.encode(), b"coord_reset")
    if use_async:
        assert await tasks.aretry(task_id) == task_id
    else:
        assert tasks.retry(task_id) == task_id
    assert loss.lost == 1
    assert tasks.get(task_id).status == "pending"
    assert [t["task_id"] for t in tasks.active(f"reset-lost-{use_async}")] == [task_id]
    assert tasks.cancel(task_id) == "cancelled"


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_refused_retry_whose_put_back_reply_was_lost_still_reports_the_refusal(
    connector: Any, worker_factory: Any, loss: _Loss, use_async: bool
) -> None:
    # A retry() the full backlog refuses puts the task back as it ended (coord_unreset) and
    # raises BackpressureError. The put-back's reply lost, the client's retry ran it again,
    # found the task no longer pending (put back already) and answered 0 ('moved since'):
    # retry() returned the task id as if it had been queued; the task was still 'error'.
    agent = f"unreset-lost-{use_async}"
    tasks, task_id = _failed_task(connector, worker_factory, agent)
    full = TaskClient(connector=connector, check_agents=False, max_backlog=1)
    full.submit(agent, {"filler": True})  # no worker now: the backlog is full
    loss.arm(UNRESET.sha.encode(), b"reset_refused")  # its event: in no other call

    async def retry() -> str:
        return await full.aretry(task_id) if use_async else full.retry(task_id)

    with pytest.raises(BackpressureError):
        await retry()
    assert loss.lost == 1
    assert tasks.get(task_id).status == "error"


def test_a_claim_whose_reply_was_lost_runs_the_task_once_in_that_attempt(
    connector: Any, worker_factory: Any, loss: _Loss
) -> None:
    # The worker's claim is one script call; its reply lost, the client's retry ran it again
    # and found the task running under this worker's own live lease: 'busy'. Nobody ran the
    # task until the lease ran out; then the next claim charged the lost attempt to a dead
    # worker ('worker stopped heartbeating'), and with one attempt the task ended 'out of
    # attempts' without its agent ever being called.
    calls: list[Any] = []

    def echo(x: Any) -> Any:
        calls.append(x)
        return x

    tasks = TaskClient(connector=connector, check_agents=False, max_attempts=1)
    loss.arm(b"task.started")
    with worker_factory({"claim-lost": echo}, max_attempts=1):
        task_id = tasks.submit("claim-lost", {"n": 1})
        assert tasks.result(task_id, timeout=60) == {"n": 1}
    assert loss.lost == 1
    info = tasks.get(task_id)
    assert (info.attempts, info.history) == (1, [])
    assert calls == [{"n": 1}]


@pytest.mark.parametrize("kind", ["task.completed", "task.retrying"])
def test_a_finish_whose_reply_was_lost_is_not_taken_for_a_takeover(
    connector: Any, worker_factory: Any, loss: _Loss, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    # The worker's finish is one script call (with the queue's ack after it); its reply lost,
    # the client's retry ran it again and found the attempt already ended: 'FENCED'. The
    # worker logged a takeover that never happened and counted it as fenced, and the ack
    # after the finish was skipped (on Cluster a retry then waited for the next reclaim).
    calls: list[Any] = []

    def flaky(x: Any) -> Any:
        calls.append(x)
        if kind == "task.retrying" and len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return x

    agent = f"finish-lost-{kind.rsplit('.', 1)[-1]}"
    tasks = TaskClient(connector=connector, check_agents=False, max_attempts=2)
    loss.arm(kind.encode())
    with (
        caplog.at_level("WARNING", logger="deepagents_redis.coord"),
        worker_factory({agent: flaky}, max_attempts=2, backoff_base_seconds=0.05),
    ):
        task_id = tasks.submit(agent, {"n": 1})
        assert tasks.result(task_id, timeout=60) == {"n": 1}
    assert loss.lost == 1
    assert not [r for r in caplog.records if "taken over" in r.getMessage()]
    info = tasks.get(task_id)
    assert info.status == "success"
    assert len(calls) == (2 if kind == "task.retrying" else 1)
    assert info.attempts == len(calls)


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_refused_submit_whose_create_reply_was_lost_leaves_no_record(
    connector: Any, loss: _Loss, monkeypatch: pytest.MonkeyPatch, use_async: bool
) -> None:
    # A submit with a random id creates the record and queues it in one call; with the
    # backlog full the queueing is refused and the submit removes the record it made. The
    # create's reply lost, the client's retry ran it again: "there already" (and marked it
    # adopted by a repeat submit), so the submit removed nothing and raised: a pending record
    # with no TTL stayed behind, on no queue, for good.
    agent = f"create-lost-{use_async}"
    full = TaskClient(connector=connector, check_agents=False, max_backlog=1)
    full.submit(agent, {"filler": True})  # no worker: the backlog is full
    made: list[str] = []
    prepare = full._prepare

    def spy(*args: Any) -> Any:
        prepared = prepare(*args)
        made.append(prepared[0])
        return prepared

    monkeypatch.setattr(full, "_prepare", spy)

    async def submit() -> str:
        return await full.asubmit(agent, {"n": 1}) if use_async else full.submit(agent, {"n": 1})

    loss.arm(b"task.submitted")
    with pytest.raises(BackpressureError):
        await submit()
    assert loss.lost == 1
    assert len(made) == 1
    keys = full.keys.task(made[0])
    raw = connector.client()
    assert raw.exists(keys.record) == 0
    assert raw.exists(keys.events) == 0
    with pytest.raises(NotFoundError):
        full.get(made[0])


def test_a_hand_back_whose_reply_was_lost_still_queues_the_task(
    hand_back: Any, connector: Any, loss: _Loss
) -> None:
    # A stopping worker hands a running task back, then queues it again. The hand-back's
    # reply lost, the client's retry ran it again and found the task pending under the next
    # token: 'FENCED', so the worker skipped the requeue and the task waited, pending, on no
    # queue until a reclaim.
    tasks, task_id = hand_back("handback-lost", lambda: loss.arm(b"task.handed_back"))
    assert loss.lost == 1
    assert tasks.get(task_id).status == "pending"
    # queued again: the read entry acknowledged (not left to a reclaim), one entry to read
    stream = tasks.keys.queue("handback-lost").stream
    raw = connector.client()
    assert raw.xpending(stream, GROUP)["pending"] == 0
    assert raw.xlen(stream) == 1
    assert [t["task_id"] for t in tasks.active("handback-lost")] == [task_id]
    assert tasks.cancel(task_id) == "cancelled"


@pytest.mark.parametrize("use_async", [False, True])
def test_a_progress_event_whose_reply_was_lost_is_stored_once(
    connector: Any, worker_factory: Any, loss: _Loss, use_async: bool
) -> None:
    # A progress event is one script call; its reply lost, the client's retry ran it again
    # and the task's events stream held the event twice (every reader of the task's events,
    # and the namespace log, saw the same progress twice).
    mark = f"progress-lost-{use_async}"

    async def aruns(_x: Any, ctx: Any) -> str:
        await ctx.aprogress(step=mark)
        return "done"

    def runs(_x: Any, ctx: Any) -> str:
        ctx.progress(step=mark)
        return "done"

    agent = f"progress-lost-{'async' if use_async else 'sync'}"
    tasks = TaskClient(connector=connector, check_agents=False)
    loss.arm(mark.encode())
    with worker_factory({agent: aruns if use_async else runs}):
        task_id = tasks.submit(agent, {})
        assert tasks.result(task_id, timeout=60) == "done"
    assert loss.lost == 1
    steps = [e.data for _, e in tasks.events(task_id) if e.type.endswith(".progress")]
    assert steps == [{"step": mark}]
