"""Review of the run members of orphan writes (the hidden ``'ecns<TAB>cid<TAB><TAB>runs'``).

`put_writes` lists the runs of the members it adds for writes whose checkpoint has no record
in the writes hash, under a field no write can have (a write's is
``'ecns<TAB>cid<TAB><idx><TAB><task>'``, and ``<idx>`` is never empty); `prune`,
`delete_for_runs` and `_unname_op` use it to take those members, and the thread's names in
the cross-thread indexes, off with the writes. Pinned here:

* the field never reaches LangGraph (pending writes of `get_tuple` / `list`), whatever the
  task ids and channels (ones holding tabs, or spelling the field's tail), and `copy_thread`
  and the migration's `copy_threads` never carry it to another thread or namespace;
* `put_writes` sent again lists its run once (per (task, index) idempotency unchanged);
* foreign bytes in the field are a `SerializationError` for every script that reads it,
  and a run in it (or a run member) no key can hold names no index: it raised
  InvalidInputError after the delete (`_run_name`, fixed);
* a put or put_writes landing in the windows of `_unname_op` (after the delete script,
  after its removals) keeps every name its data needs; the same raced from threads and from
  another process, checked once quiet with `test_index_consistency._problems`;
* `prune` / `delete_for_runs` whose replies are lost (re-sent by the driver, or retried by
  the caller) lose no data and leave no index naming less than is stored.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from deepagents_redis.checkpoint import RedisSaver, copy_threads
from deepagents_redis.core import (
    DeepAgentsRedisError,
    RedisConnector,
    RedisSettings,
    Script,
    SerializationError,
)
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

sys.path.insert(0, str(Path(__file__).parent))
from test_index_consistency import _problems


def _cfg(thread: str, ns: str = "", cid: str | None = None, run: str | None = None) -> Any:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if cid:
        conf["checkpoint_id"] = cid
    config: dict[str, Any] = {"configurable": conf}
    if run:
        config["metadata"] = {"run_id": run}
    return config


def _put(saver: Any, thread: str, run: str | None, *, ns: str = "", cid: str | None = None) -> Any:
    cp = empty_checkpoint()
    cp["id"] = cid or str(uuid6())
    cp["channel_values"] = {"v": cp["id"]}
    cp["channel_versions"] = {"v": f"{uuid.uuid4().int:040}"}
    md = {"source": "loop", "step": 0, "parents": {}, "run_id": run}
    return saver.put(_cfg(thread, ns), cp, md, {"v": cp["channel_versions"]["v"]})


async def _call(saver: RedisSaver, use_async: bool, name: str, *args: Any) -> Any:
    if use_async:
        return await getattr(saver, "a" + name)(*args)
    return getattr(saver, name)(*args)


def _runs_field(saver: RedisSaver, thread: str, cid: str, ns: str = "") -> str:
    return f"{saver.keys.thread(thread).field(saver.keys.enc(ns), cid)}\t\truns"


def _hidden(connector: RedisConnector, saver: RedisSaver, thread: str) -> list[bytes]:
    """The fields of the thread's writes hash that are no write (no index after the id)."""
    fields = connector.client().hkeys(saver.keys.thread(thread).writes)
    return [f for f in fields if f.split(b"\t", 2)[2].startswith(b"\t")]


def _tag() -> str:
    return uuid.uuid4().hex[:8]


# Task ids and channels LangGraph never makes but a caller may pass: tabs, and the spelling
# of the hidden field's tail. Each stays a write of its own, read back as it was written.
_ODD = ["\truns", "\t\truns", "", "runs", "a\t\truns", "\t"]


