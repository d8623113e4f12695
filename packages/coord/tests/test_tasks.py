"""Remote tasks end to end on a real server (standalone and Cluster)."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest
from deepagents_redis.coord import (
    BackpressureError,
    ResultTimeoutError,
    TaskClient,
    TaskFailedError,
    UnknownAgentError,
)
from deepagents_redis.coord._keys import GROUP
from deepagents_redis.core import (
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    RedisConnector,
)

from .conftest import FAST

pytestmark = pytest.mark.integration


def _eventually(read: Any, size: int = 1) -> Any:
    for _ in range(250):
        got = read()
        if len(got) >= size:
            return got
        time.sleep(0.02)
    return read()


def double(x: dict[str, int]) -> dict[str, int]:
    return {"n": x["n"] * 2}


def test_submit_runs_once_and_returns_the_result(tasks: TaskClient, worker_factory: Any) -> None:
    with worker_factory({"double": double}):
        task_id = tasks.submit("double", {"n": 21})
        assert tasks.result(task_id, timeout=10) == {"n": 42}
        info = tasks.get(task_id)
    assert info.status == "success"
    assert info.attempts == 1
    assert info.done
    kinds = [
        e.type.rsplit(".", 2)[-2] + "." + e.type.rsplit(".", 1)[-1]
        for _, e in tasks.events(task_id)
    ]
    assert kinds == ["task.submitted", "task.started", "task.completed"]


def test_the_namespace_log_carries_the_tasks_own_events(
    connector: RedisConnector, tasks: TaskClient, worker_factory: Any
) -> None:
    """The log's 'started' and 'completed' lines are the task's own events (same id, same
    data), so a reader of both streams can tell one event seen twice."""
    from deepagents_redis.coord import EventBus

    with worker_factory({"double": double}):
        task_id = tasks.submit("double", {"n": 1})
        tasks.result(task_id, timeout=10)
        own = {e.type: e for _, e in tasks.events(task_id)}
        bus = EventBus(connector=connector, namespace=tasks.namespace)
        deadline = time.monotonic() + 10
        while True:  # on a Cluster the log is written off the task's path: wait for it
            logged = {
                e.type: e
                for e in (
                    bus._decode_entry(bus.keys.log, fields)
                    for _eid, fields in connector.client().xrange(bus.keys.log)
                )
                if e.taskid == task_id
            }
            if len(logged) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
    for kind in ("dev.deepagents-redis.task.started", "dev.deepagents-redis.task.completed"):
        assert logged[kind] == own[kind]
    assert logged["dev.deepagents-redis.task.completed"].data == {"attempt": 1}


def test_log_lines_are_the_task_streams_bytes_written_by_its_scripts(
    connector: RedisConnector,
    tasks: TaskClient,
    worker_factory: Any,
    redis_target: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task's log line holds the task stream's own event bytes and names the task. On one
    server the task's scripts write it, so it is there when the result is; on a Cluster
    (another slot) the worker's log writer adds it shortly after."""
    from deepagents_redis.coord import EventBus, _worker

    if redis_target.mode != "cluster":
        # a log writer would wait a minute before writing: the lines must come from the
        # task's own scripts
        monkeypatch.setattr(_worker, "_LOG_LINGER", 60.0)
    bus = EventBus(connector=connector, namespace=tasks.namespace)
    with worker_factory({"double": double}):
        task_id = tasks.submit("double", {"n": 2})
        assert tasks.result(task_id, timeout=10) == {"n": 4}
        rows = connector.client().xrange(bus.keys.log)
        if redis_target.mode == "cluster":
            rows = _eventually(lambda: connector.client().xrange(bus.keys.log), size=2)
    own = dict(connector.client().xrange(tasks.keys.task(task_id).events))
    lines = [fields for _eid, fields in rows if fields.get(b"t") == task_id.encode()]
    assert len(lines) == 2  # started, completed: no line missing, none twice
    assert {fields[b"e"] for fields in lines} <= {fields[b"e"] for fields in own.values()}
    kinds = [bus._decode_entry(bus.keys.log, fields).type for fields in lines]
    assert kinds == ["dev.deepagents-redis.task.started", "dev.deepagents-redis.task.completed"]


def test_the_claim_reply_is_one_packed_string() -> None:
    """The claim script answers with one MessagePack string (cheaper to parse than an
    array reply); anything else is refused with a typed error, not an IndexError."""
    import msgpack
    from deepagents_redis.coord._worker import _claim_reply
    from deepagents_redis.core import SerializationError

    assert _claim_reply(msgpack.packb([b"run", 3, 1, b"in"])) == [b"run", 3, 1, b"in"]
    for bad in (b"", b"\xc1", msgpack.packb([]), msgpack.packb({"a": 1}), None, [b"busy"]):
        with pytest.raises(SerializationError):
            _claim_reply(bad)


