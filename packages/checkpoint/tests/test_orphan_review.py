"""Review of 2869941 (orphan writes named by run and thread): the cases it puts at risk.

What `put_writes` costs in LangGraph's normal flow (counted per operation step, each one
round trip), stale run members (a run's orphan writes whose checkpoint another run put, or
whose checkpoint was deleted), `list` / `get_tuple` / `copy_thread` with orphan members, and
hostile run ids. Keys counted on the test's own private server (tests only)."""

from __future__ import annotations

import uuid
from collections.abc import Generator
from typing import Any

import pytest
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.checkpoint import _saver as saver_module
from deepagents_redis.core import InvalidInputError, RedisConnector, SerializationError
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6


def _cfg(thread: str, ns: str = "", cid: str | None = None, run: Any = None) -> Any:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if cid:
        conf["checkpoint_id"] = cid
    config: dict[str, Any] = {"configurable": conf}
    if run is not None:  # as LangGraph's loop passes it: the run's config, metadata and all
        config["metadata"] = {"run_id": run}
    return config


def _put(saver: RedisSaver, thread: str, run: str, *, ns: str = "", cid: str | None = None) -> Any:
    cp = empty_checkpoint()
    cp["id"] = cid or str(uuid6())
    cp["channel_values"] = {"v": run}
    cp["channel_versions"] = {"v": f"{uuid.uuid4().int:040}"}
    md = {"source": "loop", "step": 0, "parents": {}, "run_id": run}
    return saver.put(_cfg(thread, ns), cp, md, {"v": cp["channel_versions"]["v"]})  # type: ignore[arg-type]


def _keys(connector: RedisConnector, saver: RedisSaver, thread: str) -> list[str]:
    head = saver.keys.thread(thread).head
    pattern = head.replace("{", "\\{").replace("}", "\\}") + "*"
    return sorted(k.decode() for k in connector.client().scan_iter(match=pattern))


def _members(connector: RedisConnector, saver: RedisSaver, thread: str) -> list[str]:
    return [m.decode() for m in connector.client().zrange(saver.keys.thread(thread).runs, 0, -1)]


def _write_fields(connector: RedisConnector, saver: RedisSaver, thread: str) -> set[str]:
    client, keys = connector.client(), saver.keys.thread(thread)
    listed = {f.decode() for f in client.hkeys(keys.write_lists)}
    stored = {f.decode().rsplit("\t", 2)[0] for f in client.hkeys(keys.writes)}
    return listed | stored