# ---------------------------------------------------------------- the field stays hidden
@pytest.mark.parametrize("use_async", [False, True])
async def test_the_runs_field_never_reaches_pending_writes(
    connector: RedisConnector, use_async: bool
) -> None:
    """Runs A and B store writes (odd task ids and channels among them) for a checkpoint
    before A puts it: get_tuple and list read exactly those writes, each once, however
    often put_writes is sent again; the field lists A and B once each."""
    saver = RedisSaver(connector=connector)
    tag = _tag()
    thread, a, b = f"t-{tag}", f"a-{tag}", f"b-{tag}"
    cid = str(uuid6())
    expected = []
    for _ in range(2):  # sent again: (task, index) keeps the first, the field its runs once
        for i, odd in enumerate(_ODD):
            run = a if i % 2 else b
            await _call(saver, use_async, "put_writes", _cfg(thread, "", cid, run), [(odd, i)], odd)
        await _call(
            saver, use_async, "put_writes", _cfg(thread, "", cid, a), [("\t\truns", "x")], "t"
        )
    expected = [(odd, odd, i) for i, odd in enumerate(_ODD)] + [("t", "\t\truns", "x")]
    raw = connector.client().hget(saver.keys.thread(thread).writes, _runs_field(saver, thread, cid))
    assert raw is not None
    assert sorted(msgpack.unpackb(raw, raw=False)) == sorted([saver.keys.enc(a), saver.keys.enc(b)])
    assert len(_hidden(connector, saver, thread)) == 1
    _put(saver, thread, a, cid=cid)
    config = _cfg(thread, "", cid)
    tup = await _call(saver, use_async, "get_tuple", config)
    assert tup is not None
    assert sorted(tup.pending_writes, key=repr) == sorted(expected, key=repr)
    listed = [t async for t in saver.alist(config)] if use_async else list(saver.list(config))
    assert [sorted(t.pending_writes, key=repr) for t in listed] == [sorted(expected, key=repr)]
    assert _problems(connector, saver, [thread], [a, b]) == []
    # a prune that deletes the checkpoint's writes (a newer one kept) takes the field too
    _put(saver, thread, a)
    await _call(saver, use_async, "prune", [thread])
    assert _hidden(connector, saver, thread) == []
    assert not connector.client().exists(saver.keys.run(b))
    assert _problems(connector, saver, [thread], [a, b], pruned=(thread,)) == []


@pytest.mark.parametrize("use_async", [False, True])
async def test_copy_thread_carries_no_runs_field_and_no_orphan_members(
    connector: RedisConnector, use_async: bool
) -> None:
    """A source with writes that landed before their put (the field lists their run) and
    orphan writes of another checkpoint: the copy holds the checkpoints and their writes,
    never the field or a member of the orphans' run; deletes on either side stay apart."""
    saver = RedisSaver(connector=connector)
    tag = _tag()
    src, dst, a, b = f"s-{tag}", f"d-{tag}", f"a-{tag}", f"b-{tag}"
    cid = str(uuid6())
    await _call(saver, use_async, "put_writes", _cfg(src, "sub:1", cid, b), [("v", 1)], "task")
    _put(saver, src, a, ns="sub:1", cid=cid)
    later = str(uuid6())
    await _call(saver, use_async, "put_writes", _cfg(src, "sub:1", later, b), [("v", 2)], "t2")
    assert len(_hidden(connector, saver, src)) == 2
    await _call(saver, use_async, "copy_thread", src, dst)
    assert _hidden(connector, saver, dst) == []
    members = connector.client().zrange(saver.keys.thread(dst).runs, 0, -1)
    assert [m.split(b"\t")[0].decode() for m in members] == [saver.keys.enc(a)]
    assert not connector.client().sismember(saver.keys.run(b), dst)
    tup = await _call(saver, use_async, "get_tuple", _cfg(dst, "sub:1", cid))
    assert tup is not None
    assert tup.pending_writes == [("task", "v", 1)]
    assert _problems(connector, saver, [src, dst], [a, b]) == []
    # B's delete takes the source's orphans, and the member of the copied writes' first
    # run; the copy (A's) keeps its checkpoint and writes
    await _call(saver, use_async, "delete_for_runs", [b])
    tup = await _call(saver, use_async, "get_tuple", _cfg(dst, "sub:1", cid))
    assert tup is not None
    assert tup.pending_writes == [("task", "v", 1)]
    assert _problems(connector, saver, [src, dst], [a, b]) == []
    await _call(saver, use_async, "delete_for_runs", [a])
    assert list(saver.threads()) == []
    assert _problems(connector, saver, [src, dst], [a, b]) == []