def test_hostile_log_lines_are_skipped(connector: RedisConnector, tasks: TaskClient) -> None:
    """A log line is checked against the key its bytes were encoded for: a task's line
    moved under another task id, a bad id, or the log's own bytes with a task id are
    refused; a line without a task id (subagent events, older workers) still reads."""
    from deepagents_redis.coord import EventBus
    from deepagents_redis.coord._event import Event

    bus = EventBus(connector=connector, namespace=tasks.namespace)
    a, b = "a" * 32, "b" * 32
    ev = Event(source="dar://x/w", type="dev.deepagents-redis.task.started", subject=a, taskid=a)
    for_a = ev.encode(bus.codec, key=bus.keys.task(a).events)
    for_log = ev.encode(bus.codec, key=bus.keys.log)
    good = [
        {b"e": for_a, b"t": a.encode()},
        {b"e": for_log},
    ]
    bad = [
        {b"e": for_a, b"t": b.encode()},  # moved under another task
        {b"e": for_a, b"t": b"../x"},  # not a task id
        {b"e": for_log, b"t": a.encode()},  # the log's bytes, claiming a task
        {b"e": ev.encode(bus.codec, key=bus.keys.task(b).events), b"t": b.encode()},  # about a
    ]
    rows = [(f"{i + 1}-0".encode(), fields) for i, fields in enumerate(good + bad)]
    decoded = bus._decode_rows(bus.keys.log, rows)
    assert [eid for eid, _ in decoded] == ["1-0", "2-0"]
    assert all(event == ev for _, event in decoded)


async def test_async_client_and_async_agent(tasks: TaskClient, worker_factory: Any) -> None:
    async def triple(x: dict[str, int]) -> int:
        return x["n"] * 3

    with worker_factory({"triple": triple}):
        task_id = await tasks.asubmit("triple", {"n": 5})
        assert await tasks.aresult(task_id, timeout=10) == 15
        assert (await tasks.aget(task_id)).status == "success"


def test_unknown_agent_names_the_known_ones(tasks: TaskClient, worker_factory: Any) -> None:
    with (
        worker_factory({"double": double}),
        pytest.raises(UnknownAgentError, match="'double'") as err,
    ):
        tasks.submit("dobule", {"n": 1})
    assert err.value.known == ["double"]


def test_idempotent_submit_returns_the_same_task(
    tasks: TaskClient, worker_factory: Any, connector: Any
) -> None:
    calls: list[int] = []

    def count(x: dict[str, int]) -> int:
        calls.append(x["n"])
        return x["n"]

    with worker_factory({"count": count}):
        first = tasks.submit("count", {"n": 7}, idempotency_key="order-7")
        tasks.result(first, timeout=10)
        again = tasks.submit("count", {"n": 7}, idempotency_key="order-7")
        assert again == first
        with pytest.raises(InvalidInputError, match="idempotency key"):
            tasks.submit("count", {"n": 8}, idempotency_key="order-7")
        time.sleep(0.5)
    assert calls == [7]


def test_a_finished_or_rescheduled_run_leaves_nothing_in_the_queue(
    tasks: TaskClient, worker_factory: Any, connector: Any
) -> None:
    # The finish and the queue ack go together (one round trip on one server): a success
    # and a retry each acknowledge and delete their entry, so nothing stays pending.
    seen: list[int] = []

    def once_flaky(x: dict[str, int]) -> int:
        seen.append(x["n"])
        if seen.count(x["n"]) == 1 and x["n"] % 2:
            raise RuntimeError("first try fails")
        return x["n"]

    client = connector.client()
    queue = tasks.keys.queue("once_flaky")
    # A slow heartbeat: the worker's own sweep of idle entries (which would acknowledge a
    # finished task's leftover entry) does not run within this test, so only the ack can.
    slow = {"heartbeat_seconds": 4.0, "lease_seconds": 12.0}
    with worker_factory({"once_flaky": once_flaky}, max_attempts=3, **slow):
        ids = [tasks.submit("once_flaky", {"n": n}) for n in range(6)]
        assert [tasks.result(task_id, timeout=15) for task_id in ids] == list(range(6))
        assert [tasks.get(task_id).attempts for task_id in ids] == [1, 2, 1, 2, 1, 2]
        for _ in range(50):  # on a Cluster the ack is a second call, just after the finish
            if not client.xlen(queue.stream):
                break
            time.sleep(0.02)
        assert client.xlen(queue.stream) == 0
    assert client.xpending(queue.stream, GROUP)["pending"] == 0
    assert client.zcard(queue.delayed) == 0


def test_failure_is_retried_then_dead_lettered(tasks: TaskClient, worker_factory: Any) -> None:
    def poison(_x: Any) -> None:
        raise RuntimeError("boom")

    with worker_factory({"poison": poison}, max_attempts=3):
        task_id = tasks.submit("poison", {})
        with pytest.raises(TaskFailedError, match="boom") as err:
            tasks.result(task_id, timeout=15)
        assert err.value.status == "error"
        info = tasks.get(task_id)
        assert info.attempts == 3
        assert [h["attempt"] for h in info.history] == [1, 2, 3]
        # the dead letter is written on the queue's slot right after the task's status
        letters = _eventually(lambda: tasks.dead_letters("poison"))
    assert [ltr["task_id"] for ltr in letters] == [task_id]
    assert "boom" in letters[0]["error"]
    assert len(letters[0]["history"]) == 3


