"""A task record whose submit never queued it expires: it is never left pending on no queue.

Submitting is two steps in two slots (create the record, enqueue its id), one call each on a
Cluster. A record is created with a TTL that goes once the task is queued (in the enqueue's
own call on a single server, by ``coord_confirm`` on a Cluster, at the latest by the claim),
so a submit that failed, was refused or died between the steps leaves nothing for good.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from deepagents_redis.coord import TaskClient, _client
from deepagents_redis.coord._scripts import CONFIRM, ENQUEUE
from deepagents_redis.core import (
    BackpressureError,
    DeepAgentsRedisError,
    LuaScript,
    OutcomeUnknownError,
    Script,
    _driver,
)


def _spy_ids(client: TaskClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The task ids `client`'s submits build (a random id never reaches the caller on error)."""
    made: list[str] = []
    prepare = client._prepare

    def spy(*args: Any) -> Any:
        prepared = prepare(*args)
        made.append(prepared[0])
        return prepared

    monkeypatch.setattr(client, "_prepare", spy)
    return made


def _fail_script(monkeypatch: pytest.MonkeyPatch, target: LuaScript) -> list[int]:
    """Every call of `target` fails on the wire (the server never sees it); counts them."""
    calls: list[int] = []
    run_raw, arun_raw = LuaScript.run_raw, LuaScript.arun_raw

    def failing(self: LuaScript, *args: Any, **kwargs: Any) -> Any:
        if self is target:
            calls.append(1)
            raise redis.exceptions.ConnectionError("connection lost (injected by the test)")
        return run_raw(self, *args, **kwargs)

    async def afailing(self: LuaScript, *args: Any, **kwargs: Any) -> Any:
        if self is target:
            calls.append(1)
            raise redis.exceptions.ConnectionError("connection lost (injected by the test)")
        return await arun_raw(self, *args, **kwargs)

    monkeypatch.setattr(LuaScript, "run_raw", failing)
    monkeypatch.setattr(LuaScript, "arun_raw", afailing)
    return calls


class _Died(Exception):
    """The submitter's process ends here (nothing after this point of its submit runs)."""


def _expiring(raw: Any, *keys: str) -> None:
    for key in keys:
        assert raw.exists(key) == 1, key
        assert raw.pttl(key) > 0, f"{key} has no TTL: pending on no queue for good"


def test_a_queued_task_has_no_ttl(connector: Any) -> None:
    # A task may wait on its queue however long: once queued its record does not expire.
    tasks = TaskClient(connector=connector, check_agents=False)
    raw = connector.client()
    for key in (None, "k"):
        task_id = tasks.submit("idle", {"n": 1}, idempotency_key=key)
        keys = tasks.keys.task(task_id)
        assert raw.pttl(keys.record) == -1
        assert raw.pttl(keys.events) == -1
        if key is not None:  # a repeat finds it queued and leaves it so
            assert tasks.submit("idle", {"n": 1}, idempotency_key=key) == task_id
            assert raw.pttl(keys.record) == -1
        tasks.cancel(task_id)


@pytest.mark.parametrize("keyed", [False, True])
@pytest.mark.parametrize("use_async", [False, True])
async def test_a_submit_whose_enqueue_failed_leaves_a_record_that_expires(
    connector: Any, monkeypatch: pytest.MonkeyPatch, keyed: bool, use_async: bool
) -> None:
    # On a Cluster the create and the enqueue are two calls: the enqueue failing for good
    # left a pending record with no TTL on no queue, and a random id the caller never got
    # (so no retry could ever queue it). The single-server chain is made to run the same
    # two calls here (it runs them as one script there, which fails whole).
    monkeypatch.setattr(_driver, "one_slot", lambda *_a: False)
    tasks = TaskClient(connector=connector, check_agents=False)
    made = _spy_ids(tasks, monkeypatch)
    calls = _fail_script(monkeypatch, ENQUEUE)
    key = "failed-enqueue" if keyed else None

    async def submit() -> str:
        if use_async:
            return await tasks.asubmit("idle", {"n": 1}, idempotency_key=key)
        return tasks.submit("idle", {"n": 1}, idempotency_key=key)

    with pytest.raises(DeepAgentsRedisError):
        await submit()
    assert calls
    keys = tasks.keys.task(made[0])
    raw = connector.client()
    _expiring(raw, keys.record, keys.events)
    assert tasks.get(made[0]).status == "pending"
    monkeypatch.undo()
    if keyed:  # the submitter's retry queues it, and the record stays from then on
        again = TaskClient(connector=connector, check_agents=False)
        assert again.submit("idle", {"n": 1}, idempotency_key=key) == made[0]
        assert raw.pttl(keys.record) == -1
        assert raw.pttl(keys.events) == -1
        assert [t["task_id"] for t in again.active("idle")] == [made[0]]
        again.cancel(made[0])


def _refuse_during_abandon(
    monkeypatch: pytest.MonkeyPatch, full: TaskClient, during: Callable[[], None]
) -> None:
    """Run `during` when `full`'s submit is about to remove the record it made (refused)."""
    original = TaskClient._submit_op

    def racing(self: TaskClient, *args: Any, **kwargs: Any) -> Any:
        op = original(self, *args, **kwargs)
        reply: Any = None
        while True:
            try:
                request = op.send(reply)
            except StopIteration as stop:
                return stop.value
            if self is full and isinstance(request, Script) and request.script is _client.ABANDON:
                during()
            reply = yield request

    monkeypatch.setattr(TaskClient, "_submit_op", racing)


