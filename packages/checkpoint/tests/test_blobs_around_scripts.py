"""Big blobs go around the scripts (`CheckpointSettings.script_blob_bytes`).

Every kilobyte a Lua script receives or reads costs Redis ~1.2 µs of single-threaded time (and
a read packs it again), so a put sends blobs past the limit as a plain ``HSET`` in the same
``MULTI`` as its script, and a read gets their sizes from the script and the bytes from an
``HMGET``. These tests hold the two paths to the same answers as the one-script path, on
standalone and Cluster, sync and async, and check the cases only this path has: a blob that
changes between the read's two round trips, a server that lost its scripts, a full server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import pytest_asyncio
import redis
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.checkpoint._scripts import PUT, READ
from deepagents_redis.core import DeepAgentsRedisError, RedisConnector, RedisSettings
from deepagents_redis.core._driver import Command, Script, Snapshot, drive, execute
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.conformance import checkpointer_test, validate


def _cfg(thread: str, cid: str | None = None) -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ""}
    if cid:
        conf["checkpoint_id"] = cid
    return {"configurable": conf}


def _messages(n: int) -> list[Any]:
    out: list[Any] = []
    for i in range(n):
        out += [HumanMessage(f"q{i} " + "words " * 40), AIMessage(f"a{i} " + "more " * 30)]
    return out


def _chain(saver: RedisSaver, thread: str, sizes: list[int]) -> list[str]:
    """One checkpoint per size: 'messages' (that many pairs) changes each time, 'small' once."""
    ids: list[str] = []
    parent: str | None = None
    for i, n in enumerate(sizes):
        cp = empty_checkpoint()
        cp["id"] = str(uuid6(clock_seq=i))
        cp["channel_values"] = {"messages": _messages(n), "small": "same"}
        cp["channel_versions"] = {"messages": f"{i + 1:032}.0", "small": f"{1:032}.0"}
        new = {"messages": cp["channel_versions"]["messages"]}
        if i == 0:
            new["small"] = cp["channel_versions"]["small"]
        saver.put(_cfg(thread, parent), cp, {"source": "loop", "step": i, "parents": {}}, new)  # type: ignore[arg-type]
        ids.append(cp["id"])
        parent = cp["id"]
    return ids


def _same(a: Any, b: Any) -> bool:
    """Two checkpoint tuples with the same config, checkpoint, metadata and writes."""
    if a is None or b is None:
        return a is b
    return (a.config, a.checkpoint, a.metadata, a.parent_config, a.pending_writes) == (
        b.config,
        b.checkpoint,
        b.metadata,
        b.parent_config,
        b.pending_writes,
    )


@pytest_asyncio.fixture
async def connector(owned_redis_target: Any) -> AsyncIterator[RedisConnector]:
    """conftest's connector, on servers this session started: some tests here flush the
    server's scripts (server-wide), which the suite never does to a server it did not start
    (`REDIS_URL`, `REDIS_CLUSTER_URL`)."""
    conn = RedisConnector(settings=owned_redis_target.settings)
    yield conn
    await conn.aclose()


@pytest.fixture
def around(connector: RedisConnector) -> RedisSaver:
    """Every blob around the scripts."""
    return RedisSaver(connector=connector, script_blob_bytes=0)


@pytest.fixture
def inside(connector: RedisConnector) -> RedisSaver:
    """Every blob through the scripts (the one-call path)."""
    return RedisSaver(connector=connector, script_blob_bytes=1 << 40)


async def test_every_capability_passes_with_every_blob_around_the_scripts(
    connector: RedisConnector,
) -> None:
    @checkpointer_test(name="RedisSaver, blobs around the scripts")
    async def factory() -> AsyncIterator[RedisSaver]:
        yield RedisSaver(connector=connector, script_blob_bytes=0)

    report = await validate(factory)
    failures = {n: r.failures for n, r in report.results.items() if not r.passed}
    assert not failures, failures


def test_both_paths_read_and_write_the_same_state(around: RedisSaver, inside: RedisSaver) -> None:
    """What one path writes, the other reads identically (and each reads its own)."""
    for writer in (around, inside):
        thread = f"t-{uuid.uuid4()}"
        ids = _chain(writer, thread, [1, 40, 3, 60])
        for cid in [None, *ids]:
            got = [saver.get_tuple(_cfg(thread, cid)) for saver in (around, inside)]
            assert got[0] is not None
            assert _same(got[0], got[1])
            if cid is None:
                assert got[0].config["configurable"]["checkpoint_id"] == ids[-1]
            assert len(got[0].checkpoint["channel_values"]["messages"]) > 0
        listed = [list(saver.list(_cfg(thread))) for saver in (around, inside)]
        assert [t.config for t in listed[0]] == [t.config for t in listed[1]]
        assert all(_same(a, b) for a, b in zip(*listed, strict=True))
        assert len(listed[0]) == 4


@pytest.mark.parametrize("cluster_multi", [True, False])
async def test_async_methods_take_the_same_paths(
    around: RedisSaver, inside: RedisSaver, monkeypatch: pytest.MonkeyPatch, cluster_multi: bool
) -> None:
    """Async, with MULTI on the asyncio cluster client, and without (an older redis-py: the
    put runs as one script, its fallback)."""
    from deepagents_redis.core import _driver

    monkeypatch.setattr(_driver, "_ASYNC_CLUSTER_MULTI", cluster_multi)
    thread = f"t-{uuid.uuid4()}"
    cp = empty_checkpoint()
    cp["channel_values"] = {"messages": _messages(50)}
    cp["channel_versions"] = {"messages": f"{1:032}.0"}
    meta: Any = {"source": "input", "step": -1, "parents": {}}
    await around.aput(_cfg(thread), cp, meta, dict(cp["channel_versions"]))
    got = [await saver.aget_tuple(_cfg(thread)) for saver in (around, inside)]
    assert got[0] is not None
    assert _same(got[0], got[1])
    assert got[0].checkpoint["channel_values"]["messages"] == _messages(50)
    listed = [[t async for t in saver.alist(_cfg(thread))] for saver in (around, inside)]
    assert all(_same(a, b) for a, b in zip(*listed, strict=True))
    await around.aput_writes(got[0].config, [("messages", _messages(45))], "task-1")
    got = [await saver.aget_tuple(_cfg(thread)) for saver in (around, inside)]
    assert got[0] is not None
    assert _same(got[0], got[1])
    assert got[0].pending_writes == [("task-1", "messages", _messages(45))]


def test_the_bytes_go_around_the_script(around: RedisSaver, connector: RedisConnector) -> None:
    """The put's script call carries no blob; the read's script reply carries sizes only."""
    thread = f"t-{uuid.uuid4()}"
    blob_size = len(around.serde.dumps_typed(_messages(40))[1])
    sent: list[Any] = []
    client = connector.client()

    def step(req: Any) -> Any:
        sent.append(req)
        return execute(client, req)

    cp = empty_checkpoint()
    cp["channel_values"] = {"messages": _messages(40)}
    cp["channel_versions"] = {"messages": "1"}
    meta: Any = {"source": "input", "step": -1}
    drive(around._put_op(_cfg(thread), cp, meta, {"messages": "1"}), step)
    put = [r for r in sent if isinstance(r, Snapshot)]
    assert len(put) == 1
    hset, evalsha = put[0].cmds
    assert hset[0] == "HSET"
    assert max(len(a) for a in hset[2:] if isinstance(a, bytes)) >= blob_size
    assert evalsha[0] == "EVALSHA"
    assert evalsha[1] == PUT.sha
    assert max(len(a) for a in evalsha if isinstance(a, bytes | str)) < blob_size // 4
    sent.clear()
    got = drive(around._get_op(_cfg(thread)), step)
    assert got is not None
    assert got.checkpoint["channel_values"]["messages"] == _messages(40)
    assert [type(r).__name__ for r in sent] == ["Script", "Command"]
    assert sent[1].args[0] == "HMGET"


def test_big_writes_go_around_the_script_and_keep_langgraphs_rules(
    around: RedisSaver, inside: RedisSaver, connector: RedisConnector
) -> None:
    """put_writes past the limit: the script lists each name once, then plain HSETNX (the
    first write per task and index stays) or HSET (special writes are replaced) in the
    MULTI."""
    from langgraph.checkpoint.base import ERROR

    thread = f"t-{uuid.uuid4()}"
    (cid,) = _chain(around, thread, [1])
    config: Any = _cfg(thread, cid)
    sent: list[Any] = []
    client = connector.client()

    def step(req: Any) -> Any:
        sent.append(req)
        return execute(client, req)

    big, other = _messages(40), _messages(41)
    # A server that lost its scripts: the MULTI's EVALSHA gets NOSCRIPT, its HSETNX stores
    # the value, and the fallback (the one-call script) stores and lists it: one write.
    client.script_flush()
    drive(around._put_writes_op(config, [("messages", big), (ERROR, "boom")], "task-1", ""), step)
    (snap,) = sent
    assert isinstance(snap, Snapshot)
    assert [w[1] for w in inside.get_tuple(config).pending_writes] == [ERROR, "messages"]
    assert [c[0] for c in snap.cmds] == ["EVALSHA", "HSETNX", "HSET"]
    assert max(len(a) for a in snap.cmds[0] if isinstance(a, bytes | str)) < 1024
    # again, with other values: the regular write stays, the special one is replaced
    around.put_writes(config, [("messages", other), (ERROR, "boom 2")], "task-1")
    for saver in (around, inside):
        got = saver.get_tuple(config)
        assert got is not None
        assert got.pending_writes == [("task-1", ERROR, "boom 2"), ("task-1", "messages", big)]
    keys = around.keys.thread(thread)
    names = client.hget(keys.write_lists, keys.field(around.keys.enc(""), cid))
    assert names is not None
    assert len(msgpack.unpackb(names)) == 2  # each name listed once


def test_a_blob_that_changes_between_the_round_trips_reads_again_in_one_script(
    around: RedisSaver, inside: RedisSaver, connector: RedisConnector
) -> None:
    """Between the script and the HMGET a blob is rewritten (another size) or deleted: the
    read runs again with every blob inside the script, and answers what that one read sees."""
    client = connector.client()
    for change in ("resize", "delete"):
        thread = f"t-{uuid.uuid4()}"
        _chain(around, thread, [30])
        keys = around.keys.thread(thread)
        sent: list[Any] = []

        def step(req: Any, keys: Any = keys, change: str = change, sent: list[Any] = sent) -> Any:
            sent.append(req)
            if isinstance(req, Command) and req.args[0] == "HMGET":
                field = req.args[2]
                if change == "resize":
                    client.hset(keys.blobs, field, client.hget(keys.blobs, field) + b" ")
                else:
                    client.hdel(keys.blobs, field)
            return execute(client, req)

        got = drive(around._get_op(_cfg(thread)), step)
        assert [type(r).__name__ for r in sent] == ["Script", "Command", "Script"]
        assert isinstance(sent[2], Script)
        assert sent[2].script is READ
        assert sent[2].args[7] == ""  # no limit: every blob inside the script
        assert _same(got, inside.get_tuple(_cfg(thread)))


def test_a_server_that_lost_its_scripts_still_takes_the_put(owned_redis_url: str) -> None:
    """NOSCRIPT inside the MULTI: the put runs as one script call (loading it), once."""
    settings = RedisSettings(url=owned_redis_url, key_prefix=f"t{uuid.uuid4().hex}")
    conn = RedisConnector(settings=settings)
    saver = RedisSaver(connector=conn, script_blob_bytes=0)
    thread = f"t-{uuid.uuid4()}"
    conn.client().script_flush()
    ids = _chain(saver, thread, [20, 25])
    got = saver.get_tuple(_cfg(thread))
    assert got is not None
    assert got.config["configurable"]["checkpoint_id"] == ids[-1]
    assert got.checkpoint["channel_values"]["messages"] == _messages(25)
    assert len(list(saver.list(_cfg(thread)))) == 2
    saver.delete_thread(thread)
    conn.close()


def test_a_full_server_refuses_a_big_put_whole(redis_server_factory: Any) -> None:
    """EXEC holds an HSET (deny-oom): at maxmemory the server refuses the whole MULTI."""
    server = redis_server_factory(config={"maxmemory-policy": "noeviction"})
    conn = RedisConnector(settings=RedisSettings(url=server.url, cluster="off"))
    saver = RedisSaver(connector=conn, script_blob_bytes=0, eviction_check="off")
    client = conn.client()
    thread = "full"
    _chain(saver, thread, [5])
    keys = saver.keys.thread(thread)

    def state() -> list[Any]:
        return [client.hgetall(k) for k in keys.all if client.type(k) == b"hash"]

    before = state()
    client.config_set("maxmemory", "1")
    try:
        cp = empty_checkpoint()
        cp["channel_values"] = {"messages": _messages(30)}
        cp["channel_versions"] = {"messages": f"{9:032}.0"}
        with pytest.raises(DeepAgentsRedisError, match="maxmemory"):
            saver.put(_cfg(thread), cp, {}, dict(cp["channel_versions"]))  # type: ignore[arg-type]
        assert state() == before  # no blob, no checkpoint
    finally:
        client.config_set("maxmemory", "0")
    conn.close()


def test_a_history_value_that_changes_between_the_round_trips_walks_again_in_one_script(
    around: RedisSaver, inside: RedisSaver, connector: RedisConnector
) -> None:
    """`get_delta_channel_history` with values around the script: a write deleted between
    the script and its HMGET makes the walk run again inside the script."""
    from langgraph.checkpoint.base import BaseCheckpointSaver

    client = connector.client()
    thread = f"t-{uuid.uuid4()}"
    ids = _chain(around, thread, [1, 2, 3])
    around.put_writes(_cfg(thread, ids[1]), [("messages", _messages(30))], "task-1")
    newest = _cfg(thread, ids[2])
    sent: list[Any] = []

    def step(req: Any) -> Any:
        sent.append(req)
        if type(req).__name__ == "Pipeline":
            keys = around.keys.thread(thread)
            for name in client.hkeys(keys.writes):
                client.hdel(keys.writes, name)
        return execute(client, req)

    got = drive(around._history_op(newest, ["messages"]), step)
    assert [type(r).__name__ for r in sent] == ["Script", "Pipeline", "Script"]
    assert sent[2].args[4] == ""  # no limit: every value inside the script
    assert got == BaseCheckpointSaver.get_delta_channel_history(
        inside, config=newest, channels=["messages"]
    )
    assert got["messages"]["writes"] == []  # the write is gone; the seed is still there
    assert got["messages"]["seed"] == _messages(2)


class _LostConnection:
    """A fallback script whose call never reaches the server (it went away after EXEC)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("lost after EXEC")