def test_migration_copy_carries_no_runs_field(connector: RedisConnector) -> None:
    """`deepagents-redis checkpoint copy` (copy_threads) into another namespace: the
    writes as LangGraph reads them, no hidden field, no orphan-run member."""
    saver = RedisSaver(connector=connector)
    target = RedisSaver(connector=connector, namespace=f"mig{_tag()}")
    tag = _tag()
    thread, a, b = f"t-{tag}", f"a-{tag}", f"b-{tag}"
    cid = str(uuid6())
    saver.put_writes(_cfg(thread, "", cid, b), [("v", 1), ("w", 2)], "task")
    _put(saver, thread, a, cid=cid)
    saver.put_writes(_cfg(thread, "", str(uuid6()), b), [("v", 3)], "orphan")
    report = copy_threads(saver, target, threads=[thread])
    assert report.copied == [thread]
    assert not report.refused
    assert _hidden(connector, target, thread) == []
    got = target.get_tuple(_cfg(thread, "", cid))
    assert got is not None
    assert sorted(got.pending_writes) == [("task", "v", 1), ("task", "w", 2)]
    # the put's own member (its metadata's run), none of the orphans' run
    members = connector.client().zrange(target.keys.thread(thread).runs, 0, -1)
    assert [m.split(b"\t")[0].decode() for m in members] == [target.keys.enc(a)]
    # copied again (resumed): nothing new, still no field
    copy_threads(saver, target, threads=[thread])
    assert _hidden(connector, target, thread) == []
    target.delete_thread(thread)
    saver.delete_thread(thread)


# ---------------------------------------------------------------- foreign bytes in the field
_GARBAGE = [
    b"\xc1not msgpack",
    msgpack.packb("a string"),
    msgpack.packb([1, 2]),
    msgpack.packb([["nested"]]),
]


@pytest.mark.parametrize("raw", _GARBAGE, ids=["bytes", "str", "ints", "nested"])
@pytest.mark.parametrize("use_async", [False, True])
async def test_foreign_bytes_in_the_runs_field_are_a_serialization_error(
    connector: RedisConnector, use_async: bool, raw: bytes
) -> None:
    """Every script that reads the field refuses foreign bytes in it, typed: put_writes of
    another orphan write, prune (the writes are below the newest), delete_for_runs (their
    run's member). Reads never look at it."""
    saver = RedisSaver(connector=connector)
    tag = _tag()
    thread, a, b = f"t-{tag}", f"a-{tag}", f"b-{tag}"
    cid = str(uuid6())
    await _call(saver, use_async, "put_writes", _cfg(thread, "", cid, b), [("v", 1)], "task")
    _put(saver, thread, a)
    connector.client().hset(saver.keys.thread(thread).writes, _runs_field(saver, thread, cid), raw)
    with pytest.raises(SerializationError):
        await _call(saver, use_async, "put_writes", _cfg(thread, "", cid, a), [("v", 2)], "t2")
    with pytest.raises(SerializationError):
        await _call(saver, use_async, "prune", [thread])
    with pytest.raises(SerializationError):
        await _call(saver, use_async, "delete_for_runs", [b])
    assert (await _call(saver, use_async, "get_tuple", _cfg(thread))) is not None
    await _call(saver, use_async, "delete_thread", thread)


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_write_list_naming_the_runs_field_is_a_serialization_error(
    connector: RedisConnector, use_async: bool
) -> None:
    """Foreign bytes: a write list that names the hidden field (``'<TAB>runs'``, a name
    no put_writes makes: its index is never empty) reads it as a write, and that is a
    SerializationError for get_tuple, list and copy_thread, not a pending write."""
    saver = RedisSaver(connector=connector)
    tag = _tag()
    thread, a, b = f"t-{tag}", f"a-{tag}", f"b-{tag}"
    cid = str(uuid6())
    await _call(saver, use_async, "put_writes", _cfg(thread, "", cid, b), [("v", 1)], "task")
    _put(saver, thread, a, cid=cid)
    keys = saver.keys.thread(thread)
    f = keys.field(saver.keys.enc(""), cid)
    connector.client().hset(keys.write_lists, f, msgpack.packb(["0\ttask", "\truns"]))
    with pytest.raises(SerializationError):
        await _call(saver, use_async, "get_tuple", _cfg(thread, "", cid))
    with pytest.raises(SerializationError):
        [t async for t in saver.alist(_cfg(thread))] if use_async else list(
            saver.list(_cfg(thread))
        )
    with pytest.raises(SerializationError):
        await _call(saver, use_async, "copy_thread", thread, f"copy-{tag}")
    await _call(saver, use_async, "delete_thread", thread)
    await _call(saver, use_async, "delete_thread", f"copy-{tag}")


