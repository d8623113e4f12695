"""`TaskClient` given bad arguments or entries someone else wrote: typed errors, nothing changed."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
from deepagents_redis.coord import TaskClient
from deepagents_redis.core import InvalidInputError, SerializationError


@pytest.mark.parametrize("after", ["junk", "1-x", "(5", "-1", "5-5-5"])
async def test_events_after_that_is_no_stream_id_is_invalid_input(
    connector: Any, after: str
) -> None:
    # `after` went to XRANGE as it was: the caller got the server's "Invalid stream ID" as a
    # bare DeepAgentsRedisError, not the InvalidInputError every other bad argument raises.
    tasks = TaskClient(connector=connector, check_agents=False)
    task_id = tasks.submit("nobody-serves-this", {"n": 1})
    with pytest.raises(InvalidInputError, match="after"):
        tasks.events(task_id, after=after)
    with pytest.raises(InvalidInputError, match="after"):
        await tasks.aevents(task_id, after=after)
    # a real id still pages
    [(first, _)] = tasks.events(task_id, count=1)
    assert tasks.events(task_id, after=first) == []
    assert [e for e, _ in await tasks.aevents(task_id, after="0")] == [first]
    tasks.cancel(task_id)


@pytest.mark.parametrize("count", [0, -1, True, 1.5])
async def test_events_count_that_is_not_a_positive_int_is_invalid_input(
    connector: Any, count: Any
) -> None:
    # count=0 and count=-1 made XRANGE answer nil, and the parse died with a TypeError.
    tasks = TaskClient(connector=connector, check_agents=False)
    task_id = tasks.submit("nobody-serves-this", {"n": 1})
    with pytest.raises(InvalidInputError, match="count"):
        tasks.events(task_id, count=count)
    with pytest.raises(InvalidInputError, match="count"):
        await tasks.aevents(task_id, count=count)
    tasks.cancel(task_id)


async def test_a_foreign_entry_in_a_task_stream_is_a_serialization_error(
    connector: Any,
) -> None:
    # An entry without our 'e' field (someone else's XADD) raised a bare KeyError, not the
    # SerializationError the docstring promises; the error names the entry so a caller can
    # page past it.
    tasks = TaskClient(connector=connector, check_agents=False)
    task_id = tasks.submit("nobody-serves-this", {"n": 1})
    [(first, _)] = tasks.events(task_id)
    foreign = connector.client().xadd(tasks.keys.task(task_id).events, {"x": "y"}).decode()
    with pytest.raises(SerializationError, match=foreign):
        tasks.events(task_id)
    with pytest.raises(SerializationError, match=foreign):
        await tasks.aevents(task_id)
    assert [e for e, _ in tasks.events(task_id, count=1)] == [first]
    assert tasks.events(task_id, after=foreign) == []
    tasks.cancel(task_id)


async def test_dead_letters_skip_entries_that_are_not_dead_letters(connector: Any) -> None:
    # One entry in a dead letters stream that our worker did not write (no 'e' field, bytes
    # that do not decode, a value that is not a mapping) broke the whole listing with a
    # KeyError/SerializationError/TypeError, and 'tasks dlq' with it; one that carried 'id'
    # or 'agent' keys overwrote the listing's own.
    tasks = TaskClient(connector=connector, check_agents=False)
    queue = tasks.keys.queue("dlq-agent")
    raw = connector.client()
    good = tasks.codec.encode({"task_id": "a" * 32, "reason": "failed"}, key=queue.dlq)
    first = raw.xadd(queue.dlq, {"e": good}).decode()
    raw.xadd(queue.dlq, {"x": "y"})
    raw.xadd(queue.dlq, {"e": b"\xff not ours"})
    raw.xadd(queue.dlq, {"e": tasks.codec.encode([1, 2], key=queue.dlq)})
    spoof = tasks.codec.encode({"id": "0-1", "agent": "other", "reason": "x"}, key=queue.dlq)
    last = raw.xadd(queue.dlq, {"e": spoof}).decode()
    for letters in (
        tasks.dead_letters("dlq-agent"),
        await tasks.adead_letters("dlq-agent"),
    ):
        assert [(d["id"], d["agent"], d["reason"]) for d in letters] == [
            (last, "dlq-agent", "x"),
            (first, "dlq-agent", "failed"),
        ]


@pytest.mark.parametrize("bad", [math.nan, True, "5"])
async def test_a_wait_that_is_not_a_number_of_seconds_is_invalid_input(
    connector: Any, bad: Any
) -> None:
    # timeout=nan made the operation's deadline NaN: the caller got RedisUnavailableError
    # ("deadline exceeded before sending"), as if the server were down; True waited one
    # second; a string died in a TypeError.
    tasks = TaskClient(connector=connector, check_agents=False)
    task_id = tasks.submit("nan-agent", {"n": 1})
    for call in (
        lambda: tasks.result(task_id, timeout=bad),
        lambda: tasks.join(task_id, timeout=bad),
        lambda: tasks.submit("nan-agent", {"n": 2}, timeout=bad),
        lambda: tasks.submit("nan-agent", {"n": 3}, run_timeout=bad),
    ):
        with pytest.raises(InvalidInputError, match="timeout"):
            call()
    for acall in (
        lambda: tasks.aresult(task_id, timeout=bad),
        lambda: tasks.ajoin(task_id, timeout=bad),
        lambda: tasks.asubmit("nan-agent", {"n": 4}, timeout=bad),
        lambda: tasks.asubmit("nan-agent", {"n": 5}, run_timeout=bad),
    ):
        with pytest.raises(InvalidInputError, match="timeout"):
            await acall()
    # nothing was submitted by the refused calls
    assert [t["task_id"] for t in tasks.active("nan-agent")] == [task_id]
    tasks.cancel(task_id)


def _wait_gone(raw: Any, key: str) -> None:
    """Wait (bounded by count, not speed) until `key` has expired."""
    for _ in range(600):
        if not raw.exists(key):
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"{key} never expired")


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_task_queued_longer_than_the_result_ttl_is_still_taken_off_by_cancel(
    connector: Any, use_async: bool
) -> None:
    # The enqueue mark (the entry id a cancel takes off the queue, and what makes a repeat
    # submit queue nothing) expired after result_ttl_seconds even while its task still
    # waited in the queue: cancelling such a task left its entry in the backlog (submits kept
    # failing with BackpressureError), and a repeat submit with the same idempotency key
    # queued it a second time.
    agent = f"long-wait-{use_async}"
    short = TaskClient(connector=connector, check_agents=False, max_backlog=2, result_ttl_seconds=1)
    raw = connector.client()
    queue = short.keys.queue(agent)
    keyed = short.submit(agent, {"n": 1}, idempotency_key=f"k-{use_async}")
    plain = short.submit(agent, {"n": 2})
    marks = [short.keys.mark(queue, t) for t in (keyed, plain)]
    # a second (the TTL) passes while both wait: a marker key with the same TTL goes first
    probe = f"{marks[0]}:probe"
    raw.set(probe, 1, px=1_000)
    _wait_gone(raw, probe)
    for mark in marks:
        assert raw.exists(mark)  # still queued: still marked
    again = (
        await short.asubmit(agent, {"n": 1}, idempotency_key=f"k-{use_async}")
        if use_async
        else short.submit(agent, {"n": 1}, idempotency_key=f"k-{use_async}")
    )
    assert again == keyed
    assert raw.xlen(queue.stream) == 2  # not queued twice
    status = await short.acancel(plain) if use_async else short.cancel(plain)
    assert status == "cancelled"
    assert raw.xlen(queue.stream) == 1  # room made
    short.submit(agent, {"n": 3})
    for mark in marks[1:]:
        assert raw.pttl(mark) > 0  # the cancelled task's mark expires with it


def test_a_task_that_ran_leaves_its_mark_to_expire(connector: Any, worker_factory: Any) -> None:
    # The mark has no TTL while its task is queued; the end of the entry gives it one, so
    # marks do not pile up.
    tasks = TaskClient(connector=connector, check_agents=False)
    raw = connector.client()
    with worker_factory({"marked": lambda x: x}):
        task_id = tasks.submit("marked", {"n": 1})
        assert tasks.result(task_id, timeout=60) == {"n": 1}
        mark = tasks.keys.mark(tasks.keys.queue("marked"), task_id)
        for _ in range(600):  # the ack follows the finish (on a Cluster, as a call of its own)
            if raw.pttl(mark) > 0:
                break
            threading.Event().wait(0.05)
        assert raw.pttl(mark) > 0


@pytest.mark.parametrize("use_async", [False, True])
async def test_an_idempotency_key_reused_with_another_run_timeout_is_invalid_input(
    connector: Any, use_async: bool
) -> None:
    # The submit digest covered the agent and the input only: a second submit with the same
    # key and another run_timeout got the first task's id back, and ran under the first
    # submit's limit (or none), as if it had been a repeat of the same request.
    tasks = TaskClient(connector=connector, check_agents=False)

    async def submit(key: str, run_timeout: float | None) -> str:
        args: dict[str, Any] = {"idempotency_key": f"{key}-{use_async}", "run_timeout": run_timeout}
        if use_async:
            return await tasks.asubmit("nobody-serves-this", {"n": 1}, **args)
        return tasks.submit("nobody-serves-this", {"n": 1}, **args)

    timed = await submit("timed", 30)
    assert await submit("timed", 30.0) == timed  # the same request: the same task
    bare = await submit("bare", None)
    assert await submit("bare", None) == bare
    for key, other in (("timed", None), ("timed", 60), ("bare", 5)):
        with pytest.raises(InvalidInputError, match="run_timeout"):
            await submit(key, other)
    assert tasks.get(timed).status == tasks.get(bare).status == "pending"
    tasks.cancel(timed)
    tasks.cancel(bare)