def test_retry_after_dead_letter_runs_again(tasks: TaskClient, worker_factory: Any) -> None:
    state = {"fail": True}

    def flaky(_x: Any) -> str:
        if state["fail"]:
            raise RuntimeError("not yet")
        return "ok"

    with worker_factory({"flaky": flaky}, max_attempts=1):
        task_id = tasks.submit("flaky", {})
        with pytest.raises(TaskFailedError):
            tasks.result(task_id, timeout=10)
        state["fail"] = False
        tasks.retry(task_id)
        assert tasks.result(task_id, timeout=10) == "ok"


def _ended(tasks: TaskClient, connector: RedisConnector, task_id: str) -> tuple[int, bool]:
    """(items in the task's end list, its TTL set and within the record's)."""
    keys, raw = tasks.keys.task(task_id), connector.client()
    done_ttl, record_ttl = raw.pttl(keys.done), raw.pttl(keys.record)
    return raw.llen(keys.done), 0 < done_ttl <= record_ttl + 50


def test_every_way_a_task_ends_writes_its_end_list_once(
    connector: RedisConnector, tasks: TaskClient, worker_factory: Any
) -> None:
    """Waiters block on the end list alone: each ending script writes its one item (with the
    record's TTL), and a retry removes it."""
    import asyncio

    async def sleepy(_x: Any) -> str:
        await asyncio.sleep(30)
        return "late"

    def boom(_x: Any) -> str:
        raise ValueError("no")

    once = TaskClient(connector=tasks.connector, max_attempts=1)
    with worker_factory({"double": double, "sleepy": sleepy, "boom": boom}):
        ok = tasks.submit("double", {"n": 1})
        failed = once.submit("boom", {})
        late = tasks.submit("sleepy", {}, run_timeout=0.2)
        running = tasks.submit("sleepy", {})
        _eventually(lambda: [1] if tasks.get(running).status == "running" else [])
        assert tasks.cancel(running) == "cancelling"
        ends = {t: tasks.join(t, timeout=10).status for t in (ok, failed, late, running)}
    assert ends == {ok: "success", failed: "error", late: "timeout", running: "cancelled"}
    waiting = TaskClient(connector=tasks.connector, check_agents=False).submit("nobody", {})
    assert tasks.cancel(waiting) == "cancelled"
    assert tasks.join(waiting, timeout=10).status == "cancelled"
    for task_id in (ok, failed, late, running, waiting):
        assert _ended(tasks, connector, task_id) == (1, True), task_id
    tasks.retry(failed)  # no worker serves it now: it waits, and has not ended
    assert connector.client().llen(tasks.keys.task(failed).done) == 0
    with pytest.raises(ResultTimeoutError):
        tasks.join(failed, timeout=0.2)


def test_a_waiter_wakes_once_for_a_task_that_reports_progress(
    connector: RedisConnector, tasks: TaskClient, worker_factory: Any, monkeypatch: Any
) -> None:
    """The wait does not wake for 'started' or progress events: one read, after the end."""
    from deepagents_redis.coord import TaskContext
    from deepagents_redis.core import Pipeline

    async def chatty(_x: Any, ctx: TaskContext) -> str:
        import asyncio

        for i in range(5):
            await ctx.aprogress(step=i)
            await asyncio.sleep(0.02)
        return "done"

    reads: list[str] = []
    import deepagents_redis.core._driver as driver

    real = driver.execute

    def counted(client: Any, req: Any) -> Any:
        if isinstance(req, Pipeline) and req.cmds[0][0] == "BLMOVE":
            reads.append(req.cmds[0][1])
        return real(client, req)

    with worker_factory({"chatty": chatty}):
        task_id = tasks.submit("chatty", {})
        monkeypatch.setattr(driver, "execute", counted)
        started = time.monotonic()
        assert tasks.result(task_id, timeout=30) == "done"
        waited = time.monotonic() - started
        monkeypatch.undo()
    progress = [e for _, e in tasks.events(task_id) if e.type.endswith("task.progress")]
    assert len(progress) == 5
    # One read per block (each up to `cap` long), whatever the machine's speed; a wait that
    # woke per event would read at least 7 times (started, 5 progress, completed).
    cap = max(0.05, min(1.0, connector.settings.socket_timeout / 2))
    assert 1 <= len(reads) <= 1 + math.ceil(waited / cap)
    assert set(reads) == {tasks.keys.task(task_id).done}


def test_every_waiter_sees_the_end(
    connector: RedisConnector, tasks: TaskClient, worker_factory: Any
) -> None:
    """Four threads, each with its own client, wait on one task: each wakes with the result,
    and the end list still holds its one item (a waiter moves it onto the same list)."""
    import threading

    gate = threading.Event()

    def gated(_x: Any) -> str:
        gate.wait(10)
        return "done"

    results: list[Any] = []
    with worker_factory({"gated": gated}):
        task_id = tasks.submit("gated", {})

        def wait() -> None:
            results.append(TaskClient(connector=tasks.connector).result(task_id, timeout=20))

        threads = [threading.Thread(target=wait) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.2)  # let them block (a late one answers at once anyway)
        gate.set()
        for t in threads:
            t.join(30)
    assert results == ["done"] * 4
    assert _ended(tasks, connector, task_id) == (1, True)