@pytest.mark.parametrize("use_async", [False, True])
async def test_foreign_runs_in_the_field_name_no_index(
    connector: RedisConnector, use_async: bool
) -> None:
    """A field listing strings no put_writes encodes (a tab, an invalid escape, a run id
    no key can hold) next to a real run: prune and delete_for_runs delete what they should
    and clean the real run's index; the others name no index (no key is built of them: a
    run id over the key component limit raised InvalidInputError, blaming the caller,
    after the delete and before the batch's other threads). delete_thread likewise with
    such a member planted in the run index of the thread."""
    saver = RedisSaver(connector=connector)
    tag = _tag()
    thread, a, b = f"t-{tag}", f"a-{tag}", f"b-{tag}"
    cid, cid2 = str(uuid6()), str(uuid6())
    await _call(saver, use_async, "put_writes", _cfg(thread, "", cid, b), [("v", 1)], "task")
    await _call(saver, use_async, "put_writes", _cfg(thread, "", cid2, b), [("v", 1)], "task")
    _put(saver, thread, a)
    huge = saver.keys.enc("r" * 20_000)
    odd = ["x\ty", "%zz", huge, saver.keys.enc(b)]
    client, keys = connector.client(), saver.keys.thread(thread)
    client.hset(keys.writes, _runs_field(saver, thread, cid), msgpack.packb(odd))
    await _call(saver, use_async, "prune", [thread])
    assert not client.hexists(keys.write_lists, keys.field(saver.keys.enc(""), cid))
    assert not client.hexists(keys.writes, _runs_field(saver, thread, cid))
    # cid2's orphan writes (below the newest too) went with B's member: only A's are left
    assert client.zrange(keys.runs, 0, -1) == [
        m for m in client.zrange(keys.runs, 0, -1) if m.startswith(saver.keys.enc(a).encode())
    ]
    assert not client.sismember(saver.keys.run(b), thread)
    # delete_for_runs: a planted orphan list under a run member of a checkpoint with none
    cid3 = str(uuid6())
    _put(saver, thread, a)
    await _call(saver, use_async, "put_writes", _cfg(thread, "", cid3, b), [("v", 1)], "task")
    client.hset(keys.writes, _runs_field(saver, thread, cid3), msgpack.packb(odd))
    await _call(saver, use_async, "delete_for_runs", [b])
    assert not client.hexists(keys.write_lists, keys.field(saver.keys.enc(""), cid3))
    assert (await _call(saver, use_async, "get_tuple", _cfg(thread))) is not None
    # delete_thread: a member of a run no key can hold
    client.zadd(keys.runs, {f"{huge}\t{cid3}\t{saver.keys.enc('')}": 0})
    await _call(saver, use_async, "delete_thread", thread)
    assert not client.exists(*keys.all)
    assert list(saver.threads()) == []