@pytest.mark.parametrize("what", ["put", "put_writes"])
def test_a_big_write_whose_script_never_ran_leaves_no_key_without_the_ttl(
    connector: RedisConnector, what: str
) -> None:
    """NOSCRIPT in the MULTI, then the fallback call fails: the MULTI's HSET (HSETNX) of the
    big values had run and created the blob (writes) key of a new thread, or of one
    deleted meanwhile, with no TTL and no checkpoint naming its fields: it was kept for
    good. It now gets the thread's TTL in the same MULTI."""
    saver = RedisSaver(connector=connector, script_blob_bytes=0, ttl_seconds=1000)
    client = connector.client()
    thread = f"t-{uuid.uuid4()}"
    keys = saver.keys.thread(thread)
    (cid,) = _chain(saver, thread, [1])
    saver.delete_thread(thread)  # LangGraph writes to a checkpoint a reset just deleted

    def step(req: Any) -> Any:
        if isinstance(req, Snapshot):
            client.script_flush()
            req = Snapshot(req.cmds, Script(_LostConnection(), req.fallback.keys, []))  # type: ignore[arg-type]
        return execute(client, req)

    if what == "put":
        cp = empty_checkpoint()
        cp["channel_values"] = {"messages": _messages(30)}
        cp["channel_versions"] = {"messages": f"{1:032}.0"}
        op = saver._put_op(_cfg(thread), cp, {}, dict(cp["channel_versions"]))  # type: ignore[arg-type]
    else:
        op = saver._put_writes_op(_cfg(thread, cid), [("messages", _messages(30))], "task-1", "")
    with pytest.raises(redis.ConnectionError):
        drive(op, step)
    left = [key for key in keys.all if client.exists(key)]
    assert left == [keys.blobs if what == "put" else keys.writes]  # the case is what it says
    assert 0 < client.pttl(left[0]) <= 1_000_000
    saver.delete_thread(thread)
