"""`RedisSaver` beyond the conformance suite: hostile bytes, bad input, TTL, paging, layout."""

from __future__ import annotations

import uuid
from typing import Any

import msgpack
import pytest
from deepagents_redis.checkpoint import CheckpointSettings, RedisSaver
from deepagents_redis.core import (
    ConfigurationError,
    DeepAgentsRedisError,
    InvalidInputError,
    RedisConnector,
    RedisSettings,
    SerializationError,
)
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver


def _cfg(thread: str, ns: str = "", cid: str | None = None) -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if cid:
        conf["checkpoint_id"] = cid
    return {"configurable": conf}


def _put_chain(
    saver: RedisSaver, thread: str, n: int, *, ns: str = "", value: Any = None
) -> list[dict[str, Any]]:
    """n checkpoints, each the child of the one before; channel 'v' changes every time,
    channel 'fixed' only in the first."""
    stored: list[dict[str, Any]] = []
    parent: str | None = None
    for i in range(n):
        cp = empty_checkpoint()
        cp["id"] = str(uuid6(clock_seq=i))
        cp["channel_values"] = {"v": value if value is not None else i, "fixed": "same"}
        cp["channel_versions"] = {"v": f"{i + 1:032}.0", "fixed": f"{1:032}.0"}
        new = {"v": cp["channel_versions"]["v"]}
        if i == 0:
            new["fixed"] = cp["channel_versions"]["fixed"]
        md = {"source": "loop", "step": i, "parents": {}, "kind": "odd" if i % 2 else "even"}
        stored.append(saver.put(_cfg(thread, ns, parent), cp, md, new))  # type: ignore[arg-type]
        parent = cp["id"]
    return stored


def _thread() -> str:
    return f"t-{uuid.uuid4()}"


def _raw(connector: RedisConnector) -> Any:
    return connector.client()


def _scan(connector: RedisConnector, head: str, suffix: str = "*") -> list[str]:
    """The keys under a thread's head (tests only: SCAN on the test's private server)."""
    pattern = head.replace("{", "\\{").replace("}", "\\}") + suffix
    return [k.decode() for k in _raw(connector).scan_iter(match=pattern)]


# ------------------------------------------------------------------ construction
def test_from_url_returns_the_saver_and_owns_its_connection(redis_url: str) -> None:
    saver = RedisSaver.from_url(redis_url)
    assert isinstance(saver, RedisSaver)
    assert saver.owns_connector
    thread = _thread()
    _put_chain(saver, thread, 1)
    assert saver.get_tuple(_cfg(thread)) is not None
    saver.delete_thread(thread)
    saver.close()


def test_connector_and_url_together_are_refused(connector: RedisConnector, redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="connector= and url="):
        RedisSaver(connector=connector, url=redis_url)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_CHECKPOINT_TTL_SECONDS", "60")
    monkeypatch.setenv("DEEPAGENTS_REDIS_CHECKPOINT_NAMESPACE", "tenant-a")
    settings = CheckpointSettings()
    assert (settings.ttl_seconds, settings.namespace) == (60, "tenant-a")
    with pytest.raises(ConfigurationError, match="namespace"):
        CheckpointSettings(namespace="a/b")


def test_namespaces_do_not_see_each_other(connector: RedisConnector) -> None:
    a = RedisSaver(connector=connector, namespace="a")
    b = RedisSaver(connector=connector, namespace="b")
    thread = _thread()
    _put_chain(a, thread, 2)
    assert b.get_tuple(_cfg(thread)) is None
    assert len(list(a.list(_cfg(thread)))) == 2
    a.delete_thread(thread)


# ------------------------------------------------------------------ round trips and layout
def test_every_key_of_a_thread_is_in_one_slot(connector: RedisConnector) -> None:
    saver = RedisSaver(connector=connector)
    thread = "odd {thread} : id * ? [x]"
    _put_chain(saver, thread, 3, ns="child:1|x")
    tup = saver.get_tuple(_cfg(thread, "child:1|x"))
    assert tup is not None
    assert tup.checkpoint["channel_values"] == {"v": 2, "fixed": "same"}
    saver.put_writes(tup.config, [("v", 1), ("v", 2)], "task-1")
    tkeys = saver.keys.thread(thread)
    head = tkeys.head
    tag = head[head.index("{") : head.index("}") + 1]
    keys = _scan(connector, head)
    # a thread is its fixed keys (no run here): what varies lives in fields and members
    assert sorted(keys) == sorted(tkeys.all[:7])
    assert all(tag in k for k in keys)
    client = _raw(connector)
    assert client.hlen(tkeys.checkpoints) == client.hlen(tkeys.records) == 3
    assert client.hlen(tkeys.blobs) == 4  # 3 versions of "v", 1 of "fixed"
    assert client.hlen(tkeys.writes) == 2
    assert client.hlen(tkeys.write_lists) == 1
    saver.delete_thread(thread)
    assert saver.get_tuple(_cfg(thread, "child:1|x")) is None
    assert _scan(connector, head) == []


def test_deleting_a_graph_thread_leaves_no_key_behind(connector: RedisConnector) -> None:
    from langgraph.graph import END, START, StateGraph

    namespace = f"ns{uuid.uuid4().hex[:8]}"
    saver = RedisSaver(connector=connector, namespace=namespace)
    builder = StateGraph(dict)
    builder.add_node("one", lambda state: {"x": 1})
    builder.add_edge(START, "one")
    builder.add_edge("one", END)
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}, "metadata": {"run_id": str(uuid.uuid4())}}
    graph.invoke({"x": 0}, config)
    prefix = connector.settings.key_prefix
    ours = [
        k.decode()
        for k in _raw(connector).scan_iter(match=f"{prefix}:v2:ckpt*")
        if namespace in k.decode()
    ]
    assert any(":ckpt-run:" in k for k in ours)  # LangGraph's run id was indexed
    assert any(":ckpt-idx:" in k for k in ours)
    saver.delete_thread("t")
    left = [
        k.decode()
        for k in _raw(connector).scan_iter(match=f"{prefix}:v2:ckpt*")
        if namespace in k.decode()
    ]
    assert left == []


def test_unchanged_channels_are_stored_once(connector: RedisConnector) -> None:
    saver = RedisSaver(connector=connector)
    thread = _thread()
    _put_chain(saver, thread, 5)
    every = list(saver.list(_cfg(thread)))
    assert [t.checkpoint["channel_values"] for t in every] == [
        {"v": i, "fixed": "same"} for i in reversed(range(5))
    ]
    blobs = saver.keys.thread(thread).blobs
    assert _raw(connector).hlen(blobs) == 6  # five versions of 'v', one of 'fixed'
    saver.prune([thread])
    (latest,) = list(saver.list(_cfg(thread)))
    assert latest.checkpoint["channel_values"] == {"v": 4, "fixed": "same"}
    assert _raw(connector).hlen(blobs) == 2  # the kept checkpoint's, nothing else
    saver.delete_thread(thread)


def test_deletes_in_bounded_batches_leave_nothing_behind(connector: RedisConnector) -> None:
    """delete_batch=2: a run of 5 checkpoints and a thread naming 5 runs take several calls."""
    saver = RedisSaver(connector=connector, namespace=f"ns{uuid.uuid4().hex[:8]}", delete_batch=2)
    thread, other = _thread(), _thread()
    runs = [str(uuid.uuid4()) for _ in range(5)]
    parent: str | None = None
    for i, run in enumerate(runs):
        for n in range(2):
            cp = empty_checkpoint()
            cp["id"] = str(uuid6(clock_seq=i * 2 + n))
            md: Any = {"step": i, "run_id": run}
            saver.put(_cfg(thread, "", parent), cp, md, {})
            parent = cp["id"]
    _put_chain(saver, other, 5)
    for i in range(5):
        cp = empty_checkpoint()
        meta: Any = {"step": i, "run_id": runs[0]}
        saver.put(_cfg(other), cp, meta, {})
    client = _raw(connector)
    keys = saver.keys.thread(thread)
    saver.delete_for_runs([runs[0]])
    assert len(list(saver.list(_cfg(thread)))) == 8
    assert len(list(saver.list(_cfg(other)))) == 5
    assert client.zcard(keys.runs) == 8
    saver.delete_thread(thread)
    assert not any(client.exists(key) for key in keys.all)
    assert all(not client.sismember(saver.keys.run(run), thread) for run in runs)
    assert list(saver.threads()) == [other]
    saver.delete_thread(other)


# ------------------------------------------------------------------ list from the index
@pytest.mark.parametrize("scan_batch", [1, 3, 256])
async def test_list_filters_before_and_limit_page_correctly(
    connector: RedisConnector, scan_batch: int
) -> None:
    saver = RedisSaver(connector=connector, scan_batch=scan_batch)
    thread = _thread()
    stored = _put_chain(saver, thread, 10)
    ids = [s["configurable"]["checkpoint_id"] for s in stored]
    odd = [t.metadata["step"] for t in saver.list(_cfg(thread), filter={"kind": "odd"})]
    assert odd == [9, 7, 5, 3, 1]
    assert [
        t.metadata["step"] async for t in saver.alist(_cfg(thread), filter={"kind": "odd"}, limit=2)
    ] == [9, 7]
    before = [t.metadata["step"] for t in saver.list(_cfg(thread), before=stored[5], limit=3)]
    assert before == [4, 3, 2]
    both = list(saver.list(_cfg(thread), filter={"kind": "even", "step": 4.0}))
    assert [t.metadata["step"] for t in both] == [4]
    assert list(saver.list(_cfg(thread), filter={"missing": "x"})) == []
    assert len(list(saver.list(_cfg(thread), filter={"missing": None}))) == 10
    one = list(saver.list({"configurable": {"thread_id": thread, "checkpoint_id": ids[3]}}))
    assert [t.checkpoint["id"] for t in one] == [ids[3]]
    assert list(saver.list(_cfg(thread), limit=0)) == []
    saver.delete_thread(thread)