@pytest.mark.parametrize("use_async", [False, True])
async def test_delete_thread_with_a_member_of_a_run_no_key_can_hold(
    connector: RedisConnector, use_async: bool
) -> None:
    """A run member planted in a thread whose run id is over the key component limit (no
    put writes one: put and put_writes refuse such a run): delete_thread deletes the
    thread, and its real runs' names, instead of an InvalidInputError after the delete."""
    saver = RedisSaver(connector=connector)
    tag = _tag()
    thread, a = f"t-{tag}", f"a-{tag}"
    _put(saver, thread, a)
    keys = saver.keys.thread(thread)
    huge = saver.keys.enc("r" * 20_000)
    connector.client().zadd(keys.runs, {f"{huge}\t{uuid6()}\t{saver.keys.enc('')}": 0})
    await _call(saver, use_async, "delete_thread", thread)
    assert not connector.client().exists(*keys.all)
    assert not connector.client().exists(saver.keys.run(a))
    assert list(saver.threads()) == []


# ---------------------------------------------------------------- races, made deterministic
def _hooked(
    saver: RedisSaver, at: str, action: Callable[[], None]
) -> Callable[..., Generator[Any, Any, None]]:
    """`saver._unname_op` running `action` before it starts ('start') or after its first
    step (the removals: 'removed'), as a concurrent writer landing in that window."""
    original = saver._unname_op

    def unname(thread: str, runs: Any, *, emptied: bool) -> Generator[Any, Any, None]:
        if at == "start":
            action()
        steps = original(thread, runs, emptied=emptied)
        try:
            op = next(steps)
        except StopIteration:
            return
        first = True
        while True:
            reply = yield op
            if first and at == "removed":
                action()
            first = False
            try:
                op = steps.send(reply)
            except StopIteration:
                return

    return unname


@pytest.mark.parametrize("at", ["start", "removed"])
@pytest.mark.parametrize("writer", ["put", "put_writes"])
@pytest.mark.parametrize("use_async", [False, True])
async def test_a_write_in_the_unname_window_of_prune_keeps_its_run_name(
    connector: RedisConnector, use_async: bool, writer: str, at: str
) -> None:
    """keep_latest deletes run B's last orphan writes in a thread; another saver (another
    process) writes B to the thread again after the delete script or after the name's
    removal: B's index still names the thread, and delete_for_runs([B]) finds it."""
    saver = RedisSaver(connector=connector)
    other = RedisSaver(connector=connector)
    tag = _tag()
    thread, a, b = f"t-{tag}", f"a-{tag}", f"b-{tag}"
    await _call(saver, use_async, "put_writes", _cfg(thread, "", str(uuid6()), b), [("v", 1)], "t")
    _put(saver, thread, a)

    def land() -> None:
        if writer == "put":
            _put(other, thread, b)
        else:
            other.put_writes(_cfg(thread, "", str(uuid6()), b), [("v", 2)], "late")

    saver._unname_op = _hooked(saver, at, land)  # type: ignore[method-assign]
    await _call(saver, use_async, "prune", [thread])
    assert connector.client().sismember(saver.keys.run(b), thread)
    assert _problems(connector, saver, [thread], [a, b]) == []
    await _call(other, use_async, "delete_for_runs", [b])
    assert connector.client().zrange(saver.keys.thread(thread).runs, 0, -1) == [
        m
        for m in connector.client().zrange(saver.keys.thread(thread).runs, 0, -1)
        if m.startswith(saver.keys.enc(a).encode() + b"\t")
    ]
    assert _problems(connector, saver, [thread], [a, b]) == []


