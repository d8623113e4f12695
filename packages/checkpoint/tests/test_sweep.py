"""`sweep_threads`: expired threads leave the thread index, and no live thread is lost to it.

The thread index lives in another slot than the threads on a Cluster, so no script can look
at a thread and its name at once; these tests interleave a sweep and a put at the two points
where a check-then-remove could lose a thread that is being created.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import pytest
import pytest_asyncio
import redis
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.core import (
    Command,
    InvalidInputError,
    RedisConnector,
    Script,
    SerializationError,
)
from langgraph.checkpoint.base import empty_checkpoint


def _put(saver: RedisSaver, thread: str) -> None:
    saver.put(
        {"configurable": {"thread_id": thread, "checkpoint_ns": ""}},
        empty_checkpoint(),
        {"step": 0},
        {},
    )


def _names(prefix: str) -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(5)]


def _interleaved(
    op: Generator[Any, Any, Any], before: Callable[[Any], bool], action: Callable[[], None]
) -> Generator[Any, Any, Any]:
    """`op` as the driver runs it, with `action` run once before its first request that
    `before` picks."""
    reply: Any = None
    done = False
    while True:
        try:
            request = op.send(reply)
        except StopIteration as stop:
            return stop.value
        if not done and before(request):
            done = True
            action()
        reply = yield request


def test_a_sweep_takes_expired_threads_off_and_keeps_live_ones(
    connector: RedisConnector,
) -> None:
    tag = uuid.uuid4().hex[:6]
    brief = RedisSaver(connector=connector, ttl_seconds=1)
    lasting = RedisSaver(connector=connector)
    expiring, kept = _names(f"gone-{tag}"), _names(f"kept-{tag}")
    for thread in expiring:
        _put(brief, thread)
    for thread in kept:
        _put(lasting, thread)
    raw = connector.client()
    for _ in range(400):  # the TTL runs out (Redis expires the keys, not this test)
        if not any(raw.exists(lasting.keys.thread(t).index) for t in expiring):
            break
        threading.Event().wait(0.025)
    assert set(expiring) <= set(lasting.threads())  # named though gone: what a sweep is for
    assert lasting.sweep_threads(batch=3) == len(expiring)  # pages of 3: across pages too
    assert [t for t in lasting.threads() if tag in t] == kept
    assert lasting.sweep_threads() == 0
    _put(brief, expiring[0])  # a thread written again after its sweep is named again
    assert [t for t in lasting.threads() if tag in t] == [expiring[0], *kept]


async def test_the_async_sweep_agrees(connector: RedisConnector) -> None:
    tag = uuid.uuid4().hex[:6]
    saver = RedisSaver(connector=connector)
    for thread in _names(f"a-{tag}"):
        _put(saver, thread)
    raw = connector.client()
    raw.delete(*saver.keys.thread(f"a-{tag}-001").all)  # as its TTL would
    assert await saver.asweep_threads(batch=2) == 1
    assert [t for t in saver.threads() if tag in t] == [
        n for n in _names(f"a-{tag}") if not n.endswith("001")
    ]


def test_a_sweep_keeps_a_thread_created_between_its_look_and_its_removal(
    connector: RedisConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep sees no thread, then a put creates it (writing its name, which is there
    already), then the sweep removes the name: without the second look, the live thread
    was gone from `threads()` and from `list(None)` and the migration's copy."""
    thread = f"reborn-{uuid.uuid4().hex[:6]}"
    sweeper = RedisSaver(connector=connector)
    writer = RedisSaver(connector=connector)
    _put(writer, thread)
    connector.client().delete(*writer.keys.thread(thread).all)  # expired
    original = RedisSaver._sweep_page_op

    def racing(self: RedisSaver, after: str, count: int) -> Any:
        is_removal = lambda r: isinstance(r, Command) and r.args[0] == "ZREM"  # noqa: E731
        return _interleaved(original(self, after, count), is_removal, lambda: _put(writer, thread))

    monkeypatch.setattr(RedisSaver, "_sweep_page_op", racing)
    assert sweeper.sweep_threads() == 0  # taken off, seen again, put back
    assert thread in list(sweeper.threads())