async def test_list_of_a_checkpoint_id_reads_only_that_checkpoint(
    connector: RedisConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``list(config)`` whose config names a checkpoint fetches and decodes that checkpoint
    (in each namespace that has it) and no other: it scanned the whole thread (or
    namespace) and dropped all but one in Python. Answers as InMemorySaver's, with the
    same id in two namespaces, `before`, filters and limits."""
    saver = RedisSaver(connector=connector, scan_batch=4)
    memory = InMemorySaver()
    thread = _thread()
    ids = [str(uuid6(clock_seq=n)) for n in range(12)]
    for n, cid in enumerate(ids):
        cp = empty_checkpoint()
        cp["id"] = cid
        for ns in ("", "child") if n == 5 else ("child",) if n % 3 == 0 else ("",):
            for target in (saver, memory):
                target.put(_cfg(thread, ns), cp, {"step": n, "kind": n % 2}, {})  # type: ignore[arg-type, typeddict-unknown-key]
    decoded: list[str] = []
    real_tuple = saver._tuple

    def counted(where: Any, thread_value: Any, entry: Any) -> Any:
        tup = real_tuple(where, thread_value, entry)
        decoded.append(tup.checkpoint["id"])
        return tup

    monkeypatch.setattr(saver, "_tuple", counted)

    def rows(found: Any) -> list[Any]:
        return [(t.config, t.metadata, t.parent_config) for t in found]

    for cid in (ids[5], ids[3], ids[4], str(uuid6(clock_seq=99))):
        for conf in ({}, {"checkpoint_ns": ""}, {"checkpoint_ns": "child"}):
            config: Any = {"configurable": {"thread_id": thread, "checkpoint_id": cid, **conf}}
            for query in (
                {},
                {"limit": 1},
                {"limit": 0},
                {"filter": {"kind": 1}},
                {"filter": {"kind": 0}},
                {"before": _cfg(thread, cid=ids[6])},
                {"before": _cfg(thread, cid=cid)},
            ):
                decoded.clear()
                got = rows(saver.list(config, **query))  # type: ignore[arg-type]
                assert got == rows(memory.list(config, **query)), (cid, conf, query)  # type: ignore[arg-type]
                assert decoded == [t[0]["configurable"]["checkpoint_id"] for t in got]
                decoded.clear()
                agot = rows([t async for t in saver.alist(config, **query)])  # type: ignore[arg-type]
                assert agot == got
                assert len(decoded) == len(got)
    both: Any = {"configurable": {"thread_id": thread, "checkpoint_id": ids[5]}}
    assert len(list(saver.list(both))) == 2  # the case is what it says
    saver.delete_thread(thread)


@pytest.mark.parametrize("limit", [2.5, "3", True, b"1"])
async def test_a_list_limit_that_is_not_an_int_is_invalid_input(
    connector: RedisConnector, limit: Any
) -> None:
    # limit=2.5 reached Redis as a page size: the server's untyped "not an integer" error.
    saver = RedisSaver(connector=connector)
    thread = _thread()
    _put_chain(saver, thread, 3)
    with pytest.raises(InvalidInputError, match="limit must be an int"):
        list(saver.list(_cfg(thread), limit=limit))
    with pytest.raises(InvalidInputError, match="limit must be an int"):
        [t async for t in saver.alist(_cfg(thread), limit=limit)]
    assert len(list(saver.list(_cfg(thread), limit=-1))) == 0  # as InMemorySaver
    assert len(list(saver.list(_cfg(thread), limit=2))) == 2
    saver.delete_thread(thread)


def test_list_without_a_config_walks_every_thread(connector: RedisConnector) -> None:
    saver = RedisSaver(connector=connector, namespace=f"ns{uuid.uuid4().hex[:8]}")
    threads = sorted(_thread() for _ in range(3))
    for thread in threads:
        _put_chain(saver, thread, 2)
    seen = [t.config["configurable"]["thread_id"] for t in saver.list(None)]
    assert seen == [t for t in threads for _ in range(2)]
    assert len(list(saver.list(None, limit=3))) == 3
    saver.delete_thread(threads[0])
    assert {t.config["configurable"]["thread_id"] for t in saver.list(None)} == set(threads[1:])
    for thread in threads[1:]:
        saver.delete_thread(thread)


def test_threads_pages_every_thread_whenever_each_was_created(
    connector: RedisConnector,
) -> None:
    """The thread index is read by lex range, which Redis defines only when every member has
    the same score; scored by creation time, threads created in another order than their
    names were skipped past the first page (list(None) and the migration's copy missed
    them). Threads created in reverse name order, each in a later millisecond."""
    import time

    saver = RedisSaver(connector=connector, namespace=f"ns{uuid.uuid4().hex[:8]}")
    names = [f"t{i:03}" for i in range(230)]
    for name in reversed(names):
        _put_chain(saver, name, 1)
        tick = int(time.time() * 1000)
        for _ in range(100_000):  # bounded: the next millisecond, not a duration
            if int(time.time() * 1000) != tick:
                break
    assert list(saver.threads()) == names
    other = RedisSaver(connector=connector, namespace=saver.checkpoint_settings.namespace)
    source = _thread()
    _put_chain(other, source, 1)
    other.copy_thread(source, "t000a")
    other.delete_thread(source)
    assert list(saver.threads()) == sorted([*names, "t000a"])
    assert len({t.config["configurable"]["thread_id"] for t in saver.list(None)}) == 231
    for name in [*names, "t000a"]:
        saver.delete_thread(name)


def test_langgraph_calls_use_no_keys_or_scan(redis_url: str, redis_settings: Any) -> None:
    """INFO commandstats before and after every call LangGraph makes: no KEYS, no SCAN."""
    saver = RedisSaver(settings=redis_settings)
    client = saver.connector.client()

    def counts() -> tuple[int, int]:
        stats = client.info("commandstats")
        return (
            stats.get("cmdstat_keys", {}).get("calls", 0),
            stats.get("cmdstat_scan", {}).get("calls", 0),
        )

    start = counts()
    thread = _thread()
    stored = _put_chain(saver, thread, 4)
    saver.put_writes(stored[-1], [("v", 1)], "task")
    saver.get_tuple(_cfg(thread))
    saver.get_tuple(stored[1])
    list(saver.list(_cfg(thread), filter={"kind": "odd"}, before=stored[3], limit=2))
    saver.delete_for_runs(["nope"])
    saver.copy_thread(thread, thread + "-copy")
    saver.prune([thread])
    saver.delete_thread(thread)
    saver.delete_thread(thread + "-copy")
    assert counts() == start
    saver.close()


# ------------------------------------------------------------------ TTL
def test_ttl_is_per_thread_and_renewed_by_every_write(connector: RedisConnector) -> None:
    saver = RedisSaver(connector=connector, ttl_seconds=1000)
    thread = _thread()
    stored = _put_chain(saver, thread, 1)
    client = _raw(connector)
    keys = saver.keys.thread(thread)
    present = [key for key in keys.all if client.exists(key)]
    assert set(present) == {*keys.all[:5]}  # no writes, no run yet
    for key in present:
        assert 0 < client.pttl(key) <= 1_000_000, key
    saver.put_writes(stored[0], [("v", 1)], "task")
    assert 0 < client.pttl(keys.writes) <= 1_000_000
    client.pexpire(keys.blobs, 5_000)  # as if written long ago
    _put_chain(saver, thread, 1)  # a new checkpoint that still uses 'fixed'
    assert client.pttl(keys.blobs) > 900_000
    assert client.pttl(keys.write_lists) > 900_000
    saver.delete_thread(thread)


@pytest.mark.parametrize("script_blob_bytes", [0, 1 << 30])
async def test_writes_after_a_delete_get_the_thread_ttl(
    connector: RedisConnector, script_blob_bytes: int
) -> None:
    """put_writes to a checkpoint a delete_thread just took (a run still going after a
    reset) creates the thread's write keys again: each gets the thread's TTL, on both the
    script's path and the one around it (guard: the suspected keys without a TTL)."""
    saver = RedisSaver(connector=connector, ttl_seconds=1000, script_blob_bytes=script_blob_bytes)
    client = _raw(connector)
    for use_async in (False, True):
        thread = _thread()
        (stored,) = _put_chain(saver, thread, 1)
        keys = saver.keys.thread(thread)
        if use_async:
            await saver.adelete_thread(thread)
            await saver.aput_writes(stored, [("v", "x" * 100)], "task")  # type: ignore[arg-type]
        else:
            saver.delete_thread(thread)
            saver.put_writes(stored, [("v", "x" * 100)], "task")  # type: ignore[arg-type]
        present = [key for key in keys.all if client.exists(key)]
        assert present == [keys.writes, keys.write_lists]
        assert all(0 < client.pttl(key) <= 1_000_000 for key in present)
        saver.delete_thread(thread)


def _put_run(saver: RedisSaver, thread: str, run_id: str) -> dict[str, Any]:
    cp = empty_checkpoint()
    md = {"source": "loop", "step": 0, "parents": {}, "run_id": run_id}
    return saver.put(_cfg(thread), cp, md, {})  # type: ignore[arg-type,return-value]


def test_a_ttl_bounds_the_run_index_too(
    connector: RedisConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a TTL every run's index set expires as well (each run left a key forever), and
    a run still writing renews it (at most every half TTL per process: no extra round trip
    per put)."""
    from deepagents_redis.checkpoint import _saver

    now = [1_000.0]
    monkeypatch.setattr(_saver, "_clock", lambda: now[0], raising=False)
    saver = RedisSaver(connector=connector, ttl_seconds=1000)
    thread, run_id = _thread(), str(uuid.uuid4())
    client = _raw(connector)
    run_key = saver.keys.run(run_id)
    _put_run(saver, thread, run_id)
    assert 0 < client.pttl(run_key) <= 2_000_000
    client.pexpire(run_key, 5_000)  # as if written long ago
    _put_run(saver, thread, run_id)
    assert client.pttl(run_key) <= 5_000  # renewed at most every half TTL
    now[0] += 500
    _put_run(saver, thread, run_id)
    assert client.pttl(run_key) > 1_900_000
    copy = _thread()
    saver.copy_thread(thread, copy)
    client.persist(run_key)
    saver.copy_thread(thread, copy)
    assert 0 < client.pttl(run_key) <= 2_000_000
    saver.delete_for_runs([run_id])
    assert not client.exists(run_key)
    assert saver.get_tuple(_cfg(thread)) is None
    assert saver.get_tuple(_cfg(copy)) is None
    saver.delete_thread(thread)
    saver.delete_thread(copy)


@pytest.mark.parametrize("blob_bytes", [32_768, 0], ids=["inline", "around"])
@pytest.mark.parametrize("use_async", [False, True])
async def test_a_thread_deleted_by_another_process_is_indexed_again(
    connector: RedisConnector, use_async: bool, blob_bytes: int
) -> None:
    """A saver remembers which threads and runs it already indexed; when another process
    deletes the thread (a conversation reset under a stable thread id) and this one writes
    it again, the thread is back in the thread index (threads(), list(None) and the
    migration's copy missed it) and the run in the run index (delete_for_runs left it)."""
    namespace = f"ns{uuid.uuid4().hex[:8]}"
    worker = RedisSaver(connector=connector, namespace=namespace, script_blob_bytes=blob_bytes)
    admin = RedisSaver(connector=connector, namespace=namespace)
    thread, run_id = _thread(), str(uuid.uuid4())

    async def put() -> None:
        cp = empty_checkpoint()
        cp["channel_values"] = {"v": "x" * 100}
        cp["channel_versions"] = {"v": f"{1:032}.0"}
        new = dict(cp["channel_versions"])
        md = {"source": "loop", "step": 0, "parents": {}, "run_id": run_id}
        if use_async:
            await worker.aput(_cfg(thread), cp, md, new)  # type: ignore[arg-type]
        else:
            worker.put(_cfg(thread), cp, md, new)  # type: ignore[arg-type]

    await put()
    admin.delete_thread(thread)
    assert list(admin.threads()) == []
    await put()
    assert list(admin.threads()) == [thread]
    assert [t.config["configurable"]["thread_id"] for t in admin.list(None)] == [thread]
    tup = admin.get_tuple(_cfg(thread))
    assert tup is not None
    assert tup.checkpoint["channel_values"] == {"v": "x" * 100}
    admin.delete_for_runs([run_id])
    assert admin.get_tuple(_cfg(thread)) is None
    admin.delete_thread(thread)


def test_refresh_on_read_renews_what_was_read(connector: RedisConnector) -> None:
    saver = RedisSaver(connector=connector, ttl_seconds=1000, refresh_on_read=True)
    thread = _thread()
    _put_chain(saver, thread, 2)
    client = _raw(connector)
    cp_key = saver.keys.thread(thread).checkpoints
    client.pexpire(cp_key, 5_000)
    saver.get_tuple(_cfg(thread))
    assert client.pttl(cp_key) > 900_000
    plain = RedisSaver(connector=connector, ttl_seconds=1000)
    client.pexpire(cp_key, 5_000)
    plain.get_tuple(_cfg(thread))
    assert client.pttl(cp_key) <= 5_000
    saver.delete_thread(thread)


def test_a_checkpoint_gone_under_its_index_drops_out_of_it(connector: RedisConnector) -> None:
    saver = RedisSaver(connector=connector)
    thread = _thread()
    stored = _put_chain(saver, thread, 3)
    keys = saver.keys.thread(thread)
    newest = stored[-1]["configurable"]["checkpoint_id"]
    _raw(connector).hdel(keys.checkpoints, keys.field("%_", newest))  # as if lost
    tup = saver.get_tuple(_cfg(thread))
    assert tup is not None
    assert tup.checkpoint["id"] == stored[1]["configurable"]["checkpoint_id"]
    assert _raw(connector).zcard(keys.index) == 2
    assert _raw(connector).zcard(keys.ns_index) == 2
    assert len(list(saver.list(_cfg(thread)))) == 2
    saver.delete_thread(thread)


async def test_an_index_member_without_its_tab_is_dropped_not_a_script_error(
    connector: RedisConnector,
) -> None:
    """A member of the thread's index that no put wrote ('cid<TAB>ecns' without its tab:
    someone else's bytes) names no checkpoint: list() over every namespace and copy_thread,
    which read that index, stopped on the read script's Lua runtime error (untyped)."""
    saver = RedisSaver(connector=connector)
    thread, target = _thread(), _thread()
    stored = _put_chain(saver, thread, 2)
    keys = saver.keys.thread(thread)
    ids = [c["configurable"]["checkpoint_id"] for c in reversed(stored)]
    for member in ("zzzz", "~", "0"):  # above, between and below the real members
        _raw(connector).zadd(keys.index, {member: 0})
    every = {"configurable": {"thread_id": thread}}
    assert [t.checkpoint["id"] for t in saver.list(every)] == ids
    assert _raw(connector).zcard(keys.index) == 2  # dropped, as a stale entry is
    _raw(connector).zadd(keys.index, {"zzzz": 0})
    assert [t.checkpoint["id"] async for t in saver.alist(every, limit=1)] == ids[:1]
    _raw(connector).zadd(keys.index, {"0": 0})
    saver.copy_thread(thread, target)
    assert [t.checkpoint["id"] for t in saver.list(_cfg(target))] == ids
    saver.delete_thread(thread)
    saver.delete_thread(target)


async def test_a_member_not_utf8_that_ends_a_call_is_dropped_not_a_decode_error(
    connector: RedisConnector,
) -> None:
    """An index member that is not UTF-8 (someone else's bytes) is dropped by the read as
    any foreign member is; but when it was the last one a call looked at it came back as
    the cursor, which the client decoded as text: list, get_tuple and copy_thread stopped
    with an untyped UnicodeDecodeError (a history walk likewise, on a parent not UTF-8)."""
    saver = RedisSaver(connector=connector, scan_batch=1)
    thread, target = _thread(), _thread()
    stored = _put_chain(saver, thread, 2)
    keys = saver.keys.thread(thread)
    ids = [c["configurable"]["checkpoint_id"] for c in reversed(stored)]
    client = _raw(connector)

    def junk() -> None:  # above every real member, so the first a newest-first call sees
        client.zadd(keys.index, {b"\xff\t\xff": 0})
        client.zadd(keys.ns_index, {b"%_\t\xff": 0})

    junk()
    assert [t.checkpoint["id"] for t in saver.list({"configurable": {"thread_id": thread}})] == ids
    junk()
    assert [t.checkpoint["id"] for t in saver.list(_cfg(thread))] == ids
    junk()
    assert [t.checkpoint["id"] async for t in saver.alist(_cfg(thread))] == ids
    junk()
    got = saver.get_tuple(_cfg(thread))
    assert got is not None
    assert got.checkpoint["id"] == ids[0]
    junk()
    client.zadd(keys.index, {b"\x00\xff": 0})  # below them: the oldest-first copy's first
    saver.copy_thread(thread, target)
    assert [t.checkpoint["id"] for t in saver.list(_cfg(target))] == ids
    # a parent not UTF-8 where a history call's budget (one ancestor) ends: its cursor
    field = keys.field("%_", ids[1])
    _parent, refs, erun, filters = msgpack.unpackb(client.hget(keys.records, field))
    record = msgpack.packb([b"\xff", refs, erun, filters], use_bin_type=False)  # as put packs
    client.hset(keys.records, field, record)
    newest = _cfg(thread, cid=ids[0])
    history = saver.get_delta_channel_history(config=newest, channels=["none"])
    assert history == {"none": {"writes": []}}
    saver.delete_thread(thread)
    saver.delete_thread(target)


@pytest.mark.parametrize("use_async", [False, True])
async def test_copy_thread_stores_writes_as_put_writes_does(
    connector: RedisConnector, use_async: bool
) -> None:
    """A copy into a target that holds writes of its own for the same checkpoint and task
    (a fork that ran on, then copied again) keeps them as `put_writes` keeps them: the
    target's regular write for (task, index) stays, a special write is replaced. Every
    write was replaced by the source's, so the fork's own step was overwritten."""
    from langgraph.checkpoint.base import ERROR

    saver = RedisSaver(connector=connector)
    source, target, replay = _thread(), _thread(), _thread()
    (src,) = _put_chain(saver, source, 1)
    cid = src["configurable"]["checkpoint_id"]
    saver.copy_thread(source, target)
    (rep,) = _put_chain(saver, replay, 1)  # the oracle: the same calls through the API
    for cfg in (_cfg(target, cid=cid), rep):
        saver.put_writes(cfg, [("v", "own"), (ERROR, "own error")], "task-1")
    saver.put_writes(src, [("v", "source"), ("w", "source w"), (ERROR, "source error")], "task-1")
    saver.put_writes(src, [("v", "other task")], "task-2")
    if use_async:
        await saver.acopy_thread(source, target)
    else:
        saver.copy_thread(source, target)
    source_writes = saver.get_tuple(src).pending_writes  # type: ignore[union-attr]
    saver.put_writes(rep, [("v", "source"), ("w", "source w"), (ERROR, "source error")], "task-1")
    saver.put_writes(rep, [("v", "other task")], "task-2")
    got = saver.get_tuple(_cfg(target, cid=cid))
    want = saver.get_tuple(rep)
    assert got is not None
    assert want is not None
    assert got.pending_writes == want.pending_writes
    assert ("task-1", "v", "own") in got.pending_writes  # type: ignore[operator]
    assert ("task-1", ERROR, "source error") in got.pending_writes  # type: ignore[operator]
    assert source_writes != got.pending_writes  # the case is what it says
    for thread in (source, target, replay):
        saver.delete_thread(thread)


@pytest.mark.parametrize("use_async", [False, True])
async def test_copy_thread_of_a_record_naming_no_run_is_a_serialization_error(
    connector: RedisConnector, use_async: bool
) -> None:
    """A source index record whose run is not an encoding put writes (someone else's bytes)
    made copy_thread raise InvalidInputError, an error about the caller's input (and for
    the migration, a ValueError): it is a corrupt record, as for every other reader."""
    saver = RedisSaver(connector=connector)
    thread, target = _thread(), _thread()
    cp = empty_checkpoint()
    saver.put(_cfg(thread), cp, {"run_id": "r"}, {})  # type: ignore[typeddict-unknown-key]
    keys = saver.keys.thread(thread)
    field = keys.field("%_", cp["id"])
    client = _raw(connector)
    record = msgpack.unpackb(client.hget(keys.records, field), raw=False)
    record[2] = "%%bad"
    client.hset(keys.records, field, msgpack.packb(record, use_bin_type=False))
    if use_async:
        with pytest.raises(SerializationError, match="names no run"):
            await saver.acopy_thread(thread, target)
    else:
        with pytest.raises(SerializationError, match="names no run"):
            saver.copy_thread(thread, target)
    saver.delete_thread(thread)
    saver.delete_thread(target)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "config",
    [
        {},
        {"configurable": {}},
        {"configurable": {"thread_id": ""}},
        {"configurable": {"thread_id": "a\x00b"}},
        {"configurable": {"thread_id": "x" * 1025}},
        {"configurable": {"thread_id": ["list"]}},
        {"configurable": {"thread_id": "t", "checkpoint_ns": 3}},
        {"configurable": {"thread_id": "t", "checkpoint_id": "../../etc"}},
    ],
)
def test_bad_configs_are_invalid_input_and_change_nothing(
    connector: RedisConnector, config: dict[str, Any]
) -> None:
    saver = RedisSaver(connector=connector)
    size = _raw(connector).dbsize() if not connector.is_cluster else None
    cp = empty_checkpoint()
    with pytest.raises(InvalidInputError):
        saver.put(config, cp, {}, {})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        saver.get_tuple(config)  # type: ignore[arg-type]
    if size is not None:
        assert _raw(connector).dbsize() == size


def test_bad_checkpoint_ids_and_strategies_are_refused(connector: RedisConnector) -> None:
    saver = RedisSaver(connector=connector)
    cp = empty_checkpoint()
    cp["id"] = "has:colon"
    with pytest.raises(InvalidInputError):
        saver.put(_cfg(_thread()), cp, {}, {})
    with pytest.raises(InvalidInputError, match="strategy"):
        saver.prune([_thread()], strategy="everything")
    with pytest.raises(InvalidInputError):
        saver.put_writes(_cfg(_thread()), [("c", 1)], "task")  # no checkpoint id


async def test_a_single_id_where_a_list_is_due_is_refused(connector: RedisConnector) -> None:
    """prune("xy") walked the str: it deleted threads "x" and "y" (and not "xy"); so did
    delete_for_runs with runs. A str is refused, as LangGraph's PostgresSaver refuses it."""
    saver = RedisSaver(connector=connector, namespace=f"ns{uuid.uuid4().hex[:8]}")
    for thread in ("x", "y", "xy"):
        _put_chain(saver, thread, 2)
    with pytest.raises(InvalidInputError, match="not a str"):
        saver.prune("xy", strategy="delete")
    with pytest.raises(InvalidInputError, match="not a str"):
        await saver.aprune("xy", strategy="delete")
    with pytest.raises(InvalidInputError, match="not a str"):
        saver.prune("xy")
    with pytest.raises(InvalidInputError, match="not a str"):
        saver.delete_for_runs("xy")
    with pytest.raises(InvalidInputError, match="not a str"):
        await saver.adelete_for_runs("xy")
    assert sorted(saver.threads()) == ["x", "xy", "y"]
    for thread in ("x", "y", "xy"):
        assert len(list(saver.list(_cfg(thread)))) == 2
        saver.delete_thread(thread)


def test_unserializable_values_are_a_typed_error(connector: RedisConnector) -> None:
    saver = RedisSaver(connector=connector)
    thread = _thread()
    cp = empty_checkpoint()
    cp["channel_values"] = {"v": object()}
    cp["channel_versions"] = {"v": "1"}
    with pytest.raises(SerializationError):
        saver.put(_cfg(thread), cp, {}, {"v": "1"})
    assert saver.get_tuple(_cfg(thread)) is None


# ------------------------------------------------------------------ hostile bytes
def _ext(module: str, name: str, arg: Any) -> bytes:
    """A msgpack value asking the loader to call module.name(arg) (LangGraph's ext code 0)."""
    return msgpack.packb(msgpack.ExtType(0, msgpack.packb([module, name, arg])))


HOSTILE = {
    "no frame": b"\x00\x01garbage",
    "pickle": b"pickle\n\x80\x04K\x01.",
    "bad msgpack": b"msgpack\n\xc1\xc1\xc1",
    "callable": b"msgpack\n" + _ext("os", "system", "echo pwned > /tmp/dar-pwned"),
    "unknown type": b"marshal\n\x00",
}


@pytest.mark.parametrize("where", ["checkpoint", "metadata", "blob", "write"])
@pytest.mark.parametrize("payload", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_bytes_are_a_serialization_error(
    connector: RedisConnector, where: str, payload: str, tmp_path: Any
) -> None:
    saver = RedisSaver(connector=connector)
    thread = _thread()
    stored = _put_chain(saver, thread, 1)
    saver.put_writes(stored[0], [("v", 1)], "task")
    keys = saver.keys.thread(thread)
    cid = stored[0]["configurable"]["checkpoint_id"]
    field = keys.field("%_", cid)
    client = _raw(connector)
    bad = HOSTILE[payload]
    body = msgpack.unpackb(client.hget(keys.checkpoints, field))
    if where == "checkpoint":
        client.hset(keys.checkpoints, field, msgpack.packb([bad, body[1]]))
    elif where == "metadata":
        client.hset(keys.checkpoints, field, msgpack.packb([body[0], bad]))
    elif where == "blob":
        client.hset(keys.blobs, f"%_\t{saver.keys.blob_ref('v', f'{1:032}.0')}", bad)
    else:
        client.hset(keys.writes, f"{field}\t0\ttask", msgpack.packb(["v", "", bad]))
    with pytest.raises(SerializationError):
        saver.get_tuple(_cfg(thread))
    with pytest.raises(SerializationError):
        list(saver.list(_cfg(thread)))
    import os

    assert not os.path.exists("/tmp/dar-pwned")
    saver.delete_thread(thread)


@pytest.mark.parametrize(
    "damage",
    [
        "write name",
        "write list",
        "index record",
        "record shape",
        "body",
        "ref a number",
        "ref a table",
        "write name a table",
    ],
)
def test_malformed_stored_records_are_a_serialization_error(
    connector: RedisConnector, damage: str
) -> None:
    saver = RedisSaver(connector=connector)
    thread = _thread()
    stored = _put_chain(saver, thread, 2)  # the older one is damaged: history walks to it
    saver.put_writes(stored[0], [("v", 1)], "task")
    keys = saver.keys.thread(thread)
    field = keys.field("%_", stored[0]["configurable"]["checkpoint_id"])
    client = _raw(connector)
    if damage == "write name":
        client.hset(keys.write_lists, field, msgpack.packb(["notanindex"]))
        client.hset(keys.writes, f"{field}\tnotanindex", b"\x93")
    elif damage == "write list":
        client.hset(keys.write_lists, field, b"\xc1 not msgpack")
    elif damage == "index record":
        client.hset(keys.records, field, b"\xc1 not msgpack")
    elif damage == "record shape":
        client.hset(keys.records, field, msgpack.packb(["parent", "refs", "", {}]))
    elif damage == "ref a number":
        # reached the client as an int: bytes(ref) allocated that many bytes (a MemoryError
        # for 4000000000; a million here, which without the check read as a blob ref)
        client.hset(keys.records, field, msgpack.packb(["", [1_000_000], "", {}]))
    elif damage == "ref a table":  # a Lua runtime error in the read script, untyped
        client.hset(keys.records, field, msgpack.packb(["", [["v:1"]], "", {}]))
    elif damage == "write name a table":
        client.hset(keys.write_lists, field, msgpack.packb([["0\ttask"]]))
    else:
        client.hset(keys.checkpoints, field, b"\x00 not a body")
    with pytest.raises(SerializationError):
        saver.get_tuple(stored[0])
    with pytest.raises(SerializationError):
        list(saver.list(_cfg(thread)))
    if damage != "body":  # a history walk reads no body
        with pytest.raises(SerializationError):
            saver.get_delta_channel_history(config=stored[1], channels=["v"])
    client.delete(*keys.all)
    saver.delete_thread(thread)


@pytest.mark.parametrize("damage", ["namespace not ours", "namespace not utf-8", "channel an int"])
async def test_stored_names_no_put_writes_are_a_serialization_error_not_invalid_input(
    connector: RedisConnector, damage: str
) -> None:
    """An index entry whose namespace is no encoding a put writes, or a stored checkpoint
    whose channel is not a str, reached the key codec: `list` and `get_tuple` raised its
    InvalidInputError (a ValueError about the caller's input) or an untyped
    UnicodeDecodeError, where every other reader of foreign bytes raises
    SerializationError."""
    from deepagents_redis.checkpoint._serde import dump

    saver = RedisSaver(connector=connector)
    thread = _thread()
    (stored,) = _put_chain(saver, thread, 1)
    cid = stored["configurable"]["checkpoint_id"]
    keys = saver.keys.thread(thread)
    field = keys.field("%_", cid)
    client = _raw(connector)
    body, record = client.hget(keys.checkpoints, field), client.hget(keys.records, field)
    if damage == "channel an int":
        checkpoint = saver.get_tuple(stored).checkpoint  # type: ignore[union-attr]
        checkpoint.pop("channel_values")
        checkpoint["channel_versions"] = {1: "1"}
        meta = msgpack.unpackb(body)[1]
        client.hset(keys.checkpoints, field, msgpack.packb([dump(saver.serde, checkpoint), meta]))
    else:
        ecns = b"%zz" if damage == "namespace not ours" else b"\xff"
        other = ecns + b"\t" + cid.encode()
        client.hset(keys.checkpoints, other, body)
        client.hset(keys.records, other, record)
        client.zadd(keys.index, {cid.encode() + b"\t" + ecns: 0})
    with pytest.raises(SerializationError):
        list(saver.list({"configurable": {"thread_id": thread}}))
    with pytest.raises(SerializationError):
        [t async for t in saver.alist({"configurable": {"thread_id": thread}})]
    if damage == "channel an int":
        with pytest.raises(SerializationError):
            saver.get_tuple(stored)
    else:  # nor is such an entry copied on (a copy stopped on it untyped, or spread it)
        with pytest.raises(SerializationError):
            saver.copy_thread(thread, thread + "-copy")
        with pytest.raises(SerializationError):
            await saver.acopy_thread(thread, thread + "-copy")
        saver.delete_thread(thread + "-copy")
    saver.delete_thread(thread)


def test_a_key_of_the_wrong_type_is_a_typed_error(connector: RedisConnector) -> None:
    saver = RedisSaver(connector=connector)
    thread = _thread()
    _put_chain(saver, thread, 1)
    keys = saver.keys.thread(thread)
    client = _raw(connector)
    client.delete(keys.checkpoints)
    client.set(keys.checkpoints, b"a string where a hash belongs")
    with pytest.raises(DeepAgentsRedisError):
        saver.get_tuple(_cfg(thread))
    client.delete(keys.checkpoints)
    saver.delete_thread(thread)


def test_a_custom_type_outside_the_allowlist_is_refused_not_revived(
    connector: RedisConnector,
) -> None:
    """LangGraph would log and hand back the raw payload; we raise (no silent shape change)."""
    saver = RedisSaver(connector=connector)
    thread = _thread()
    stored = _put_chain(saver, thread, 1, value=uuid.UUID(int=1))  # a safe type: revived
    tup = saver.get_tuple(stored[0])
    assert tup is not None
    assert tup.checkpoint["channel_values"]["v"] == uuid.UUID(int=1)
    client = _raw(connector)
    keys = saver.keys.thread(thread)
    client.hset(
        keys.blobs,
        f"%_\t{saver.keys.blob_ref('v', f'{1:032}.0')}",
        b"msgpack\n" + _ext("collections", "OrderedDict", [["a", 1]]),
    )
    with pytest.raises(SerializationError, match=r"collections\.OrderedDict"):
        saver.get_tuple(stored[0])
    saver.delete_thread(thread)


def test_an_evicting_server_is_refused_when_asked(
    redis_server_factory: Any, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_server_factory(config={"maxmemory": "100mb", "maxmemory-policy": "allkeys-lru"})
    settings = RedisSettings(url=server.url, key_prefix=key_prefix)
    strict = RedisSaver(settings=settings, eviction_check="refuse")
    with pytest.raises(ConfigurationError, match="allkeys-lru"):
        _put_chain(strict, _thread(), 1)
    strict.close()
    lenient = RedisSaver(settings=settings)
    with caplog.at_level("WARNING", logger="deepagents_redis.checkpoint"):
        _put_chain(lenient, _thread(), 1)
    assert "allkeys-lru" in caplog.text
    lenient.close()


async def test_an_asyncio_burst_wider_than_the_pool_completes(redis_target: Any) -> None:
    # An asyncio graph runs many nodes at once and each writes: 3 connections, 30 first
    # writes at once (their eviction check included) all complete instead of the pool
    # failing with "Too many connections" (found by LangGraph's own test_store_injected_async).
    import asyncio

    from deepagents_redis.core import RedisConnector

    conn = RedisConnector(settings=redis_target.settings.with_overrides(max_connections=3))
    saver = RedisSaver(connector=conn)
    fresh = RedisSaver(connector=conn)  # its first writes all want the one eviction check
    try:
        thread = f"burst-{uuid.uuid4().hex[:8]}"
        config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        stored = await saver.aput(config, empty_checkpoint(), {"step": 0}, {})
        await asyncio.gather(
            *(saver.aput_writes(stored, [("count", n)], f"task-{n}") for n in range(30)),
            *(
                fresh.aput(
                    {"configurable": {"thread_id": f"{thread}-{n}", "checkpoint_ns": ""}},
                    empty_checkpoint(),
                    {"step": 0},
                    {},
                )
                for n in range(10)
            ),
        )
        got = await saver.aget_tuple(stored)
        assert got is not None
        assert len(got.pending_writes or []) == 30
    finally:
        await conn.aclose()


async def test_an_empty_checkpoint_id_means_the_newest_as_in_memory_saver_reads_it(
    connector: RedisConnector,
) -> None:
    """``checkpoint_id: ""`` (a config built with a blank id) was an InvalidInputError;
    InMemorySaver and PostgresSaver read it as no id: the thread's newest checkpoint, and
    a `before` that bounds nothing."""
    saver = RedisSaver(connector=connector)
    memory = InMemorySaver()
    thread = _thread()
    ids = [str(uuid6(clock_seq=n)) for n in range(3)]
    for n in range(3):
        cp = empty_checkpoint()
        cp["id"] = ids[n]
        for target in (saver, memory):
            target.put(_cfg(thread), cp, {"step": n}, {})
    blank: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": ""}}
    for target in (saver, memory):
        got = target.get_tuple(blank)
        assert got is not None
        assert got.checkpoint["id"] == ids[2]
        assert [t.checkpoint["id"] for t in target.list(blank)] == ids[::-1]
        assert len(list(target.list(_cfg(thread), before=blank))) == 3
    got = await saver.aget_tuple(blank)
    assert got is not None
    assert got.checkpoint["id"] == ids[2]


# ------------------------------------------------------------------ foreign run index entries
async def test_foreign_run_index_entries_never_stop_a_delete(connector: RedisConnector) -> None:
    """Bytes no put writes in a run's set or a thread's run index stopped the deletes:
    delete_for_runs raised InvalidInputError ('thread_id holds control characters', as if
    the caller's) on a member b'bad\\x00' and left the run; delete_thread raised a Lua
    'arithmetic on a nil value' on a member without its tab (the thread could never be
    deleted) and UnicodeDecodeError on a non-UTF-8 one; and a run member with no
    checkpoint behind it was never taken off, so delete_for_runs with delete_batch=1 looped
    on it until its deadline. Now they are skipped or taken off, and the deletes finish."""
    saver = RedisSaver(connector=connector, namespace=f"ns{uuid.uuid4().hex[:8]}", delete_batch=1)
    raw = _raw(connector)
    for delete in ("sync", "async"):
        run, thread, other = f"run-{delete}", f"a-{delete}", f"b-{delete}"
        for name in (thread, other):
            cp = empty_checkpoint()
            saver.put(_cfg(name), cp, {"run_id": run}, {})
        raw.sadd(saver.keys.run(run), b"\xff", b"bad\x00")
        # a member of the run with nothing behind it, and one not of our shape
        raw.zadd(saver.keys.thread(thread).runs, {f"{run}\tnone\t%_": 0, f"{run}\tx": 0})
        if delete == "sync":
            saver.delete_for_runs([run])
        else:
            await saver.adelete_for_runs([run])
        assert saver.get_tuple(_cfg(thread)) is None
        assert saver.get_tuple(_cfg(other)) is None
        assert not raw.exists(saver.keys.run(run))
        assert not raw.exists(saver.keys.thread(thread).runs)

        saver.put(_cfg(thread), empty_checkpoint(), {"run_id": run}, {})
        raw.zadd(saver.keys.thread(thread).runs, {b"notab": 0, b"\xff\tx\t%_": 0})
        if delete == "sync":
            saver.delete_thread(thread)
        else:
            await saver.adelete_thread(thread)
        assert not any(raw.exists(key) for key in saver.keys.thread(thread).all)
        assert thread not in list(saver.threads())
        assert not raw.sismember(saver.keys.run(run), thread)


async def test_strings_utf8_cannot_hold_are_invalid_input_or_match_nothing(
    connector: RedisConnector,
) -> None:
    """A lone surrogate (a str UTF-8 cannot encode) in a task id, a task path or a write's
    channel reached redis-py and came back as a bare UnicodeEncodeError; now put_writes
    refuses it with InvalidInputError and stores nothing. In a list filter (a key or a
    value, at any depth) it matches nothing, as in InMemorySaver (no metadata can hold one:
    the serializer refuses it), instead of the same UnicodeEncodeError."""
    saver = RedisSaver(connector=connector)
    memory = InMemorySaver()
    thread = _thread()
    stored = _put_chain(saver, thread, 1)[0]
    memory.put(_cfg(thread), empty_checkpoint(), {"source": "loop"}, {})
    bad = "\udc80"
    for kwargs in (
        {"writes": [("v", 1)], "task_id": f"t{bad}"},
        {"writes": [("v", 1)], "task_id": "t", "task_path": bad},
        {"writes": [(f"v{bad}", 1)], "task_id": "t"},
    ):
        with pytest.raises(InvalidInputError, match="UTF-8"):
            saver.put_writes(stored, **kwargs)
        with pytest.raises(InvalidInputError, match="UTF-8"):
            await saver.aput_writes(stored, **kwargs)
    tup = saver.get_tuple(stored)
    assert tup is not None
    assert tup.pending_writes == []
    for filter in ({f"k{bad}": 1}, {"source": bad}, {"source": [bad]}, {"source": {bad: 1}}):
        assert list(memory.list(_cfg(thread), filter=filter)) == []
        assert list(saver.list(_cfg(thread), filter=filter)) == []
        assert [t async for t in saver.alist(_cfg(thread), filter=filter)] == []
    assert len(list(saver.list(_cfg(thread), filter={"source": "loop"}))) == 1


# ------------------------------------------------------------------ copy_thread of a big thread
def _budgeted(op: Any, budget: int, cut: list[int] | None = None) -> Any:
    """`op` as the driver runs it, failing once it sends more than `budget` requests (a
    deadline measured in requests, not seconds), or at request `cut[0]` of all the ops
    wrapped (a copy cut off part way)."""
    from deepagents_redis.core import RedisUnavailableError

    reply: Any = None
    sent = 0
    while True:
        try:
            request = op.send(reply)
        except StopIteration as stop:
            return stop.value
        sent += 1
        if sent > budget:
            raise RedisUnavailableError(f"more than {budget} requests in one operation")
        if cut is not None:
            cut[0] -= 1
            if cut[0] < 0:
                raise RedisUnavailableError("cut off")
        reply = yield request


def _budget_saver(saver: RedisSaver, budget: int, cut: list[int] | None = None) -> None:
    run, arun = saver._run, saver._arun
    saver._run = lambda name, op: run(name, _budgeted(op, budget, cut))  # type: ignore[method-assign]
    saver._arun = lambda name, op: arun(name, _budgeted(op, budget, cut))  # type: ignore[method-assign]


def _chain_intact(saver: RedisSaver, thread: str) -> list[str]:
    """The target's checkpoint ids, asserting each one's parent is there too."""
    tuples = list(saver.list(_cfg(thread)))
    ids = {t.checkpoint["id"] for t in tuples}
    for tup in tuples:
        if tup.parent_config is not None:
            assert tup.parent_config["configurable"]["checkpoint_id"] in ids
    return sorted(ids)


async def test_copy_thread_pages_oldest_first_so_any_size_copies_and_a_cut_stays_whole(
    connector: RedisConnector,
) -> None:
    """copy_thread ran as ONE operation under one deadline (default 5 s), newest first: a
    400-step conversation of 2 KB turns took 1.6 s to copy here, so a few times that never
    copied under the default deadline, and each failed try left the target with the
    source's newest checkpoints and none of their ancestors (a DeltaChannel rebuilt from
    them comes back short, silently). Now each page is its own operation, oldest first:
    here each operation may send only 3 pages' worth of requests (a deadline in requests,
    not seconds), and a copy cut off part way leaves every copied checkpoint's parent."""
    from deepagents_redis.checkpoint._saver import _PAGE

    saver = RedisSaver(connector=connector)
    source = _thread()
    stored = _put_chain(saver, source, 3 * _PAGE + 5)
    for config in stored:
        saver.put_writes(config, [("v", 1)], "task")
    want = _chain_intact(saver, source)
    for mode in ("sync", "async"):
        target = f"{source}-{mode}"
        cut_saver = RedisSaver(connector=connector)
        _budget_saver(cut_saver, 10**6, cut=[_PAGE + 7])  # cut inside the second page
        if mode == "sync":
            with pytest.raises(DeepAgentsRedisError, match="cut off"):
                cut_saver.copy_thread(source, target)
        else:
            with pytest.raises(DeepAgentsRedisError, match="cut off"):
                await cut_saver.acopy_thread(source, target)
        partial = _chain_intact(saver, target)
        assert 0 < len(partial) < len(want)
        bounded = RedisSaver(connector=connector)
        _budget_saver(bounded, 3 * _PAGE)
        if mode == "sync":
            bounded.copy_thread(source, target)
        else:
            await bounded.acopy_thread(source, target)
        assert _chain_intact(saver, target) == want
        got = saver.get_tuple(_cfg(target))
        assert got is not None
        assert got.checkpoint["id"] == want[-1]
        assert len(got.pending_writes or []) == 1
        saver.delete_thread(target)
    saver.delete_thread(source)


async def test_a_bad_id_in_a_batch_deletes_nothing(connector: RedisConnector) -> None:
    """prune(strategy='delete') and delete_for_runs checked each id only when its turn
    came: prune(['a', '', 'b'], strategy='delete') deleted thread 'a', then raised
    InvalidInputError for ''; delete_for_runs(['r1', '']) deleted run r1's checkpoints,
    then raised. Bad input now changes nothing: the whole batch is checked first."""
    saver = RedisSaver(connector=connector, namespace=f"ns{uuid.uuid4().hex[:8]}")
    for thread in ("a", "b"):
        saver.put(_cfg(thread), empty_checkpoint(), {"run_id": f"r-{thread}"}, {})
    for bad in ("", "a\x00b", None):
        with pytest.raises(InvalidInputError):
            saver.prune(["a", bad, "b"], strategy="delete")  # type: ignore[list-item]
        with pytest.raises(InvalidInputError):
            await saver.aprune(["a", bad, "b"], strategy="delete")  # type: ignore[list-item]
        with pytest.raises(InvalidInputError):
            saver.prune(["a", bad, "b"])  # type: ignore[list-item]
    for bad in ("", 7):
        with pytest.raises(InvalidInputError):
            saver.delete_for_runs(["r-a", bad, "r-b"])  # type: ignore[list-item]
        with pytest.raises(InvalidInputError):
            await saver.adelete_for_runs(["r-a", bad, "r-b"])  # type: ignore[list-item]
    for thread in ("a", "b"):
        assert saver.get_tuple(_cfg(thread)) is not None
    assert sorted(saver.threads()) == ["a", "b"]


async def test_prune_and_delete_for_runs_of_many_threads_are_bounded_per_thread(
    connector: RedisConnector,
) -> None:
    """prune and delete_for_runs ran a whole batch as ONE operation under one deadline
    (5 s by default): two scripts per thread for keep_latest, so a batch of thousands of
    threads over a network never finished, and each try pruned again the threads before
    the same point. Now each thread is its own operation: here each may send at most 4
    requests (a deadline in requests, not seconds) and batches of 12 threads complete."""
    saver = RedisSaver(connector=connector, namespace=f"ns{uuid.uuid4().hex[:8]}")
    threads = [f"t{n:02d}" for n in range(12)]
    for thread in threads:
        _put_chain(saver, thread, 2)
        saver.put(_cfg(thread), empty_checkpoint(), {"run_id": "big-run"}, {})
    bounded = RedisSaver(connector=connector, namespace=saver.keys.namespace)
    _budget_saver(bounded, 4)
    bounded.prune(threads[:6])
    await bounded.aprune(threads[6:])
    assert all(len(list(saver.list(_cfg(t)))) == 1 for t in threads)
    bounded.delete_for_runs(["big-run"])
    assert all(saver.get_tuple(_cfg(t)) is None for t in threads)
    for thread in threads:
        _put_chain(saver, thread, 1)
        saver.put(_cfg(thread), empty_checkpoint(), {"run_id": "again"}, {})
    await bounded.adelete_for_runs(["again"])
    bounded.prune(threads[:6], strategy="delete")
    await bounded.aprune(threads[6:], strategy="delete")
    assert list(saver.threads()) == []


async def test_keep_latest_leaves_a_kept_checkpoint_whose_parent_went_with_no_parent(
    connector: RedisConnector,
) -> None:
    """After prune(keep_latest) the kept checkpoint still named its deleted parent:
    get_tuple(...).parent_config pointed at a checkpoint that reads as None (a graph sent
    there starts from an empty state). PostgresSaver's prune leaves such a checkpoint with
    no parent; so does RedisSaver now, keeping its blobs, writes, run and filters."""
    saver = RedisSaver(connector=connector)
    for mode in ("sync", "async"):
        thread = _thread()
        _put_chain(saver, thread, 3)
        sub = _put_chain(saver, thread, 2, ns="sub:1")
        saver.put_writes(sub[-1], [("v", 9)], "task")
        lone = _thread()
        _put_chain(saver, lone, 1)  # nothing to delete: untouched
        if mode == "sync":
            saver.prune([thread, lone])
        else:
            await saver.aprune([thread, lone])
        for ns in ("", "sub:1"):
            tuples = list(saver.list(_cfg(thread, ns)))
            assert len(tuples) == 1
            assert tuples[0].parent_config is None
            got = saver.get_tuple(_cfg(thread, ns))
            assert got is not None
            assert got.parent_config is None
        got = saver.get_tuple(_cfg(thread, "sub:1"))
        assert got is not None
        assert got.checkpoint["channel_values"] == {"v": 1, "fixed": "same"}
        assert [w[1:] for w in got.pending_writes or []] == [("v", 9)]
        assert len(list(saver.list(_cfg(thread, "sub:1"), filter={"kind": "odd"}))) == 1
        assert len(list(saver.list(_cfg(lone)))) == 1


def test_a_ttl_redis_cannot_set_is_refused_before_anything_is_written(
    connector: RedisConnector,
) -> None:
    """ttl_seconds had no upper bound: at 10**17 s the first put failed in Redis
    ('value is not an integer or out of range' on the run index's PEXPIRE) after its
    pipeline had named the thread in the thread index, and without a run the put script
    failed at its PEXPIRE after writing the checkpoint: an error, and state changed. A TTL
    past 100 years is now a ConfigurationError when the saver is built."""
    for ttl in (10**17, 10**16, 3_153_600_001):
        with pytest.raises(ConfigurationError, match="ttl_seconds"):
            RedisSaver(connector=connector, ttl_seconds=ttl)
        with pytest.raises(ConfigurationError, match="ttl_seconds"):
            CheckpointSettings(ttl_seconds=ttl)
    saver = RedisSaver(connector=connector, ttl_seconds=3_153_600_000)
    thread = _thread()
    _put_chain(saver, thread, 1)
    assert _raw(connector).pttl(saver.keys.thread(thread).index) > 0
    saver.delete_thread(thread)


def test_a_metadata_key_that_is_not_a_str_never_hides_a_str_key(
    connector: RedisConnector,
) -> None:
    """The server-side filter index named each metadata key by str(key), so {'1': 2, 1: 1}
    indexed '1' as 1 (the later key won) and list(filter={'1': 2}) found nothing where
    InMemorySaver finds the checkpoint. Filter keys are str, so only str keys are indexed."""
    saver = RedisSaver(connector=connector)
    memory = InMemorySaver()
    thread = _thread()
    import enum

    # str(Key.SOURCE) is 'Key.SOURCE' (a StrEnum would print its value), its value 'origin'
    class Key(str, enum.Enum):  # noqa: UP042
        SOURCE = "origin"

    metadata: Any = {"1": 2, 1: 1, "source": "loop", Key.SOURCE: "x"}
    for target in (saver, memory):
        target.put(_cfg(thread), empty_checkpoint(), metadata, {})
    for filter in ({"1": 2}, {"1": 1}, {"source": "loop"}, {"origin": "x"}):
        want = len(list(memory.list(_cfg(thread), filter=filter)))
        assert len(list(saver.list(_cfg(thread), filter=filter))) == want
    assert len(list(saver.list(_cfg(thread), filter={"1": 2}))) == 1


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("blob_bytes", [32_768, 0])
async def test_a_put_again_with_other_versions_leaves_no_unreferenced_blob(
    connector: RedisConnector, blob_bytes: int, use_async: bool
) -> None:
    """A put under an id already stored, naming other channel versions, left the blobs only
    the old version named in the thread's blob hash for good (no checkpoint names them, so
    no delete ever took them off). Now they go in the same script; a blob another checkpoint
    still names stays. Inline and around the script (script_blob_bytes=0)."""
    saver = RedisSaver(connector=connector, script_blob_bytes=blob_bytes)
    thread = _thread()
    blobs = saver.keys.thread(thread).blobs

    def ver(n: int) -> str:
        return f"{n:032}.0"

    async def put(parent: str | None, cid: str, v: int, fixed: int, new: list[str]) -> None:
        cp = empty_checkpoint()
        cp["id"] = cid
        cp["channel_values"] = {"v": f"v{v}", "fixed": f"f{fixed}"}
        cp["channel_versions"] = {"v": ver(v), "fixed": ver(fixed)}
        versions: Any = {ch: cp["channel_versions"][ch] for ch in new}
        if use_async:
            await saver.aput(_cfg(thread, "", parent), cp, {}, versions)
        else:
            saver.put(_cfg(thread, "", parent), cp, {}, versions)

    def stored() -> set[str]:
        return {f.decode().split("\t", 1)[1] for f in _raw(connector).hkeys(blobs)}

    def refs(*pairs: tuple[str, int]) -> set[str]:
        return {saver.keys.blob_ref(ch, ver(n)) for ch, n in pairs}

    one, two = str(uuid6(clock_seq=1)), str(uuid6(clock_seq=2))
    await put(None, one, 1, 1, ["v", "fixed"])
    await put(one, two, 2, 1, ["v"])
    await put(one, two, 2, 1, ["v"])  # a retry: the same versions, nothing goes
    assert stored() == refs(("v", 1), ("v", 2), ("fixed", 1))
    await put(one, two, 3, 1, ["v"])  # v:2 was only two's
    assert stored() == refs(("v", 1), ("v", 3), ("fixed", 1))
    await put(None, one, 1, 4, ["fixed"])  # fixed:1 is still two's: it stays
    assert stored() == refs(("v", 1), ("v", 3), ("fixed", 1), ("fixed", 4))
    got = saver.get_tuple(_cfg(thread, "", two))
    assert got is not None
    assert got.checkpoint["channel_values"] == {"v": "v3", "fixed": "f1"}
    got = saver.get_tuple(_cfg(thread, "", one))
    assert got is not None
    assert got.checkpoint["channel_values"] == {"v": "v1", "fixed": "f4"}
    saver.delete_thread(thread)


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("batch", [1, 2, 500])
async def test_keep_latest_keeps_a_real_checkpoint_past_stale_index_entries(
    connector: RedisConnector, batch: int, use_async: bool
) -> None:
    """An index entry whose checkpoint is gone (a read drops it) was taken by keep_latest as
    the newest of its namespace: it was kept, and every real checkpoint before it deleted,
    so the pruned thread came back empty. Stale entries now go as a read drops them, and
    the newest real checkpoint of each namespace is kept."""
    saver = RedisSaver(connector=connector, delete_batch=batch)
    thread = _thread()
    root = _put_chain(saver, thread, 3)
    sub = _put_chain(saver, thread, 2, ns="sub:1", value="s")
    keys = saver.keys.thread(thread)
    client = _raw(connector)
    root_ns, sub_ns = saver.keys.enc(""), saver.keys.enc("sub:1")
    for ecns, cid in ((root_ns, "zzzz"), (root_ns, "zzzy"), (sub_ns, "zzzz")):
        client.zadd(keys.ns_index, {f"{ecns}\t{cid}": 0})  # newer than every checkpoint
        client.zadd(keys.index, {f"{cid}\t{ecns}": 0})
    # and one with its record but not its body, between the real ones
    lost = root[1]["configurable"]["checkpoint_id"]
    client.hdel(keys.checkpoints, keys.field(root_ns, lost))
    if use_async:
        await saver.aprune([thread])
    else:
        saver.prune([thread])
    for ns, stored in (("", root), ("sub:1", sub)):
        kept = [t.checkpoint["id"] for t in saver.list(_cfg(thread, ns))]
        assert kept == [stored[-1]["configurable"]["checkpoint_id"]], ns
        tup = saver.get_tuple(_cfg(thread, ns))
        assert tup is not None
        assert tup.parent_config is None
    assert client.zcard(keys.index) == client.zcard(keys.ns_index) == 2
    assert client.hlen(keys.records) == 2
    saver.delete_thread(thread)


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
async def test_keep_latest_deletes_in_bounded_batches(
    connector: RedisConnector, batch: int, use_async: bool
) -> None:
    """prune(keep_latest) deleted every old checkpoint of a thread (and walked all its
    records) in ONE script call: a thread of any length blocked the server until it was done.
    Now each call deletes at most `delete_batch` checkpoints, and the unused blobs go after,
    `delete_batch` fields per call; the result is what it was (one checkpoint per namespace,
    no parent, its writes, only its blobs)."""
    saver = RedisSaver(connector=connector, delete_batch=batch)
    thread = _thread()
    _put_chain(saver, thread, 7)
    sub = _put_chain(saver, thread, 4, ns="sub:1", value="s")
    saver.put_writes(sub[-1], [("v", 9)], "task")
    client = _raw(connector)
    keys = saver.keys.thread(thread)
    assert client.hlen(keys.blobs) == 8 + 5
    counts: list[tuple[int, int]] = []
    run, arun = saver._run, saver._arun

    def spied(op: Any) -> Any:
        reply: Any = None
        while True:
            try:
                request = op.send(reply)
            except StopIteration as stop:
                return stop.value
            reply = yield request
            counts.append((client.zcard(keys.index), client.hlen(keys.blobs)))

    saver._run = lambda name, op: run(name, spied(op))  # type: ignore[method-assign]
    saver._arun = lambda name, op: arun(name, spied(op))  # type: ignore[method-assign]
    if use_async:
        await saver.aprune([thread])
    else:
        saver.prune([thread])
    saver._run, saver._arun = run, arun
    steps = list(zip([(11, 13), *counts], counts, strict=False))
    assert all(before[0] - after[0] <= batch for before, after in steps)
    assert counts[-1] == (2, 4)  # the newest of each namespace, with its two blobs
    for ns, value in (("", 6), ("sub:1", "s")):
        (kept,) = saver.list(_cfg(thread, ns))
        assert kept.parent_config is None
        assert kept.checkpoint["channel_values"] == {"v": value, "fixed": "same"}
    got = saver.get_tuple(_cfg(thread, "sub:1"))
    assert got is not None
    assert [w[1:] for w in got.pending_writes or []] == [("v", 9)]
    saver.delete_thread(thread)


async def test_keep_latest_cut_off_or_sent_twice_completes_the_same(
    connector: RedisConnector,
) -> None:
    """Each keep_latest call is atomic and safe to send again: every call sent twice (a lost
    reply) prunes as once, and a prune cut off after any call leaves readable checkpoints
    that pruning again completes."""
    from deepagents_redis.core import RedisUnavailableError

    def twice(op: Any) -> Any:
        reply: Any = None
        while True:
            try:
                request = op.send(reply)
            except StopIteration as stop:
                return stop.value
            yield request
            reply = yield request

    for cut in [None, *range(1, 12)]:
        saver = RedisSaver(connector=connector, delete_batch=2)
        thread = _thread()
        _put_chain(saver, thread, 6)
        _put_chain(saver, thread, 3, ns="sub:1", value="s")
        lossy = RedisSaver(connector=connector, delete_batch=2)
        if cut is None:
            run = lossy._run
            lossy._run = lambda name, op, run=run: run(name, twice(op))  # type: ignore[method-assign,misc]
            lossy.prune([thread])
        else:
            _budget_saver(lossy, 100, [cut])
            try:
                lossy.prune([thread])
            except RedisUnavailableError:
                for tup in saver.list(_cfg(thread)):
                    assert tup.checkpoint["channel_values"]["fixed"] == "same"
            saver.prune([thread])
        client = _raw(connector)
        assert client.hlen(saver.keys.thread(thread).blobs) == 4
        for ns, value in (("", 5), ("sub:1", "s")):
            (kept,) = saver.list(_cfg(thread, ns))
            assert kept.parent_config is None
            assert kept.checkpoint["channel_values"] == {"v": value, "fixed": "same"}
        saver.delete_thread(thread)


@pytest.mark.parametrize("batch", [1, 500])
@pytest.mark.parametrize("use_async", [False, True])
async def test_keep_latest_deletes_writes_of_checkpoints_that_do_not_exist(
    connector: RedisConnector, batch: int, use_async: bool
) -> None:
    """put_writes stores writes for any checkpoint id; for one never put (or deleted before
    they landed) no index named them, and prune left them until the thread's TTL or delete.
    keep_latest now deletes those below their namespace's newest checkpoint, and keeps
    those above it (LangGraph may send a step's writes before its checkpoint's put) and
    those of a namespace with no checkpoint yet."""
    saver = RedisSaver(connector=connector, delete_batch=batch)
    thread = _thread()
    early = {ns: str(uuid6()) for ns in ("", "sub:1")}  # older than every checkpoint below
    stored = _put_chain(saver, thread, 4)
    sub = _put_chain(saver, thread, 2, ns="sub:1", value="s")
    late, alone = str(uuid6()), str(uuid6())
    for ns, cid in [*early.items(), ("", late), ("other", alone)]:
        saver.put_writes(_cfg(thread, ns, cid), [("v", 1), ("__error__", "boom")], "task")
    saver.put_writes(stored[-1], [("v", 7)], "task")
    saver.put_writes(sub[-1], [("v", 8)], "task")
    if use_async:
        await saver.aprune([thread])
    else:
        saver.prune([thread])
    client = _raw(connector)
    keys = saver.keys.thread(thread)
    fields = {f.decode() for f in client.hkeys(keys.write_lists)}
    written = {f.decode().rsplit("\t", 2)[0] for f in client.hkeys(keys.writes)}
    enc = saver.keys.enc
    kept = {
        f"{enc('')}\t{late}",
        f"{enc('other')}\t{alone}",
        f"{enc('')}\t{stored[-1]['configurable']['checkpoint_id']}",
        f"{enc('sub:1')}\t{sub[-1]['configurable']['checkpoint_id']}",
    }
    assert fields == kept
    assert written == kept
    # the checkpoint the kept writes waited for lands: they are its pending writes
    cp = empty_checkpoint()
    cp["id"] = late
    saver.put(stored[-1], cp, {"source": "loop", "step": 9}, {})
    got = saver.get_tuple(_cfg(thread, "", late))
    assert got is not None
    assert sorted(w[1] for w in got.pending_writes or []) == ["__error__", "v"]
    saver.delete_thread(thread)


@pytest.mark.parametrize("batch", [1, 500])
async def test_delete_for_runs_leaves_a_checkpoint_whose_parent_went_with_no_parent(
    connector: RedisConnector, batch: int
) -> None:
    """After delete_for_runs the next run's first checkpoint still named its deleted
    parent: its parent_config pointed at a checkpoint that reads as None. Now it is left
    with no parent, as prune(keep_latest) leaves one (InMemorySaver has no delete_for_runs;
    PostgresSaver's prune does the same), keeping its blobs, writes, run and filters."""
    saver = RedisSaver(connector=connector, delete_batch=batch)
    for use_async in (False, True):
        thread = _thread()
        old, new = str(uuid.uuid4()), str(uuid.uuid4())
        parent: str | None = None
        ids: list[str] = []
        for i, run in enumerate([old, old, new, new]):
            cp = empty_checkpoint()
            cp["id"] = str(uuid6(clock_seq=i))
            cp["channel_values"] = {"v": i}
            cp["channel_versions"] = {"v": f"{i + 1:032}.0"}
            md: Any = {"run_id": run, "step": i}
            saver.put(_cfg(thread, "", parent), cp, md, dict(cp["channel_versions"]))
            parent = cp["id"]
            ids.append(parent)
        saver.put_writes(_cfg(thread, "", ids[2]), [("v", 9)], "task")
        if use_async:
            await saver.adelete_for_runs([old])
        else:
            saver.delete_for_runs([old])
        first, second = (saver.get_tuple(_cfg(thread, "", cid)) for cid in ids[2:])
        assert first is not None
        assert second is not None
        assert first.parent_config is None
        assert second.parent_config is not None
        assert second.parent_config["configurable"]["checkpoint_id"] == ids[2]
        assert first.checkpoint["channel_values"] == {"v": 2}
        assert [w[1:] for w in first.pending_writes or []] == [("v", 9)]
        listed = list(saver.list(_cfg(thread), filter={"run_id": new, "step": 2}))
        assert [t.parent_config for t in listed] == [None]
        saver.delete_for_runs([new])
        assert list(saver.list(_cfg(thread))) == []


async def test_big_metadata_is_not_stored_again_in_the_index_record(
    connector: RedisConnector,
) -> None:
    """A metadata value was written twice: in the body, and as its JSON text in the index
    record every delete and history walk reads (a 200 KB value: 200 KB more per checkpoint).
    Now a long text is held as a digest there, and filters on it match as before."""
    saver = RedisSaver(connector=connector)
    thread = _thread()
    big = {"notes": ["x" * 1000] * 200, "flag": True}
    other = {"notes": ["x" * 1000] * 200, "flag": False}
    for i, value in enumerate([big, other]):
        cp = empty_checkpoint()
        cp["id"] = str(uuid6(clock_seq=i))
        md: Any = {"big": value, "step": i}
        saver.put(_cfg(thread), cp, md, {})
    keys = saver.keys.thread(thread)
    client = _raw(connector)
    for field in client.hkeys(keys.records):
        assert client.hstrlen(keys.records, field) < 1_000
    same = {"notes": ("x" * 1000,) * 200, "flag": 1}  # equal in Python: a tuple is not
    same_list = {"notes": ["x" * 1000] * 200, "flag": 1}
    assert [t.metadata["step"] for t in saver.list(_cfg(thread), filter={"big": big})] == [0]
    assert [t.metadata["step"] for t in saver.list(_cfg(thread), filter={"big": same_list})] == [0]
    assert list(saver.list(_cfg(thread), filter={"big": same})) == []
    found = [t.metadata["step"] async for t in saver.alist(None, filter={"big": other})]
    assert found == [1]
    saver.delete_thread(thread)