@pytest.mark.parametrize("at", ["start", "removed"])
@pytest.mark.parametrize("use_async", [False, True])
async def test_a_put_in_the_unname_window_of_delete_for_runs_keeps_the_thread_named(
    connector: RedisConnector, use_async: bool, at: str
) -> None:
    """delete_for_runs([A]) takes a thread's last checkpoint (and run B's orphan writes
    under it); a put of run B lands meanwhile, from a saver that indexed the thread
    before (its memo says so): the thread stays in the thread index and B's index."""
    saver = RedisSaver(connector=connector)
    other = RedisSaver(connector=connector)
    tag = _tag()
    thread, a, b = f"t-{tag}", f"a-{tag}", f"b-{tag}"
    cid = str(uuid6())
    await _call(saver, use_async, "put_writes", _cfg(thread, "", cid, b), [("v", 1)], "t")
    _put(saver, thread, a, cid=cid)
    # other's memo says it named the thread and (B, thread) already: only the replies of
    # its put's script make it name them again
    other._remember(("thread", thread))
    other._remember(("run", b, thread))
    saver._unname_op = _hooked(saver, at, lambda: _put(other, thread, b))  # type: ignore[method-assign]
    await _call(saver, use_async, "delete_for_runs", [a])
    assert thread in list(saver.threads())
    assert connector.client().sismember(saver.keys.run(b), thread)
    assert _problems(connector, saver, [thread], [a, b]) == []


# ---------------------------------------------------------------- races, for real
def _check_quiet(
    connector: RedisConnector, saver: RedisSaver, threads: list[str], runs: list[str]
) -> None:
    """Once every writer stopped: no index names less than is stored (the direction that
    loses data: list_threads / delete_for_runs missing a thread). Names left over by a
    crash are tolerated by design; here nothing crashed, so none is expected either."""
    assert _problems(connector, saver, threads, runs) == []