def test_a_put_names_a_new_thread_after_writing_it(
    connector: RedisConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put names a thread it has not seen in the index before its script; a sweep that
    runs in between sees no thread yet and removes the name. The put must name the thread
    again once it exists, or the thread is never listed."""
    thread = f"fresh-{uuid.uuid4().hex[:6]}"
    sweeper = RedisSaver(connector=connector)
    writer = RedisSaver(connector=connector)
    original = RedisSaver._put_op

    def racing(self: RedisSaver, *args: Any) -> Any:
        op = original(self, *args)
        if self is not writer:
            return op
        return _interleaved(op, lambda r: isinstance(r, Script), sweeper.sweep_threads)

    monkeypatch.setattr(RedisSaver, "_put_op", racing)
    _put(writer, thread)
    assert thread in list(sweeper.threads())


def test_a_sweep_takes_off_names_no_thread_can_have(connector: RedisConnector) -> None:
    # someone else's member in our index (too long, control characters): nothing to look at
    saver = RedisSaver(connector=connector)
    raw = connector.client()
    raw.zadd(saver.keys.threads, {"x" * 2000: 0, "bad\x00name": 0})
    assert saver.sweep_threads() >= 2
    assert not {"x" * 2000, "bad\x00name"} & set(saver.threads())


@pytest.mark.parametrize("batch", [0, -1, 2.5, True])
def test_a_batch_that_is_not_a_positive_int_is_refused(
    connector: RedisConnector, batch: Any
) -> None:
    with pytest.raises(InvalidInputError, match="batch"):
        RedisSaver(connector=connector).sweep_threads(batch=batch)


def test_copy_thread_names_its_new_thread_after_writing_it(
    connector: RedisConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`copy_thread` names the target before its first put, as `put` does: a sweep in
    between must not leave the copy unlisted."""
    from deepagents_redis.checkpoint._scripts import PUT

    tag = uuid.uuid4().hex[:6]
    source, target = f"src-{tag}", f"dst-{tag}"
    sweeper = RedisSaver(connector=connector)
    copier = RedisSaver(connector=connector)
    _put(copier, source)
    original = RedisSaver._copy_page_op

    def racing(self: RedisSaver, *args: Any) -> Any:
        first_put = lambda r: isinstance(r, Script) and r.script is PUT  # noqa: E731
        return _interleaved(original(self, *args), first_put, sweeper.sweep_threads)

    monkeypatch.setattr(RedisSaver, "_copy_page_op", racing)
    copier.copy_thread(source, target)
    assert target in list(sweeper.threads())


async def test_foreign_bytes_in_the_thread_index_are_typed_and_swept(
    connector: RedisConnector,
) -> None:
    """A member that is not UTF-8 (someone else's bytes in our index) made threads(),
    list(None) and sweep_threads (the one tool that cleans the index) raise a bare
    UnicodeDecodeError; now listing is a SerializationError that names the sweep, and the
    sweep, sync and async, takes the member off and keeps the live threads."""
    saver = RedisSaver(connector=connector, namespace=f"ns{uuid.uuid4().hex[:8]}")
    _put(saver, "live")
    raw = connector.client()
    for sweep in (saver.sweep_threads, saver.asweep_threads):
        raw.zadd(saver.keys.threads, {b"\xff\xfe": 0, b"bad\x00\xc3": 0})
        with pytest.raises(SerializationError, match="sweep"):
            list(saver.threads())
        with pytest.raises(SerializationError, match="sweep"):
            list(saver.list(None))
        with pytest.raises(SerializationError, match="sweep"):
            [t async for t in saver.alist(None)]
        removed = sweep()
        if not isinstance(removed, int):
            removed = await removed
        assert removed == 2
        assert list(saver.threads()) == ["live"]
        assert [t.config["configurable"]["thread_id"] for t in saver.list(None)] == ["live"]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_thread_written_again_while_it_is_deleted_stays_indexed(
    connector: RedisConnector, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """delete_thread unlinks the thread, then takes its name off the thread index and the
    run indexes. A put by another process in between (a conversation reset under a stable
    id: delete, then the next turn at once) created the thread again and named it, and the
    delete's removal then took the new thread's names off: threads(), list(None), the
    migration's copy and delete_for_runs missed it. Now the delete looks again after its
    removal and names a thread that is back."""
    tag = uuid.uuid4().hex[:6]
    thread, run = f"again-{tag}", f"run-{tag}"
    deleter = RedisSaver(connector=connector)
    writer = RedisSaver(connector=connector)  # another process: its own memo

    def put() -> None:
        writer.put(
            {"configurable": {"thread_id": thread, "checkpoint_ns": ""}},
            empty_checkpoint(),
            {"run_id": run},
            {},
        )

    put()
    original = RedisSaver._delete_thread_op

    def racing(self: RedisSaver, *args: Any) -> Any:
        removal = lambda r: not isinstance(r, Script)  # noqa: E731 - the index removal
        return _interleaved(original(self, *args), removal, put)

    monkeypatch.setattr(RedisSaver, "_delete_thread_op", racing)
    writer._indexed.clear()  # the writer's next put is a new process's first
    if mode == "sync":
        deleter.delete_thread(thread)
    else:
        await deleter.adelete_thread(thread)
    assert deleter.get_tuple({"configurable": {"thread_id": thread}}) is not None
    assert thread in list(deleter.threads())
    assert connector.client().sismember(deleter.keys.run(run), thread)
    monkeypatch.undo()
    deleter.delete_for_runs([run])
    assert deleter.get_tuple({"configurable": {"thread_id": thread}}) is None


@pytest.mark.parametrize("point", ["before removal", "before script"])
async def test_a_run_written_while_it_is_deleted_stays_findable(
    connector: RedisConnector, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    """delete_for_runs read a run's threads, deleted the run's checkpoints in each, then
    DELeted the run's index. A put of the same run by another process in between (a
    cancelled run's last step landing while it is rolled back) was in no index after
    that: its checkpoint stayed and a second delete_for_runs could not find it. Now the
    index loses only the threads the delete handled, each looked at again and named back
    if the run wrote to it meanwhile; and a put whose script says the thread had none of
    the run names the run after the script (the removal may have come between its index
    write and its script)."""
    tag = uuid.uuid4().hex[:6]
    run = f"run-{tag}"
    deleter = RedisSaver(connector=connector)
    writer = RedisSaver(connector=connector)  # another process: its own memo

    def put(thread: str) -> None:
        writer.put(
            {"configurable": {"thread_id": thread, "checkpoint_ns": ""}},
            empty_checkpoint(),
            {"run_id": run},
            {},
        )

    put(f"old-{tag}")
    late = f"late-{tag}"
    if point == "before removal":  # the whole put lands between the deletes and the SREM
        original = RedisSaver._delete_runs_ops
        pending = [True]

        def removal(request: Any) -> bool:
            hit = pending and isinstance(request, Command) and request.args[0] in ("DEL", "SREM")
            if hit:
                pending.clear()
            return bool(hit)

        def racing(self: RedisSaver, *args: Any) -> Any:
            for op in original(self, *args):
                yield _interleaved(op, removal, lambda: put(late))

        monkeypatch.setattr(RedisSaver, "_delete_runs_ops", racing)
    else:  # the put's index write before the removal, its script after the look again
        original_put = RedisSaver._put_op

        def racing_put(self: RedisSaver, *args: Any) -> Any:
            return _interleaved(
                original_put(self, *args), lambda r: isinstance(r, Script), deleter_run
            )

        def deleter_run() -> None:
            deleter.delete_for_runs([run])

        monkeypatch.setattr(RedisSaver, "_put_op", racing_put)
    try:
        if point == "before removal":
            deleter.delete_for_runs([run])
        else:
            put(late)
    finally:
        monkeypatch.undo()
    assert connector.client().sismember(deleter.keys.run(run), late)
    await deleter.adelete_for_runs([run])
    assert deleter.get_tuple({"configurable": {"thread_id": late}}) is None
    assert deleter.get_tuple({"configurable": {"thread_id": f"old-{tag}"}}) is None


class _LostConnection:
    """A fallback script whose call never reaches the server (it went away after EXEC)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("lost after EXEC")


@pytest_asyncio.fixture
async def owned_connector(owned_redis_target: Any) -> AsyncIterator[RedisConnector]:
    """A connector on servers this session started (a test here flushes their scripts)."""
    conn = RedisConnector(settings=owned_redis_target.settings)
    yield conn
    await conn.aclose()


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_sweep_takes_the_keys_a_failed_big_put_left_with_the_name(
    owned_connector: RedisConnector, use_async: bool
) -> None:
    """Without a TTL: a big put on a new thread whose MULTI got NOSCRIPT and whose
    fallback call failed left its HSET's blob key, and no checkpoint. The sweep took the
    name off and the key stayed, reached by nothing, for good; it now goes with the name
    (a thread with a checkpoint keeps everything)."""
    connector = owned_connector
    from deepagents_redis.core._driver import Snapshot, drive, execute

    saver = RedisSaver(
        connector=connector, script_blob_bytes=0, namespace=f"n{uuid.uuid4().hex[:8]}"
    )
    client = connector.client()
    thread, live = f"left-{uuid.uuid4().hex}", f"live-{uuid.uuid4().hex}"
    _put(saver, live)
    cfg: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    big = "x" * 100_000

    def step(req: Any) -> Any:
        if isinstance(req, Snapshot):
            client.script_flush()
            req = Snapshot(req.cmds, Script(_LostConnection(), req.fallback.keys, []))  # type: ignore[arg-type]
        return execute(client, req)

    cp = empty_checkpoint()
    cp["channel_values"] = {"big": big}
    cp["channel_versions"] = {"big": "1"}
    op = saver._put_op(cfg, cp, {}, {"big": "1"})  # type: ignore[arg-type]
    with pytest.raises(redis.ConnectionError):
        drive(op, step)
    keys = saver.keys.thread(thread)
    assert [k for k in keys.all if client.exists(k)] == [keys.blobs]  # the case it says
    assert thread in set(saver.threads())
    saver.put_writes(  # a live thread's keys are never touched
        {"configurable": {"thread_id": live, "checkpoint_ns": "", "checkpoint_id": "x"}},
        [("big", big)],
        "task-1",
    )
    live_keys = [k for k in saver.keys.thread(live).all if client.exists(k)]
    assert (await saver.asweep_threads() if use_async else saver.sweep_threads()) == 1
    assert not any(client.exists(k) for k in keys.all)
    assert thread not in set(saver.threads())
    assert [k for k in saver.keys.thread(live).all if client.exists(k)] == live_keys
    assert live in set(saver.threads())
    # a thread created between the sweep's look and its call keeps everything (one check
    # and removal, atomic, in the thread's slot)
    keys_live = saver.keys.thread(live)
    reply = saver._run("sweep_threads", saver._script_op(keys_live, ["leftover", 1, ""]))
    assert [int(n) for n in reply] == [0, 1]
    assert [k for k in keys_live.all if client.exists(k)] == live_keys
    saver.delete_thread(live)