@pytest.mark.parametrize("use_async", [False, True])
async def test_two_same_key_submits_both_refused_leave_a_record_that_expires(
    connector: Any, monkeypatch: pytest.MonkeyPatch, use_async: bool
) -> None:
    # Two submits with one idempotency key, the backlog full for both: the first made the
    # record and may not remove it (the second adopted it), the second made none. The
    # record stayed pending with no TTL on no queue, for good.
    full = TaskClient(connector=connector, check_agents=False, max_backlog=1)
    other = TaskClient(connector=connector, check_agents=False, max_backlog=1)
    filler = full.submit("crowded", {"filler": True})
    made = _spy_ids(full, monkeypatch)
    refused: list[BaseException] = []

    def second() -> None:
        try:
            other.submit("crowded", {"n": 1}, idempotency_key="both-refused")
        except BackpressureError as exc:
            refused.append(exc)

    _refuse_during_abandon(monkeypatch, full, second)

    async def submit() -> str:
        if use_async:
            return await full.asubmit("crowded", {"n": 1}, idempotency_key="both-refused")
        return full.submit("crowded", {"n": 1}, idempotency_key="both-refused")

    with pytest.raises(BackpressureError):
        await submit()
    assert len(refused) == 1
    keys = full.keys.task(made[0])
    raw = connector.client()
    _expiring(raw, keys.record, keys.events)
    assert [t["task_id"] for t in full.active("crowded")] == [filler]
    # with room, the same key queues that very task, which is kept from then on
    monkeypatch.undo()
    full.cancel(filler)
    assert other.submit("crowded", {"n": 1}, idempotency_key="both-refused") == made[0]
    assert raw.pttl(keys.record) == -1
    other.cancel(made[0])


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_submit_that_died_waiting_for_room_leaves_a_record_that_expires(
    connector: Any, monkeypatch: pytest.MonkeyPatch, use_async: bool
) -> None:
    # A random-id submit with a timeout made its record and waits for room; its process
    # dies (or its removal fails) before it removes the record: pending with no TTL on no
    # queue, for good, on a single server too.
    full = TaskClient(connector=connector, check_agents=False, max_backlog=1)
    full.submit("crowded-wait", {"filler": True})
    made = _spy_ids(full, monkeypatch)

    def died() -> None:
        raise _Died  # the submitter stops right there

    async def submit() -> str:
        if use_async:
            return await full.asubmit("crowded-wait", {"n": 1}, timeout=0.05)
        return full.submit("crowded-wait", {"n": 1}, timeout=0.05)

    _refuse_during_abandon(monkeypatch, full, died)
    with pytest.raises(_Died):
        await submit()
    keys = full.keys.task(made[0])
    _expiring(connector.client(), keys.record, keys.events)


def test_a_task_whose_enqueue_was_not_confirmed_is_kept_by_its_claim(
    connector: Any, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The submitter died after the enqueue and before the call that removes the record's
    # TTL (a Cluster's third call; simulated on a single server by giving the queued
    # record its create's TTL back): the task still runs, and its record must not expire
    # under its worker (nor its follow-ups with it).
    tasks = TaskClient(connector=connector, check_agents=False)
    raw = connector.client()
    made = _spy_ids(tasks, monkeypatch)
    _cluster_path(monkeypatch, connector)
    calls = _fail_script(monkeypatch, CONFIRM)
    with pytest.raises(DeepAgentsRedisError):
        tasks.submit("kept", {"n": 1})
    assert calls
    monkeypatch.undo()
    task_id = made[0]
    keys = tasks.keys.task(task_id)
    assert [t["task_id"] for t in tasks.active("kept")] == [task_id]
    _expiring(raw, keys.record, keys.events)
    tasks.send(task_id, "more")  # a follow-up goes with the record, should it expire
    _expiring(raw, keys.inbox)
    started, release = threading.Event(), threading.Event()

    def waits(_x: Any) -> str:
        started.set()
        release.wait(30)
        return "ran"

    with worker_factory({"kept": waits}):
        assert started.wait(30)
        deadline = time.monotonic() + 30
        while tasks.get(task_id).status != "running" and time.monotonic() < deadline:
            time.sleep(0.01)
        for key in (keys.record, keys.events, keys.inbox):
            assert raw.pttl(key) == -1, key
        release.set()
        assert tasks.result(task_id, timeout=30) == "ran"


def test_a_confirm_that_finds_the_record_gone_is_an_unknown_outcome(
    connector: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The submit's last call on a Cluster removes the record's TTL: a record already gone
    # (a submit slower than its own deadline) is an error, never a task id nobody runs.
    tasks = TaskClient(connector=connector, check_agents=False)
    made = _spy_ids(tasks, monkeypatch)
    _cluster_path(monkeypatch, connector)
    run_raw = LuaScript.run_raw

    def expired_first(self: LuaScript, client: Any, keys: Any = (), args: Any = ()) -> Any:
        if self is CONFIRM:
            client.delete(*keys)
        return run_raw(self, client, keys, args)

    monkeypatch.setattr(LuaScript, "run_raw", expired_first)
    with pytest.raises(OutcomeUnknownError):
        tasks.submit("gone", {"n": 1})
    assert connector.client().exists(tasks.keys.task(made[0]).record) == 0


def _cluster_path(monkeypatch: pytest.MonkeyPatch, connector: Any) -> None:
    """Submits take the Cluster's path (create, enqueue, confirm: three calls) on any server."""
    monkeypatch.setattr(type(connector), "cluster_hint", property(lambda _self: None))