def _field(saver: RedisSaver, ns: str, cid: str) -> str:
    return f"{saver.keys.enc(ns)}\t{cid}"


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each step (one round trip: a script, pipeline, command or MULTI) of every
    operation the saver runs, sync and async."""
    steps: list[str] = []

    def counted(op: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
        try:
            req = op.send(None)
        except StopIteration as stop:
            return stop.value
        while True:
            steps.append(type(req).__name__)
            reply = yield req
            try:
                req = op.send(reply)
            except StopIteration as stop:
                return stop.value

    run, arun = saver_module.run_operation, saver_module.arun_operation
    monkeypatch.setattr(
        saver_module,
        "run_operation",
        lambda conn, name, op, **kw: run(conn, name, counted(op), **kw),
    )
    monkeypatch.setattr(
        saver_module,
        "arun_operation",
        lambda conn, name, op, **kw: arun(conn, name, counted(op), **kw),
    )
    return steps


@pytest.mark.parametrize(("use_async", "blob_bytes"), [(False, 32_768), (True, 32_768), (False, 0)])
async def test_put_writes_costs_one_round_trip_in_langgraphs_flow(
    connector: RedisConnector, monkeypatch: pytest.MonkeyPatch, use_async: bool, blob_bytes: int
) -> None:
    """The hot path stays one call: writes of a checkpoint that exists (its run's, or a
    resumed run's with another run id), in a thread this process named, and writes that
    land before their put (LangGraph's async durability) for a run the thread has members
    of already: the script tells nothing new, so no index write follows it."""
    saver = RedisSaver(connector=connector, script_blob_bytes=blob_bytes)
    tag = uuid.uuid4().hex[:8]
    thread, run, resume = f"t-{tag}", f"run-{tag}", f"resume-{tag}"
    stored = _put(saver, thread, run)
    steps = _counting(monkeypatch)

    async def put_writes(config: Any, task: str) -> None:
        if use_async:
            await saver.aput_writes(config, [("v", 1), ("__error__", "x")], task)
        else:
            saver.put_writes(config, [("v", 1), ("__error__", "x")], task)

    # the run's own writes, config as LangGraph's loop passes it
    await put_writes({**stored, "metadata": {"run_id": run}}, "a")
    assert len(steps) == 1
    # a resumed run (another id) writing for the existing checkpoint
    await put_writes({**stored, "metadata": {"run_id": resume}}, "b")
    assert len(steps) == 2
    # the run's next checkpoint, whose put has not landed yet: a member, no index write
    nxt = str(uuid6())
    await put_writes(_cfg(thread, "", nxt, run), "c")
    assert len(steps) == 3
    assert f"{saver.keys.enc(run)}\t{nxt}\t{saver.keys.enc('')}" in _members(
        connector, saver, thread
    )
    # no run at all
    await put_writes(stored, "d")
    assert len(steps) == 4
    assert not connector.client().exists(saver.keys.run(resume))
    saver.delete_thread(thread)


@pytest.mark.parametrize(("use_async", "blob_bytes"), [(False, 32_768), (True, 0)])
async def test_a_stale_member_is_harmless_to_later_calls(
    connector: RedisConnector, use_async: bool, blob_bytes: int
) -> None:
    """Writes of run A land first (A's member), then run B's put of the same checkpoint
    id, in a subgraph namespace: delete_for_runs([A]) keeps B's checkpoint and its writes.
    The other order too: delete_for_runs([B]) deletes the checkpoint, and A's member with
    its writes; list, get_tuple, threads, delete_for_runs([A]), prune and
    delete_thread then work as before, and nothing is left."""
    saver = RedisSaver(connector=connector, script_blob_bytes=blob_bytes)
    tag = uuid.uuid4().hex[:8]
    a, b = f"a-{tag}", f"b-{tag}"
    ns = "sub:1|x"

    async def delete(runs: list[str]) -> None:
        if use_async:
            await saver.adelete_for_runs(runs)
        else:
            saver.delete_for_runs(runs)

    for order in ("a-first", "b-first"):
        thread = f"t-{order}-{tag}"
        root = _put(saver, thread, b)  # the thread's root checkpoint, B's
        cid = str(uuid6())
        saver.put_writes(_cfg(thread, ns, cid, a), [("v", 1), ("__error__", "x" * 100)], "t")
        stored = _put(saver, thread, b, ns=ns, cid=cid)
        if order == "a-first":
            await delete([a])
            got = saver.get_tuple(stored)
            assert got is not None
            assert sorted(str(w[2]) for w in got.pending_writes or []) == ["1", "x" * 100]
            assert _field(saver, ns, cid) in _write_fields(connector, saver, thread)
            assert not connector.client().exists(saver.keys.run(a))
            await delete([b])
        else:
            await delete([b])  # B's checkpoints go, with A's writes under one of them
            assert saver.get_tuple(stored) is None
            # A's member went with the writes it named (it was left pointing at nothing,
            # until test_index_consistency.py)
            assert [m for m in _members(connector, saver, thread) if m.startswith(a)] == []
            assert list(saver.list(_cfg(thread))) == []
            assert all(t.config["configurable"]["thread_id"] != thread for t in saver.list(None))
            assert saver.get_tuple(_cfg(thread, ns)) is None
            saver.prune([thread])
            await delete([a])
        assert _members(connector, saver, thread) == []
        assert saver.get_tuple(root) is None
        saver.delete_thread(thread)
        assert _keys(connector, saver, thread) == []
        assert not connector.client().exists(saver.keys.run(a))
        assert not connector.client().exists(saver.keys.run(b))


async def test_orphan_members_leave_list_get_tuple_and_copy_alone(
    connector: RedisConnector,
) -> None:
    """A run's orphan writes (their checkpoint never put) name a member of the run in the
    thread: reads never take it for a checkpoint, and copy_thread copies checkpoints (with
    their run) and their writes only: no orphan writes and no orphan member in the target,
    whose copied checkpoints delete_for_runs still finds by the run."""
    saver = RedisSaver(connector=connector)
    tag = uuid.uuid4().hex[:8]
    thread, target, run = f"t-{tag}", f"copy-{tag}", f"run-{tag}"
    stored = _put(saver, thread, run)
    saver.put_writes({**stored, "metadata": {"run_id": run}}, [("v", 1)], "task")
    orphan = str(uuid6())
    saver.put_writes(_cfg(thread, "", orphan, run), [("v", 2)], "task")
    saver.put_writes(_cfg(thread, "sub:1", str(uuid6()), run), [("v", 3)], "task")
    assert len(_members(connector, saver, thread)) == 3
    every = list(saver.list(_cfg(thread)))
    assert [t.config["configurable"]["checkpoint_id"] for t in every] == [
        stored["configurable"]["checkpoint_id"]
    ]
    assert list(saver.list(_cfg(thread, "sub:1"))) == []
    assert saver.get_tuple(_cfg(thread, "", orphan)) is None
    latest = saver.get_tuple(_cfg(thread))
    assert latest is not None
    assert [w[2] for w in latest.pending_writes or []] == [1]
    saver.copy_thread(thread, target)
    copied = saver.get_tuple(_cfg(target))
    assert copied is not None
    assert [w[2] for w in copied.pending_writes or []] == [1]
    assert _write_fields(connector, saver, target) == {
        _field(saver, "", stored["configurable"]["checkpoint_id"])
    }
    assert _members(connector, saver, target) == [
        f"{saver.keys.enc(run)}\t{stored['configurable']['checkpoint_id']}\t{saver.keys.enc('')}"
    ]
    saver.delete_for_runs([run])
    assert _keys(connector, saver, thread) == []
    assert _keys(connector, saver, target) == []
    assert not connector.client().exists(saver.keys.run(run))


HOSTILE = [
    "tab\there",
    "line\nfeed\r\n",
    "nul\x00inside",
    "lone \ud800 surrogate",
    "{tag}:*?[x]%41\\",
    "\x7f\x1b[31m",
    "é中🙂",
    123,
    1.5,
]


@pytest.mark.parametrize("run", HOSTILE, ids=[repr(r) for r in HOSTILE])
async def test_hostile_run_ids_are_encoded_and_delete_with_their_run(
    connector: RedisConnector, run: Any
) -> None:
    """A run id with tabs, newlines, NUL, a lone surrogate, key specials or a number: the
    member put_writes adds is the encoded run (one tab-separated member, decodable), the
    same the put of that run names (NUL dropped by both, as LangGraph's metadata drops it),
    and delete_for_runs of the run takes the orphan writes and the checkpoints together."""
    saver = RedisSaver(connector=connector)
    tag = uuid.uuid4().hex[:8]
    thread = f"t-{tag}"
    as_put = str(run).replace("\x00", "")
    cids = [orphan := str(uuid6())]
    cids.append(_put(saver, thread, as_put)["configurable"]["checkpoint_id"])
    saver.put_writes(_cfg(thread, "", orphan, run), [("v", 1)], "task")
    members = _members(connector, saver, thread)
    assert len(members) == len(cids)
    for member in members:
        erun, cid, ecns = member.split("\t")
        assert saver.keys.dec(erun) == as_put
        assert cid in cids
        assert ecns == saver.keys.enc("")
    assert connector.client().sismember(saver.keys.run(as_put), thread)
    saver.delete_for_runs([as_put])
    assert _keys(connector, saver, thread) == []
    assert not connector.client().exists(saver.keys.run(as_put))
    saver.delete_thread(thread)


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_run_id_no_key_can_hold_is_refused_before_anything_is_written(
    connector: RedisConnector, use_async: bool
) -> None:
    """A run id longer than a key component (8,192 characters with the namespace): put
    refuses it (InvalidInputError) before its script; put_writes must too, before its
    script, not after the writes and the run member landed (then delete_for_runs of that
    run refuses it as well, and delete_thread fails on the run index of the member)."""
    saver = RedisSaver(connector=connector)
    tag = uuid.uuid4().hex[:8]
    thread, run = f"t-{tag}", "r" * 9_000
    with pytest.raises(InvalidInputError):
        _put(saver, thread, run)
    assert _keys(connector, saver, thread) == []
    config = _cfg(thread, "", str(uuid6()), run)
    if use_async:
        with pytest.raises(InvalidInputError):
            await saver.aput_writes(config, [("v", 1)], "task")
    else:
        with pytest.raises(InvalidInputError):
            saver.put_writes(config, [("v", 1)], "task")
    assert _keys(connector, saver, thread) == []
    saver.delete_thread(thread)


async def test_a_sweep_between_writes_and_the_first_put_keeps_the_writes(
    connector: RedisConnector,
) -> None:
    """LangGraph's async durability sends a step's writes and its checkpoint's put apart:
    the writes may land first. When put_writes named a brand-new thread in the thread
    index (2869941), a sweep_threads between the two took the thread's keys (it had no
    checkpoint yet) and the put then landed with no pending writes. A thread is named by
    its put only."""
    saver = RedisSaver(connector=connector)
    tag = uuid.uuid4().hex[:8]
    thread, run = f"t-{tag}", f"run-{tag}"
    cid = str(uuid6())
    saver.put_writes(_cfg(thread, "", cid, run), [("v", 1)], "task")
    saver.sweep_threads()
    stored = _put(saver, thread, run, cid=cid)
    got = saver.get_tuple(stored)
    assert got is not None
    assert [w[2] for w in got.pending_writes or []] == [1]
    saver.delete_thread(thread)


@pytest.mark.parametrize("use_async", [False, True])
async def test_metadata_with_a_lone_surrogate_is_stored_and_filtered_as_in_memory_saver(
    connector: RedisConnector, use_async: bool
) -> None:
    """A metadata value holding a lone surrogate (UTF-8 cannot hold it): the put lands (it
    failed in msgpack, an untyped UnicodeEncodeError, after the serializer had taken it),
    the metadata reads back as LangGraph's serializer stores it, and every filter answers
    what InMemorySaver answers for the same put. A key holding one the serializer refuses
    (InMemorySaver: TypeError): a typed SerializationError, nothing written."""
    from langgraph.checkpoint.memory import InMemorySaver

    saver, memory = RedisSaver(connector=connector), InMemorySaver()
    thread = f"t-{uuid.uuid4().hex[:8]}"
    cp = empty_checkpoint()
    md: Any = {
        "source": "loop",
        "step": 1,
        "parents": {},
        "run_id": "r\ud800",
        "x": "a\udc00b",
        "plain": "p",
        "nested": ["\ud800"],
    }
    bad_key = {**md, "k\ud800": 1}
    with pytest.raises(TypeError):
        memory.put(_cfg(thread), cp, bad_key, {})
    if use_async:
        with pytest.raises(SerializationError):
            await saver.aput(_cfg(thread), cp, bad_key, {})
    else:
        with pytest.raises(SerializationError):
            saver.put(_cfg(thread), cp, bad_key, {})
    assert _keys(connector, saver, thread) == []
    if use_async:
        await saver.aput(_cfg(thread), cp, md, {})
    else:
        saver.put(_cfg(thread), cp, md, {})
    memory.put(_cfg(thread), cp, md, {})
    ours, theirs = saver.get_tuple(_cfg(thread)), memory.get_tuple(_cfg(thread))
    assert ours is not None
    assert theirs is not None
    assert ours.metadata == theirs.metadata
    for flt in [
        {"x": "a\udc00b"},
        {"x": "a?b"},
        {"plain": "p"},
        {"nested": ["\ud800"]},
        {"nested": ["?"]},
        {"run_id": "r?"},
        {"x": "nope"},
    ]:
        got = [t.checkpoint["id"] for t in saver.list(_cfg(thread), filter=flt)]
        want = [t.checkpoint["id"] for t in memory.list(_cfg(thread), filter=flt)]
        assert got == want, flt
    # the run is the one put named, as put_writes names it: its delete takes the checkpoint
    saver.delete_for_runs(["r\ud800"])
    assert saver.get_tuple(_cfg(thread)) is None
    assert _keys(connector, saver, thread) == []