def test_backlog_bound_refuses_and_changes_nothing(tasks: TaskClient) -> None:
    small = TaskClient(connector=tasks.connector, check_agents=False, max_backlog=3)
    ids = [small.submit("idle", {"i": i}) for i in range(3)]
    with pytest.raises(BackpressureError) as err:
        small.submit("idle", {"i": 3})
    assert (err.value.backlog, err.value.limit) == (3, 3)
    assert len(small.active("idle")) == 3
    started = time.monotonic()
    with pytest.raises(BackpressureError):
        small.submit("idle", {"i": 4}, timeout=0.3)
    assert time.monotonic() - started >= 0.3
    for task_id in ids:
        assert small.cancel(task_id) == "cancelled"


def test_cancel_a_running_task(tasks: TaskClient, worker_factory: Any) -> None:
    import asyncio

    async def sleepy(_x: Any) -> str:
        await asyncio.sleep(30)
        return "late"

    with worker_factory({"sleepy": sleepy}):
        task_id = tasks.submit("sleepy", {})
        for _ in range(100):
            if tasks.get(task_id).status == "running":
                break
            time.sleep(0.02)
        assert tasks.cancel(task_id) == "cancelling"
        # join would time out (ResultTimeoutError) if the 30 s run were not stopped
        info = tasks.join(task_id, timeout=10)
    assert info.status == "cancelled"
    with pytest.raises(TaskFailedError, match="cancelled"):
        tasks.result(task_id, timeout=1)


def test_bad_input(tasks: TaskClient) -> None:
    small = TaskClient(connector=tasks.connector, check_agents=False, max_input_bytes=1_024)
    with pytest.raises(PayloadTooLargeError):
        small.submit("a", {"blob": "x" * 5_000})
    with pytest.raises(InvalidInputError):
        small.submit("bad\nname", {})
    with pytest.raises(InvalidInputError):
        small.get("../../etc")
    with pytest.raises(NotFoundError):
        small.get("0" * 32)


async def test_result_reads_the_outcome_as_join_does(
    connector: RedisConnector, tasks: TaskClient, worker_factory: Any
) -> None:
    """`result()` reads only the record's status, error and result: the same answers and
    errors as `join()`, for a missing task, a bad id and a tampered result alike."""
    from deepagents_redis.core import SerializationError

    with pytest.raises(NotFoundError):
        tasks.result("0" * 32, timeout=1)
    with pytest.raises(NotFoundError):
        await tasks.aresult("0" * 32, timeout=1)
    with pytest.raises(InvalidInputError):
        tasks.result("../../etc", timeout=1)
    with worker_factory({"double": double}):
        task_id = tasks.submit("double", {"n": 4})
        assert tasks.result(task_id, timeout=10) == {"n": 8}
        assert await tasks.aresult(task_id, timeout=10) == {"n": 8}
        assert tasks.join(task_id, timeout=10).result == {"n": 8}
    record = tasks.keys.task(task_id).record
    other = tasks.codec.encode({"n": 666}, key=tasks.keys.task("1" * 32).record)
    connector.client().hset(record, "result", other)  # moved from another task's record
    for read in (lambda: tasks.result(task_id, timeout=1), lambda: tasks.get(task_id)):
        with pytest.raises(SerializationError):
            read()


def test_malformed_entry_goes_to_dead_letters_and_the_worker_goes_on(
    tasks: TaskClient, worker_factory: Any, connector: Any
) -> None:
    with worker_factory({"double": double}):
        queue = tasks.keys.queue("double").stream
        raw = connector.client()
        raw.xadd(queue, {"t": "not-a-task-id"})
        raw.xadd(queue, {"junk": "x" * 10})
        task_id = tasks.submit("double", {"n": 2})
        assert tasks.result(task_id, timeout=10) == {"n": 4}
        letters = _eventually(lambda: tasks.dead_letters("double"), size=2)
    assert {ltr["reason"] for ltr in letters} == {"malformed entry"}
    assert {ltr["fields"].get("t") for ltr in letters} == {"not-a-task-id", None}


def test_run_timeout_ends_with_status_timeout(tasks: TaskClient, worker_factory: Any) -> None:
    import asyncio

    async def slow(_x: Any) -> str:
        await asyncio.sleep(30)
        return "late"

    with worker_factory({"slow": slow}):
        task_id = tasks.submit("slow", {}, run_timeout=0.3)
        info = tasks.join(task_id, timeout=10)
    assert info.status == "timeout"
    assert info.attempts == 1


def test_an_agents_own_timeout_error_is_a_failure_not_a_run_timeout(
    tasks: TaskClient, worker_factory: Any
) -> None:
    """A TimeoutError the agent raises (its own HTTP call, say) fails the attempt like any
    error: it is retried and ends as ``error``. Only the run's own limit ends a task as
    ``timeout``."""

    async def impatient(_x: Any) -> str:
        raise TimeoutError("upstream took too long")

    with worker_factory({"impatient": impatient}):
        unlimited = tasks.submit("impatient", {})
        limited = tasks.submit("impatient", {}, run_timeout=30)
        infos = [tasks.join(task_id, timeout=10) for task_id in (unlimited, limited)]
    for info in infos:
        assert info.status == "error"
        assert info.error is not None
        assert "upstream took too long" in info.error
        assert info.attempts == info.max_attempts  # retried like any failure


