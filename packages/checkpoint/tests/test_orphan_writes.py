"""Orphan writes: pending writes `put_writes` stored for a checkpoint with no record (its put
never landed, or the checkpoint was deleted before they did). What `delete_thread`,
`delete_for_runs` and `sweep_threads` leave of them, counted with SCAN on the test's own
private server (tests only; no call of the saver scans)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.core import RedisConnector
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6


def _cfg(thread: str, ns: str = "", cid: str | None = None, run: str | None = None) -> Any:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if cid:
        conf["checkpoint_id"] = cid
    config: dict[str, Any] = {"configurable": conf}
    if run:  # as LangGraph's loop passes it: the run's config, metadata and all
        config["metadata"] = {"run_id": run}
    return config


def _put(saver: RedisSaver, thread: str, run: str, *, ns: str = "", parent: Any = None) -> Any:
    cp = empty_checkpoint()
    cp["id"] = str(uuid6())
    cp["channel_values"] = {"v": run}
    cp["channel_versions"] = {"v": f"{uuid.uuid4().int:040}"}
    md = {"source": "loop", "step": 0, "parents": {}, "run_id": run}
    config = parent or _cfg(thread, ns)
    return saver.put(config, cp, md, {"v": cp["channel_versions"]["v"]})  # type: ignore[arg-type]


def _keys(connector: RedisConnector, saver: RedisSaver, thread: str) -> list[str]:
    """Every key of the thread (SCAN on the test's private server)."""
    head = saver.keys.thread(thread).head
    pattern = head.replace("{", "\\{").replace("}", "\\}") + "*"
    return sorted(k.decode() for k in connector.client().scan_iter(match=pattern))


def _write_fields(connector: RedisConnector, saver: RedisSaver, thread: str) -> set[str]:
    """The checkpoint fields ('ecns<TAB>cid') that still hold writes or a write list."""
    client, keys = connector.client(), saver.keys.thread(thread)
    listed = {f.decode() for f in client.hkeys(keys.write_lists)}
    stored = {f.decode().rsplit("\t", 2)[0] for f in client.hkeys(keys.writes)}
    return listed | stored


def _field(saver: RedisSaver, ns: str, cid: str) -> str:
    return f"{saver.keys.enc(ns)}\t{cid}"


@pytest.mark.parametrize("use_async", [False, True])
async def test_delete_thread_leaves_no_key_of_orphan_writes(
    connector: RedisConnector, use_async: bool
) -> None:
    """Proof, no fix needed: delete_thread UNLINKs the thread's eight keys, so writes of a
    checkpoint never put (and of a namespace with no checkpoint) go with the rest, and a
    thread that holds only such writes is deleted whole too."""
    saver = RedisSaver(connector=connector)
    thread, alone = f"t-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    run = f"r-{uuid.uuid4()}"
    stored = _put(saver, thread, run)
    saver.put_writes(stored, [("v", 1)], "task")
    for t, ns in [(thread, ""), (thread, "sub:1"), (alone, "")]:
        saver.put_writes(_cfg(t, ns, str(uuid6()), run), [("v", 2), ("__error__", "x")], "t")
    assert _keys(connector, saver, thread)
    assert _keys(connector, saver, alone)
    for t in (thread, alone):
        if use_async:
            await saver.adelete_thread(t)
        else:
            saver.delete_thread(t)
        assert _keys(connector, saver, t) == []
    assert not connector.client().exists(saver.keys.run(run))


@pytest.mark.parametrize(("use_async", "blob_bytes"), [(False, 32_768), (True, 32_768), (False, 0)])
async def test_delete_for_runs_deletes_the_runs_orphan_writes(
    connector: RedisConnector, use_async: bool, blob_bytes: int
) -> None:
    """delete_for_runs found a run's checkpoints through their records only: writes the run
    stored for a checkpoint whose put never landed (a worker lost mid-step), or that landed
    after the delete took their checkpoint (a cancelled run's last step), stayed for good
    (with no TTL), in a thread the run's index may not even name. put_writes now names the
    run for writes of a checkpoint with no record, so they go with the run; writes another
    run (a resume) stored for an existing checkpoint do not make it that run's. Values in
    the script and around it (script_blob_bytes=0: its reply comes out of a MULTI)."""
    saver = RedisSaver(connector=connector, script_blob_bytes=blob_bytes)
    tag = uuid.uuid4().hex[:8]
    run, keep, resume = f"run-{tag}", f"keep-{tag}", f"resume-{tag}"
    thread, alone = f"t-{tag}", f"alone-{tag}"

    async def delete(runs: list[str]) -> None:
        if use_async:
            await saver.adelete_for_runs(runs)
        else:
            saver.delete_for_runs(runs)

    kept = _put(saver, thread, keep)
    mine = _put(saver, thread, run, parent=kept)
    saver.put_writes(mine, [("v", 1)], "task")
    never = str(uuid6())  # the run's next checkpoint, whose put never landed
    saver.put_writes(_cfg(thread, "", never, run), [("v", 2), ("__error__", "x")], "task")
    sub = str(uuid6())  # a subgraph namespace with no checkpoint at all
    saver.put_writes(_cfg(thread, "sub:1", sub, run), [("v", 3)], "task")
    saver.put_writes(_cfg(alone, "", str(uuid6()), run), [("v", 4)], "task")  # no checkpoint
    # another run resuming from `kept` stores its writes for it: `kept` stays keep's
    saver.put_writes({**kept, "metadata": {"run_id": resume}}, [("v", 5)], "task")
    assert not connector.client().exists(saver.keys.run(resume))
    await delete([run])
    kept_field = _field(saver, "", kept["configurable"]["checkpoint_id"])
    assert _write_fields(connector, saver, thread) == {kept_field}
    assert _keys(connector, saver, alone) == []
    # late: writes for the deleted checkpoint land after the delete, then it runs again
    saver.put_writes(mine, [("v", 6)], "other-task")
    saver.put_writes({**mine, "metadata": {"run_id": run}}, [("v", 7)], "late-task")
    assert _field(saver, "", mine["configurable"]["checkpoint_id"]) in _write_fields(
        connector, saver, thread
    )
    await delete([run])
    assert _write_fields(connector, saver, thread) <= {
        kept_field,
        # a write that names no run is no run's: only the thread's delete (or prune) takes it
        _field(saver, "", mine["configurable"]["checkpoint_id"]),
    }
    assert not connector.client().exists(saver.keys.run(run))
    await delete([resume])
    got = saver.get_tuple(kept)
    assert got is not None
    assert [w[2] for w in got.pending_writes or []] == [5]
    assert saver.keys.enc(run) not in {
        m.decode().split("\t")[0]
        for m in connector.client().zrange(saver.keys.thread(thread).runs, 0, -1)
    }
    saver.delete_thread(thread)
    assert _keys(connector, saver, thread) == []


async def test_writes_named_for_a_run_whose_checkpoint_another_run_put_stay_with_it(
    connector: RedisConnector,
) -> None:
    """put_writes names the writes' run for a checkpoint with no record yet; should the put
    that lands then be another run's, the checkpoint is that run's: a delete_for_runs of
    the first takes its stale member off and deletes nothing."""
    saver = RedisSaver(connector=connector)
    tag = uuid.uuid4().hex[:8]
    thread, first, second = f"t-{tag}", f"first-{tag}", f"second-{tag}"
    cp = empty_checkpoint()
    cp["id"] = str(uuid6())
    saver.put_writes(_cfg(thread, "", cp["id"], first), [("v", 1)], "task")
    md = {"source": "loop", "step": 0, "parents": {}, "run_id": second}
    stored = saver.put(_cfg(thread), cp, md, {})  # type: ignore[arg-type]
    saver.delete_for_runs([first])
    got = saver.get_tuple(stored)
    assert got is not None
    assert [w[2] for w in got.pending_writes or []] == [1]
    members = connector.client().zrange(saver.keys.thread(thread).runs, 0, -1)
    assert [m.decode().split("\t")[0] for m in members] == [saver.keys.enc(second)]
    saver.delete_for_runs([second])
    assert _keys(connector, saver, thread) == []