@pytest.mark.parametrize("use_async", [False, True])
async def test_prune_and_delete_for_runs_race_writers_of_the_same_thread(
    connector: RedisConnector, use_async: bool
) -> None:
    """Writer threads put and put_writes runs A and B (orphans too) into two threads
    while the main task prunes and deletes runs; after each round, quiet, every index
    names everything stored."""
    saver = RedisSaver(connector=connector)
    tag = _tag()
    threads = [f"t1-{tag}", f"t2-{tag}"]
    runs = [f"a-{tag}", f"b-{tag}"]
    for round_ in range(6):
        stop = threading.Event()
        errors: list[BaseException] = []

        def write(
            seed: int, stop: threading.Event = stop, errors: list[BaseException] = errors
        ) -> None:
            mine = RedisSaver(connector=connector)
            i = 0
            try:
                while not stop.is_set() or i < 4:
                    thread, run = threads[(seed + i) % 2], runs[(seed + i // 2) % 2]
                    if i % 3 == 0:
                        mine.put_writes(_cfg(thread, "", str(uuid6()), run), [("v", i)], "t")
                    else:
                        _put(mine, thread, run)
                    i += 1
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        workers = [threading.Thread(target=write, args=(s,)) for s in range(2)]
        for w in workers:
            w.start()
        for step in range(8):
            if step % 2:
                await _call(saver, use_async, "prune", threads)
            else:
                await _call(saver, use_async, "delete_for_runs", [runs[(round_ + step) % 2]])
        stop.set()
        for w in workers:
            w.join(30)
        assert not errors, errors
        _check_quiet(connector, saver, threads, runs)


_PROC = """
import sys, uuid
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.core import RedisSettings
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
url, prefix, thread, run, n = sys.argv[1:6]
saver = RedisSaver(settings=RedisSettings(url=url, key_prefix=prefix))
for i in range(int(n)):
    conf = {"thread_id": thread, "checkpoint_ns": ""}
    if i % 3 == 0:
        saver.put_writes(
            {"configurable": {**conf, "checkpoint_id": str(uuid6())}, "metadata": {"run_id": run}},
            [("v", i)], "t",
        )
        continue
    cp = empty_checkpoint()
    cp["channel_values"] = {"v": i}
    cp["channel_versions"] = {"v": f"{uuid.uuid4().int:040}"}
    version = cp["channel_versions"]["v"]
    saver.put({"configurable": conf}, cp, {"step": i, "run_id": run}, {"v": version})
saver.close()
"""


def test_prune_and_delete_for_runs_race_another_process(redis_url: str, key_prefix: str) -> None:
    """Two processes write runs A and B into one thread while this one prunes it and
    deletes each run over and over: once they are done, every index names what is left."""
    saver = RedisSaver(settings=RedisSettings(url=redis_url, key_prefix=key_prefix))
    connector = saver._connector
    tag = _tag()
    thread, runs = f"t-{tag}", [f"a-{tag}", f"b-{tag}"]
    procs = [
        subprocess.Popen([sys.executable, "-c", _PROC, redis_url, key_prefix, thread, run, "150"])
        for run in runs
    ]
    i = 0
    while any(p.poll() is None for p in procs) or i < 4:
        if i % 2:
            saver.prune([thread])
        else:
            saver.delete_for_runs([runs[(i // 2) % 2]])
        i += 1
    assert [p.wait(60) for p in procs] == [0, 0]
    _check_quiet(connector, saver, [thread], runs)
    saver.prune([thread])
    _check_quiet(connector, saver, [thread], runs)
    saver.delete_for_runs(runs)
    assert list(saver.threads()) == []
    _check_quiet(connector, saver, [thread], runs)
    saver.close()


# ---------------------------------------------------------------- lost replies
def _wait(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.05)


def _stale_names(problems: list[str]) -> list[str]:
    """The problems that are names with nothing behind them (a crash or a lost reply leaves
    them by design: readers skip them, delete_for_runs and sweep_threads take them off)."""
    return [p for p in problems if "with nothing of the run" in p or "has no checkpoint but" in p]


@pytest.mark.parametrize("retries", [0, 2])
@pytest.mark.parametrize("op", ["prune", "delete_for_runs", "put_writes"])
def test_a_lost_reply_then_the_callers_retry_keeps_every_index(
    redis_url: str, key_prefix: str, fault_proxy: Any, op: str, retries: int
) -> None:
    """The replies to prune / delete_for_runs / put_writes are delayed past the socket
    timeout (the requests reach Redis late, the driver may send them again); then the
    caller retries: no data of another run is lost, and once the late requests are in, no
    index misses what is stored (names left naming nothing are tolerated, and the next
    delete_for_runs of their run takes them off)."""
    proxy = fault_proxy(redis_url)
    settings = RedisSettings(
        url=proxy.url,
        key_prefix=key_prefix,
        socket_timeout=0.3,
        retries=retries,
        deadline_seconds=1.0,
    )
    saver = RedisSaver(settings=settings)
    direct = RedisSaver(settings=RedisSettings(url=redis_url, key_prefix=key_prefix))
    connector = direct._connector
    tag = _tag()
    thread, a, b = f"t-{tag}", f"a-{tag}", f"b-{tag}"
    saver.put_writes(_cfg(thread, "", str(uuid6()), b), [("v", 1)], "t")
    _put(saver, thread, a)
    kept = _put(saver, thread, a)
    late = str(uuid6())

    def call() -> None:
        if op == "prune":
            saver.prune([thread])
        elif op == "delete_for_runs":
            saver.delete_for_runs([b])
        else:
            saver.put_writes(_cfg(thread, "", late, b), [("v", 2)], "t2")

    proxy.set_mode("delay", delay=0.5)
    with contextlib.suppress(DeepAgentsRedisError):
        call()
    proxy.set_mode("pass")
    call()  # the caller's retry

    def settled() -> bool:
        problems = _problems(connector, direct, [thread], [a, b])
        return problems == _stale_names(problems)

    _wait(settled)
    tup = direct.get_tuple(_cfg(thread))
    assert tup is not None
    assert tup.config["configurable"]["checkpoint_id"] == kept["configurable"]["checkpoint_id"]
    if op == "put_writes":
        got = direct.get_tuple(_cfg(thread, "", late))
        assert got is None  # no checkpoint: the writes are orphans, listed under B once
        raw = connector.client().hget(
            direct.keys.thread(thread).writes, _runs_field(direct, thread, late)
        )
        assert raw == msgpack.packb([direct.keys.enc(b)])
    direct.delete_for_runs([b])
    assert _problems(connector, direct, [thread], [a, b]) == []
    saver.close()
    direct.close()


def _resent(op: Generator[Any, Any, Any], modes: set[str]) -> Generator[Any, Any, Any]:
    """`op` with each script step whose first argument is in `modes` sent twice, the first
    reply lost: what the driver does when a reply does not come back in time."""
    try:
        step = next(op)
        while True:
            if isinstance(step, Script) and step.args and str(step.args[0]) in modes:
                yield step  # applied; its reply lost
            step = op.send((yield step))
    except StopIteration as stop:
        return stop.value


@pytest.mark.parametrize("op", ["prune", "delete_for_runs", "put_writes"])
@pytest.mark.parametrize("use_async", [False, True])
async def test_every_script_sent_twice_keeps_every_index(
    connector: RedisConnector, use_async: bool, op: str
) -> None:
    """Every delete script of prune (keep_latest, keep_gc, keep_wgc) / delete_for_runs
    ('run') and put_writes' script applied twice, the first reply lost: no data of another
    run goes, the writes are stored once and their run listed once, and no index misses
    what is stored. The runs whose last member the lost call took are not reported by the
    second call: their names stay, naming nothing (tolerated, as after a crash; readers
    skip them) until delete_for_runs of their run takes them off, as it does here."""
    saver = RedisSaver(connector=connector)
    tag = _tag()
    thread, a, b, c = f"t-{tag}", f"a-{tag}", f"b-{tag}", f"c-{tag}"
    cid = str(uuid6())
    await _call(saver, use_async, "put_writes", _cfg(thread, "", cid, b), [("v", 1)], "t")
    await _call(saver, use_async, "put_writes", _cfg(thread, "", str(uuid6()), c), [("v", 1)], "t")
    _put(saver, thread, a, cid=cid)
    _put(saver, thread, c)
    kept = _put(saver, thread, a)
    late = str(uuid6())
    modes = {"keep_latest", "keep_gc", "keep_wgc", "run"}
    if op == "put_writes":
        modes = {_runs_field(saver, thread, late).rsplit("\t\t", 1)[0]}
    run, arun = saver._run, saver._arun
    saver._run = lambda name, o: run(name, _resent(o, modes))  # type: ignore[method-assign]
    saver._arun = lambda name, o: arun(name, _resent(o, modes))  # type: ignore[method-assign]
    if op == "prune":
        await _call(saver, use_async, "prune", [thread])
    elif op == "delete_for_runs":
        await _call(saver, use_async, "delete_for_runs", [b])
    else:
        for _ in range(2):
            await _call(
                saver,
                use_async,
                "put_writes",
                _cfg(thread, "", late, b),
                [("v", 2), ("w", 3)],
                "t2",
            )
    saver._run, saver._arun = run, arun  # type: ignore[method-assign]
    problems = _problems(connector, saver, [thread], [a, b, c])
    assert problems == _stale_names(problems)
    tup = await _call(saver, use_async, "get_tuple", _cfg(thread))
    assert tup is not None
    assert tup.config["configurable"]["checkpoint_id"] == kept["configurable"]["checkpoint_id"]
    if op == "put_writes":
        raw = connector.client().hget(
            saver.keys.thread(thread).writes, _runs_field(saver, thread, late)
        )
        assert raw == msgpack.packb([saver.keys.enc(b)])
        lists = connector.client().hget(
            saver.keys.thread(thread).write_lists,
            saver.keys.thread(thread).field(saver.keys.enc(""), late),
        )
        assert sorted(msgpack.unpackb(lists, raw=False)) == ["0\tt2", "1\tt2"]
    await _call(saver, use_async, "delete_for_runs", [b, c])
    assert _problems(connector, saver, [thread], [a, b, c]) == []