def test_stop_lets_a_run_that_is_writing_its_result_finish(
    tasks: TaskClient, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stop()` hands back only runs still in their agent: a run whose agent returned is
    writing its result, and that write is not cancelled, even with no grace at all."""
    import asyncio
    import threading

    from deepagents_redis.coord import _worker

    writing, release = threading.Event(), threading.Event()
    real_end = _worker.Worker._end

    async def held_end(self: Any, *args: Any, **kwargs: Any) -> None:
        writing.set()
        await asyncio.to_thread(release.wait, 10)  # the stop arrives meanwhile
        await real_end(self, *args, **kwargs)

    monkeypatch.setattr(_worker.Worker, "_end", held_end)
    with worker_factory({"double": double}, stop_grace_seconds=0) as worker:
        task_id = tasks.submit("double", {"n": 3})
        assert writing.wait(10)
        worker.stop()
        time.sleep(0.3)  # the drain has run by now: it must leave this run alone
        release.set()
    info = tasks.join(task_id, timeout=10)
    assert info.status == "success"
    assert info.result == {"n": 6}
    assert "handed_back" not in [e.type.rsplit(".", 1)[-1] for _, e in tasks.events(task_id)]


def test_stop_is_safe_to_call_again_once_the_worker_has_ended(
    tasks: TaskClient, worker_factory: Any
) -> None:
    """`stop()` twice (a signal handler, then a ``finally``), the second after the worker's
    loop has closed, is a no-op: it raised the loop's "Event loop is closed"."""
    with worker_factory({"double": double}) as worker:
        assert tasks.result(tasks.submit("double", {"n": 2}), timeout=10) == {"n": 4}
        worker.stop()
        loop = worker._loop
        assert loop is not None
        for _ in range(500):  # the worker's thread closes its loop as `asyncio.run` ends
            if loop.is_closed():
                break
            time.sleep(0.02)
        assert loop.is_closed()
        worker.stop()  # and the fixture stops it once more on the way out


def test_send_reaches_a_running_task(tasks: TaskClient, worker_factory: Any) -> None:
    import asyncio

    from deepagents_redis.coord import TaskContext

    async def chat(_x: Any, ctx: TaskContext) -> list[Any]:
        for _ in range(500):
            got = await ctx.amessages()
            if got:
                return got
            await asyncio.sleep(0.01)
        return []

    with worker_factory({"chat": chat}):
        task_id = tasks.submit("chat", {})
        tasks.send(task_id, {"text": "and also this"})
        assert tasks.result(task_id, timeout=10) == [{"text": "and also this"}]
        with pytest.raises(InvalidInputError, match="success"):
            tasks.send(task_id, "too late")


def test_progress_events_from_a_runnable(tasks: TaskClient, worker_factory: Any) -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    model = GenericFakeChatModel(messages=iter([AIMessage(content="hello")]))
    with worker_factory({"model": model}):
        task_id = tasks.submit("model", "hi")
        reply = tasks.result(task_id, timeout=10)
    assert reply.content == "hello"
    progress = [e.data for _, e in tasks.events(task_id) if e.type.endswith("task.progress")]
    assert progress == [{"step": "model", "name": "GenericFakeChatModel"}]


def test_backlog_bound_holds_under_a_flood(tasks: TaskClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    small = TaskClient(connector=tasks.connector, check_agents=False, max_backlog=25)

    def one(i: int) -> bool:
        try:
            small.submit("flood", {"i": i})
        except BackpressureError:
            return False
        return True

    with ThreadPoolExecutor(16) as pool:
        accepted = sum(pool.map(one, range(200)))
    assert accepted == 25
    assert len(small.active("flood", count=1_000)) == 25


async def test_worker_refuses_an_evicting_server(redis_server_factory: Any) -> None:
    from deepagents_redis.coord import Worker
    from deepagents_redis.core import ConfigurationError, RedisSettings

    server = redis_server_factory(config={"maxmemory-policy": "allkeys-lru"})
    worker = Worker(
        settings=RedisSettings(url=server.url, key_prefix="p"),
        agents={"double": double},
        eviction_check="refuse",
    )
    try:
        with pytest.raises(ConfigurationError, match="can evict task queues"):
            await worker.arun()
        # The failed start leaves no task of its own behind (its event log writer was left
        # pending, and collected later on a closed loop as "Event loop is closed").
        left = [
            t
            for t in asyncio.all_tasks()
            if t is not asyncio.current_task()
            and getattr(t.get_coro(), "__qualname__", "").startswith("Worker.")
        ]
        assert left == []
        client = await worker.connector.aclient()
        assert await client.exists(worker.keys.queue("double").stream) == 0  # nothing set up
    finally:
        await worker.aclose()


def test_a_task_whose_workers_keep_dying_is_dead_lettered(
    tasks: TaskClient, worker_factory: Any, connector: Any
) -> None:
    from deepagents_redis.coord._scripts import CLAIM, GROUP

    one_shot = TaskClient(connector=tasks.connector, check_agents=False, max_attempts=1)
    task_id = one_shot.submit("double", {"n": 1})
    queue, keys = tasks.keys.queue("double"), tasks.keys.task(task_id)
    raw = connector.client()
    GROUP(raw, keys=[queue.stream], args=["workers"])
    raw.xreadgroup("workers", "doomed", {queue.stream: ">"}, count=1)  # a worker takes it...
    started = tasks._encoded("task.started", "doomed", task_id, "double", keys)
    CLAIM(
        raw,
        keys=keys.scripted,
        args=["doomed", 1, started, 10, b"", 60_000],
    )
    time.sleep(0.05)  # ... and dies: its 1 ms lease runs out
    from deepagents_redis.core import RecordingInstrumentation, set_instrumentation

    recorder = RecordingInstrumentation()
    previous = set_instrumentation(recorder)
    try:
        with worker_factory({"double": double}):
            info = tasks.join(task_id, timeout=10)
            letters = _eventually(lambda: tasks.dead_letters("double"))
    finally:
        set_instrumentation(previous)
    # the new worker took the dead one's entry over: one redelivery, counted per agent
    assert recorder.total("coord.redelivered", agent="double") == 1
    assert info.status == "error"
    assert info.error == "out of attempts: 1 of 1"
    assert [h["error"] for h in info.history] == ["worker stopped heartbeating"]
    assert [(ltr["task_id"], ltr["reason"]) for ltr in letters] == [(task_id, "out of attempts")]
    assert [e.type.rsplit(".", 1)[-1] for _, e in tasks.events(task_id)][-1] == "failed"
    assert _ended(tasks, connector, task_id) == (1, True)  # out of attempts ends it too


def test_a_sync_agent_reports_progress_and_sees_its_cancel(
    tasks: TaskClient, worker_factory: Any
) -> None:
    from deepagents_redis.coord import TaskContext

    def steps(_x: Any, ctx: TaskContext) -> str:
        ctx.progress(step="started", n=1)
        for _ in range(3_000):  # a sync agent polls ctx.cancelled at its step boundaries
            if ctx.cancelled.is_set():
                return "stopped"
            time.sleep(0.01)
        return "ran to the end"

    with worker_factory({"steps": steps}):
        task_id = tasks.submit("steps", {})
        for _ in range(500):
            if any(e.type.endswith("task.progress") for _, e in tasks.events(task_id)):
                break
            time.sleep(0.01)
        assert tasks.cancel(task_id) == "cancelling"
        info = tasks.join(task_id, timeout=10)
    assert info.status == "cancelled"
    progress = [e.data for _, e in tasks.events(task_id) if e.type.endswith("task.progress")]
    assert progress == [{"step": "started", "n": 1}]


def test_worker_refuses_bad_configuration(connector: Any) -> None:
    from deepagents_redis.coord import Worker

    with pytest.raises(InvalidInputError, match="at least one agent"):
        Worker(connector=connector, agents={})
    with pytest.raises(InvalidInputError, match="neither a runnable nor a callable"):
        Worker(connector=connector, agents={"x": 42})
    with pytest.raises(InvalidInputError, match="concurrency"):
        Worker(connector=connector, agents={"x": double}, concurrency=0)
    with pytest.raises(InvalidInputError):
        Worker(connector=connector, agents={"bad\nname": double})


def test_result_times_out_while_the_task_waits(tasks: TaskClient) -> None:
    from deepagents_redis.coord import ResultTimeoutError

    lonely = TaskClient(connector=tasks.connector, check_agents=False)
    task_id = lonely.submit("nobody-serves-this", {})
    with pytest.raises(ResultTimeoutError, match="still pending") as err:
        lonely.result(task_id, timeout=0.3)
    assert isinstance(err.value, TimeoutError)
    assert lonely.cancel(task_id) == "cancelled"
    with pytest.raises(TaskFailedError, match="cancelled"):
        lonely.result(task_id, timeout=1)


def test_the_submitters_trace_reaches_the_run_and_its_events(
    tasks: TaskClient, worker_factory: Any
) -> None:
    from deepagents_redis.core import RecordingInstrumentation, set_instrumentation

    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    inst = RecordingInstrumentation(context={"traceparent": parent, "tracestate": "dar=1"})
    previous = set_instrumentation(inst)
    try:
        with worker_factory({"double": double}):
            task_id = tasks.submit("double", {"n": 4})
            assert tasks.result(task_id, timeout=10) == {"n": 8}
    finally:
        set_instrumentation(previous)
    assert {"traceparent": parent, "tracestate": "dar=1"} in inst.attached  # the worker's run
    runs = [s for s in inst.spans if s.name == "coord.run"]
    assert [s.attrs["task"] for s in runs] == [task_id]
    submitted = next(e for _, e in tasks.events(task_id) if e.type.endswith("task.submitted"))
    assert (submitted.traceparent, submitted.tracestate) == (parent, "dar=1")


def test_no_trace_without_an_instrumentation_that_carries_one(
    tasks: TaskClient, worker_factory: Any
) -> None:
    with worker_factory({"double": double}):
        task_id = tasks.submit("double", {"n": 1})
        tasks.result(task_id, timeout=10)
    assert all(e.traceparent is None for _, e in tasks.events(task_id))


def _first_request_of_wait(client: TaskClient, task_id: str, monkeypatch: Any) -> str:
    """What a wait on `task_id` sends first: ``XREAD`` (a blocking read, alone or first in a
    pipeline) or ``HMGET`` (a look at the record first)."""
    redis_client = client.connector.client()
    seen: list[str] = []
    execute, pipeline = redis_client.execute_command, redis_client.pipeline

    def counted_execute(*args: Any, **kwargs: Any) -> Any:
        seen.append(str(args[0]))
        return execute(*args, **kwargs)

    def counted_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = pipeline(*args, **kwargs)
        queue = pipe.execute_command

        def first(*cmd: Any, **kw: Any) -> Any:
            seen.append(str(cmd[0]))
            return queue(*cmd, **kw)

        pipe.execute_command = first
        return pipe

    monkeypatch.setattr(redis_client, "execute_command", counted_execute)
    monkeypatch.setattr(redis_client, "pipeline", counted_pipeline)
    lane_commands = getattr(redis_client, "lane_commands", None)
    if lane_commands is not None:  # a Pipeline request on the command lane builds no pipeline

        def counted_lane(cmds: Any) -> Any:
            replies = lane_commands(cmds)
            if replies is not None:  # else the pipeline path above runs (and records)
                seen.append(str(cmds[0][0]))
            return replies

        monkeypatch.setattr(redis_client, "lane_commands", counted_lane)
    with pytest.raises(Exception, match="still pending"):
        client.result(task_id, timeout=0.2)
    monkeypatch.undo()
    return seen[0]


def test_a_wait_on_a_task_this_client_submitted_blocks_at_once(
    connector: Any, monkeypatch: Any
) -> None:
    # No worker: the task stays pending. The client that created it knows the task exists
    # and blocks on its end list right away; another client looks at the record first.
    mine = TaskClient(connector=connector, check_agents=False, **FAST)
    theirs = TaskClient(connector=connector, check_agents=False, **FAST)
    task_id = mine.submit("nobody", {"n": 1})
    assert _first_request_of_wait(mine, task_id, monkeypatch) == "BLMOVE"
    assert _first_request_of_wait(theirs, task_id, monkeypatch) == "HMGET"
    # The memo is used once: a second wait by the same client looks first too.
    assert _first_request_of_wait(mine, task_id, monkeypatch) == "HMGET"


def test_a_task_that_ended_before_the_wait_is_returned_from_the_memo(
    tasks: TaskClient, worker_factory: Any
) -> None:
    with worker_factory({"double": double}):
        task_id = tasks.submit("double", {"n": 4})
        _eventually(lambda: [1] if tasks.get(task_id).done else [])
        assert tasks.result(task_id, timeout=10) == {"n": 8}


def test_an_interrupted_sync_agent_is_fenced_and_its_follow_up_runs_once(
    tasks: TaskClient, worker_factory: Any
) -> None:
    import threading as th

    from deepagents_redis.coord import TaskContext

    calls: list[str] = []
    stale: list[bool] = []
    started = th.Event()

    def chat(value: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        calls.append(value["messages"][-1]["content"])
        if len(calls) == 1:  # the first call runs until it is told to stop
            started.set()
            ctx.cancelled.wait(20)
            time.sleep(0.3)  # it goes on for a while, as a sync agent does
            ctx.progress(note="stale")  # fenced: the token is not this call's any more
            stale.append(ctx.cancelled.is_set())
            return {"messages": [{"role": "ai", "content": "stale result"}]}
        return {"messages": [*value["messages"], {"role": "ai", "content": "fresh"}]}

    with worker_factory({"chat": chat}):
        task_id = tasks.submit("chat", {"messages": [{"role": "user", "content": "one"}]})
        assert started.wait(10)
        tasks.send(task_id, {"role": "user", "content": "two"}, strategy="interrupt")
        info = tasks.join(task_id, timeout=20)
        time.sleep(0.5)  # the stale call ends after the result; it must change nothing
        after = tasks.get(task_id)
    assert calls == ["one", "two"]
    assert info.result["messages"][-1] == {"role": "ai", "content": "fresh"}
    assert after.result == info.result
    assert stale == [True]
    kinds = [e.type.rsplit(".", 1)[-1] for _, e in tasks.events(task_id)]
    assert kinds.count("interrupted") == 1
    assert kinds.count("completed") == 1
    assert "progress" not in kinds


def test_a_follow_up_to_a_waiting_task_joins_its_first_run(
    tasks: TaskClient, worker_factory: Any
) -> None:
    seen: list[Any] = []

    def chat(value: dict[str, Any]) -> int:
        seen.append([m["content"] for m in value["messages"]])
        return len(seen)

    early = TaskClient(connector=tasks._connector, check_agents=False, **FAST)
    task_id = early.submit("chat", {"messages": [{"role": "user", "content": "one"}]})
    tasks.send(task_id, {"role": "user", "content": "two"}, strategy="interrupt")
    tasks.send(task_id, "three")
    with worker_factory({"chat": chat}):
        assert tasks.result(task_id, timeout=10) == 1
    assert seen == [["one", "two", "three"]]


def test_send_refuses_an_unknown_strategy(tasks: TaskClient) -> None:
    with pytest.raises(InvalidInputError, match="strategy"):
        tasks.send("0" * 32, "hi", strategy="later")  # type: ignore[arg-type]


def test_a_read_batch_is_claimed_in_one_round_trip(
    connector: Any, redis_target: Any, worker_factory: Any
) -> None:
    from deepagents_redis.core import RecordingInstrumentation, set_instrumentation

    early = TaskClient(connector=connector, check_agents=False, **FAST)
    ids = [early.submit("double", {"n": n}) for n in range(8)]
    # Someone else's garbage in the same batch: dead-lettered, the rest still claimed.
    redis_target.client.xadd(early.keys.queue("double").stream, {"t": "../not-a-task"})
    recorder = RecordingInstrumentation()
    previous = set_instrumentation(recorder)
    try:
        with worker_factory({"double": double}, concurrency=16):
            results = [early.result(task_id, timeout=15) for task_id in ids]
            letters = _eventually(lambda: early.dead_letters("double"))
    finally:
        set_instrumentation(previous)
    assert results == [{"n": 2 * n} for n in range(8)]
    assert [early.get(task_id).attempts for task_id in ids] == [1] * 8
    assert [letter["reason"] for letter in letters] == ["malformed entry"]
    claims = recorder.total("coord.claim", outcome="ok")
    if redis_target.mode == "cluster":
        assert claims == 8  # tasks live in other slots: one claim each
    else:
        assert claims < 8  # the first read took the backlog and claimed it in one call


def test_the_blocking_progress_on_the_workers_loop_raises_at_once(
    tasks: Any, worker_factory: Any
) -> None:
    # `TaskContext.progress` (for sync agents, in their thread) called by an async agent, on
    # the worker's own loop, waited for a write that loop had to make: the loop, and every
    # run's heartbeat with it, stood still for twice the write deadline, then TimeoutError.
    from deepagents_redis.coord import TaskContext

    seen: list[BaseException] = []

    async def reports(_x: Any, ctx: TaskContext) -> str:
        try:
            ctx.progress(step=1)
        except Exception as exc:  # what the call raises is the subject
            seen.append(exc)
        await ctx.aprogress(step=2)
        return "ok"

    def reports_in_thread(_x: Any, ctx: TaskContext) -> str:
        ctx.progress(step=3)  # a sync agent in its thread: the call it is for
        return "ok"

    with worker_factory({"reports": reports, "threaded": reports_in_thread}):
        first = tasks.submit("reports", {})
        second = tasks.submit("threaded", {})
        assert tasks.result(first, timeout=30) == "ok"
        assert tasks.result(second, timeout=30) == "ok"
    assert [type(e) for e in seen] == [RuntimeError]
    assert "aprogress" in str(seen[0])
    steps = [e.data for _, e in tasks.events(first) if e.type.endswith(".progress")]
    assert steps == [{"step": 2}]
    steps = [e.data for _, e in tasks.events(second) if e.type.endswith(".progress")]
    assert steps == [{"step": 3}]


def test_a_repeat_submit_after_the_record_expired_before_its_mark_runs(
    tasks: TaskClient, worker_factory: Any, connector: Any
) -> None:
    # The record gets its TTL from the script that ends the task, the enqueue mark its own
    # from the queue's ack after it (a second call on a Cluster, a reclaim's later ack, a
    # dead letter's): the record expires first. A repeat submit of the key in between made
    # a new record and read the old mark as "queued already": the task waited on no queue,
    # for good, and its result() never came.
    calls: list[int] = []

    def count(x: dict[str, int]) -> int:
        calls.append(x["n"])
        return x["n"]

    raw = connector.client()
    with worker_factory({"count": count}):
        first = tasks.submit("count", {"n": 1}, idempotency_key="expiring")
        assert tasks.result(first, timeout=10) == 1
        queue = tasks.keys.queue("count")
        # the ack follows the finish (a second call on a Cluster): wait for it, or the
        # repeat below may find the old entry still queued and rightly count on it
        deadline = time.monotonic() + 10
        while raw.xlen(queue.stream) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert raw.xlen(queue.stream) == 0
        mark = tasks.keys.mark(queue, first)
        assert raw.get(mark) is not None  # kept for result_ttl_seconds after the ack
        keys = tasks.keys.task(first)
        raw.delete(*keys.scripted)  # the record's TTL ran out first
        again = tasks.submit("count", {"n": 1}, idempotency_key="expiring")
        assert again == first
        assert tasks.result(again, timeout=10) == 1
        # and a repeat once it has ended runs nothing more
        assert tasks.submit("count", {"n": 1}, idempotency_key="expiring") == first
    assert calls == [1, 1]
