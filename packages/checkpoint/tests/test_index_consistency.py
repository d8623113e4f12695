"""Every index of the saver names only what exists, after each delete there is.

`prune` (keep_latest), `delete_for_runs`, `delete_thread` and `copy_thread` delete or write
checkpoints and pending writes; the indexes that name them (a thread's checkpoint index and
namespace index, its run members, the cross-thread thread index and run indexes) must follow.
A run member left naming writes that were deleted is not only memory never reclaimed: a later
`delete_for_runs` of its run took it for orphan writes and deleted the writes another run
stored under the same checkpoint id meanwhile.

The targeted tests come first; then a seeded random sequence of every operation, after each
of which the test's private server's keyspace is scanned (SCAN: tests only) and checked
(`_problems`), and whose reads are compared with LangGraph's `InMemorySaver` running the
same calls (`prune`, `delete_for_runs` and `copy_thread`, which it does not have, applied to
its storage as `RedisSaver` documents them: `_Model`).
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from typing import Any

import msgpack
import pytest
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.core import RedisConnector
from langgraph.checkpoint.base import CheckpointTuple, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver


def _cfg(thread: str, ns: str = "", cid: str | None = None, run: str | None = None) -> Any:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if cid:
        conf["checkpoint_id"] = cid
    config: dict[str, Any] = {"configurable": conf}
    if run:  # as LangGraph's loop passes it: the run's config, metadata and all
        config["metadata"] = {"run_id": run}
    return config


def _put(saver: Any, thread: str, run: str | None, *, ns: str = "", cid: str | None = None) -> Any:
    cp = empty_checkpoint()
    cp["id"] = cid or str(uuid6())
    cp["channel_values"] = {"v": cp["id"]}
    cp["channel_versions"] = {"v": f"{uuid.uuid4().int:040}"}
    md = {"source": "loop", "step": 0, "parents": {}, "run_id": run}
    return saver.put(_cfg(thread, ns), cp, md, {"v": cp["channel_versions"]["v"]})


def _members(connector: RedisConnector, saver: RedisSaver, thread: str) -> list[str]:
    return [m.decode() for m in connector.client().zrange(saver.keys.thread(thread).runs, 0, -1)]


def _stale_members(connector: RedisConnector, saver: RedisSaver, thread: str) -> list[str]:
    """Run members whose checkpoint has neither an index record nor pending writes."""
    client, keys = connector.client(), saver.keys.thread(thread)
    stale = []
    for member in _members(connector, saver, thread):
        _erun, cid, ecns = member.split("\t")
        f = f"{ecns}\t{cid}"
        if not client.hexists(keys.records, f) and not client.hexists(keys.write_lists, f):
            stale.append(member)
    return stale


async def _prune(saver: RedisSaver, threads: list[str], use_async: bool) -> None:
    if use_async:
        await saver.aprune(threads)
    else:
        saver.prune(threads)


async def _delete_runs(saver: RedisSaver, runs: list[str], use_async: bool) -> None:
    if use_async:
        await saver.adelete_for_runs(runs)
    else:
        saver.delete_for_runs(runs)


# ---------------------------------------------------------------- the defects, one by one
@pytest.mark.parametrize("use_async", [False, True])
async def test_prune_takes_the_run_member_of_the_orphan_writes_it_deletes(
    connector: RedisConnector, use_async: bool
) -> None:
    """Writes of run Q for a checkpoint never put, below the newest: keep_latest deletes
    them, and with them Q's member naming them in the thread, and the thread's name in Q's
    cross-thread index (Q has nothing left in it). The newest checkpoint's own member and
    its run's index stay."""
    saver = RedisSaver(connector=connector)
    tag = uuid.uuid4().hex[:8]
    thread, run, other = f"t-{tag}", f"r-{tag}", f"q-{tag}"
    _put(saver, thread, run)
    orphan = str(uuid6())
    newest = _put(saver, thread, run)
    saver.put_writes(_cfg(thread, "", orphan, other), [("v", 1)], "task")
    assert len(_members(connector, saver, thread)) == 3
    assert connector.client().sismember(saver.keys.run(other), thread)
    await _prune(saver, [thread], use_async)
    enc = saver.keys.enc
    assert _members(connector, saver, thread) == [
        f"{enc(run)}\t{newest['configurable']['checkpoint_id']}\t{enc('')}"
    ]
    assert not connector.client().exists(saver.keys.run(other))
    assert connector.client().smembers(saver.keys.run(run)) == {thread.encode()}
    assert _problems(connector, saver, [thread], [run, other]) == []


@pytest.mark.parametrize("use_async", [False, True])
async def test_prune_takes_the_member_of_writes_another_run_stored_before_the_put(
    connector: RedisConnector, use_async: bool
) -> None:
    """Run A's writes land before run B puts their checkpoint (A's member, B's member):
    when keep_latest deletes that checkpoint, neither member is left."""
    saver = RedisSaver(connector=connector)
    tag = uuid.uuid4().hex[:8]
    thread, a, b = f"t-{tag}", f"a-{tag}", f"b-{tag}"
    cid = str(uuid6())
    saver.put_writes(_cfg(thread, "sub:1", cid, a), [("v", 1)], "task")
    _put(saver, thread, b, ns="sub:1", cid=cid)
    _put(saver, thread, b, ns="sub:1")
    await _prune(saver, [thread], use_async)
    assert _stale_members(connector, saver, thread) == []
    assert [m.split("\t")[0] for m in _members(connector, saver, thread)] == [saver.keys.enc(b)]
    assert not connector.client().exists(saver.keys.run(a))
    assert _problems(connector, saver, [thread], [a, b]) == []


@pytest.mark.parametrize("use_async", [False, True])
async def test_delete_for_runs_leaves_no_member_that_deletes_another_runs_writes(
    connector: RedisConnector, use_async: bool
) -> None:
    """Run A's writes land first, run B puts their checkpoint; delete_for_runs([B]) deletes
    it and its writes, and A's member with them. Then run C stores writes under the same id
    (orphans again) and puts it: delete_for_runs([A]) in between must not take C's writes
    (A's member, left pointing at nothing, made it delete them as A's orphans)."""
    saver = RedisSaver(connector=connector)
    tag = uuid.uuid4().hex[:8]
    thread, a, b, c = f"t-{tag}", f"a-{tag}", f"b-{tag}", f"c-{tag}"
    _put(saver, thread, c)  # the thread's root, C's
    cid = str(uuid6())
    saver.put_writes(_cfg(thread, "", cid, a), [("v", "a")], "task-a")
    _put(saver, thread, b, cid=cid)
    await _delete_runs(saver, [b], use_async)
    assert _stale_members(connector, saver, thread) == []
    saver.put_writes(_cfg(thread, "", cid, c), [("v", "c")], "task-c")
    await _delete_runs(saver, [a], use_async)
    stored = _put(saver, thread, c, cid=cid)
    got = saver.get_tuple(stored)
    assert got is not None
    assert [(w[0], w[2]) for w in got.pending_writes or []] == [("task-c", "c")]
    assert _problems(connector, saver, [thread], [a, b, c]) == []


@pytest.mark.parametrize("use_async", [False, True])
async def test_delete_for_runs_of_the_run_whose_writes_came_first_keeps_the_checkpoint(
    connector: RedisConnector, use_async: bool
) -> None:
    """Run A's writes land first, run B puts their checkpoint: delete_for_runs([A]) keeps
    B's checkpoint with its writes, takes A's member and A off the list of runs naming
    them; then B's prune of the checkpoint leaves no member and no list either."""
    saver = RedisSaver(connector=connector)
    tag = uuid.uuid4().hex[:8]
    thread, a, b = f"t-{tag}", f"a-{tag}", f"b-{tag}"
    cid = str(uuid6())
    saver.put_writes(_cfg(thread, "", cid, a), [("v", "a")], "task-a")
    stored = _put(saver, thread, b, cid=cid)
    await _delete_runs(saver, [a], use_async)
    got = saver.get_tuple(stored)
    assert got is not None
    assert [(w[0], w[2]) for w in got.pending_writes or []] == [("task-a", "a")]
    assert _problems(connector, saver, [thread], [a, b]) == []
    _put(saver, thread, b)
    await _prune(saver, [thread], use_async)
    assert _problems(connector, saver, [thread], [a, b], pruned=(thread,)) == []


@pytest.mark.parametrize("use_async", [False, True])
async def test_delete_for_runs_that_empties_a_thread_takes_its_name_off(
    connector: RedisConnector, use_async: bool
) -> None:
    """A thread whose every checkpoint was the run's is gone after delete_for_runs: its
    name leaves the thread index too (as delete_thread takes it off), and `threads()` no
    longer lists it; a thread the run only partly wrote keeps its name."""
    saver = RedisSaver(connector=connector)
    tag = uuid.uuid4().hex[:8]
    only, mixed, run, other = f"only-{tag}", f"mixed-{tag}", f"r-{tag}", f"o-{tag}"
    _put(saver, only, run)
    _put(saver, only, run, ns="sub:1")
    _put(saver, mixed, other)
    _put(saver, mixed, run)
    await _delete_runs(saver, [run], use_async)
    names = list(saver.threads())
    assert only not in names
    assert mixed in names
    assert _problems(connector, saver, [only, mixed], [run, other]) == []


# ---------------------------------------------------------------- the keyspace check
_SUFFIXES = ("idx", "ns", "cp", "cpi", "b", "w", "wl", "runs")


def _text(value: bytes) -> str:
    return value.decode("utf-8")


def _problems(
    connector: RedisConnector,
    saver: RedisSaver,
    threads: list[str],
    runs: list[str],
    *,
    pruned: tuple[str, ...] = (),
) -> list[str]:
    """What is inconsistent in the saver's keyspace: each index member that names nothing,
    each stored thing no index names, each key that is none of the saver's.

    `threads` and `runs` are every thread and run id the test used; `pruned` the threads
    just pruned (keep_latest), whose orphan writes below their namespace's newest
    checkpoint must be gone too.
    """
    client = connector.client()
    out: list[str] = []
    prefix = connector.keyspace.prefix
    every = {_text(k) for k in client.scan_iter(match=prefix.replace("{", "\\{") + ":*")}
    known: set[str] = {saver.keys.threads}
    named_threads = {_text(m) for m in client.zrange(saver.keys.threads, 0, -1)}
    run_sets = {run: {_text(m) for m in client.smembers(saver.keys.run(run))} for run in runs}
    known |= {saver.keys.run(run) for run in runs}
    dec = saver.keys.dec
    for thread in threads:
        keys = saver.keys.thread(thread)
        known |= set(keys.all)
        where = f"thread {thread!r}"
        idx = {tuple(_text(m).split("\t")) for m in client.zrange(keys.index, 0, -1)}
        ns = {_text(m) for m in client.zrange(keys.ns_index, 0, -1)}
        cp = {_text(f) for f in client.hkeys(keys.checkpoints)}
        cpi = {_text(f): v for f, v in client.hgetall(keys.records).items()}
        blobs = {_text(f) for f in client.hkeys(keys.blobs)}
        writes = {_text(f) for f in client.hkeys(keys.writes)}
        lists = {
            _text(f): [_text(n) for n in msgpack.unpackb(v, raw=True)]
            for f, v in client.hgetall(keys.write_lists).items()
        }
        members = [tuple(_text(m).split("\t")) for m in client.zrange(keys.runs, 0, -1)]
        from_idx = {f"{ecns}\t{cid}" for cid, ecns in idx}
        if not from_idx == ns == cp == set(cpi):
            out.append(f"{where}: idx {from_idx}, ns {ns}, cp {cp}, cpi {set(cpi)} differ")
        named_refs: dict[str, set[str]] = defaultdict(set)
        newest: dict[str, str] = {}
        for f, raw in cpi.items():
            ecns, cid = f.split("\t")
            newest[ecns] = max(newest.get(ecns, ""), cid)
            parent, refs, erun, _filters = msgpack.unpackb(raw, raw=False)
            if parent and f"{ecns}\t{parent}" not in cpi:
                out.append(f"{where}: {f!r} names parent {parent!r}, which is gone")
            for ref in refs:
                named_refs[ecns].add(ref)
                if f"{ecns}\t{ref}" not in blobs:
                    out.append(f"{where}: {f!r} names blob {ref!r}, which is gone")
            if erun and (erun, cid, ecns) not in members:
                out.append(f"{where}: {f!r} of run {erun!r} has no run member")
        for field in blobs:
            ecns, ref = field.split("\t")
            if ref not in named_refs[ecns]:
                out.append(f"{where}: blob {field!r} is named by no checkpoint")
        for f, names in lists.items():
            for name in names:
                if f"{f}\t{name}" not in writes:
                    out.append(f"{where}: write list {f!r} names {name!r}, which is gone")
            if f not in cpi:
                ecns, cid = f.split("\t")
                if not any(m[1:] == (cid, ecns) for m in members):
                    out.append(f"{where}: orphan writes {f!r} are named by no run member")
                if thread in pruned and ecns in newest and cid < newest[ecns]:
                    out.append(f"{where}: prune kept orphan writes {f!r} below the newest")
        for field in writes:
            ecns, cid, name = field.split("\t", 2)
            f = f"{ecns}\t{cid}"
            if name.startswith("\t"):  # the runs that named this checkpoint's orphan writes
                if f not in lists:
                    out.append(f"{where}: {field!r} is left of writes that are gone")
                eruns = msgpack.unpackb(client.hget(keys.writes, field), raw=False)
                if not eruns:
                    out.append(f"{where}: {field!r} lists no run")
                for erun in eruns:
                    if (erun, cid, ecns) not in members:
                        out.append(f"{where}: {field!r} lists run {erun!r}, with no member")
                continue
            if name not in lists.get(f, []):
                out.append(f"{where}: write {field!r} is in no write list")
        for erun, cid, ecns in members:
            f = f"{ecns}\t{cid}"
            if f not in cpi and f not in lists:
                out.append(f"{where}: run member {erun}/{cid}/{ecns} names nothing")
            run = dec(erun)
            if run in run_sets and thread not in run_sets[run]:
                out.append(f"{where}: run {run!r} has a member here but its index misses it")
        if cpi and thread not in named_threads:
            out.append(f"{where}: has checkpoints but is not in the thread index")
        if not cpi and thread in named_threads:
            out.append(f"{where}: has no checkpoint but is in the thread index")
        if not cpi and (cp or ns or idx or blobs):
            out.append(f"{where}: no checkpoint but keys of checkpoints left")
        eruns = {m[0] for m in members}
        for run, named in run_sets.items():
            if thread in named and saver.keys.enc(run) not in eruns:
                out.append(f"{where}: run {run!r}'s index names it, with nothing of the run")
    for key in sorted(every - known):
        out.append(f"key {key!r} is none of the saver's")
    for name in named_threads - set(threads):
        out.append(f"the thread index names {name!r}, which no test thread is")
    return out


# ---------------------------------------------------------------- the reference model
class _Model:
    """`InMemorySaver` running the same calls; `prune` (keep_latest), `delete_for_runs` and
    `copy_thread`, which it does not have, applied to its storage as `RedisSaver`'s
    docstrings state them. `orphans` holds, per checkpoint with no checkpoint stored, the
    runs whose writes named it (what `delete_for_runs` deletes with a run)."""

    def __init__(self) -> None:
        self.saver = InMemorySaver()
        self.orphans: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        self.runs: dict[tuple[str, str, str], str | None] = {}

    def put(self, config: Any, cp: Any, md: Any, versions: Any) -> None:
        conf = config["configurable"]
        self.saver.put(config, cp, md, versions)
        self.runs[(conf["thread_id"], conf["checkpoint_ns"], cp["id"])] = md.get("run_id")

    def put_writes(self, config: Any, writes: Any, task: str) -> None:
        conf = config["configurable"]
        key = (conf["thread_id"], conf["checkpoint_ns"], conf["checkpoint_id"])
        run = (config.get("metadata") or {}).get("run_id")
        if run and key[2] not in self.saver.storage[key[0]][key[1]]:
            self.orphans[key].add(run)
        self.saver.put_writes(config, writes, task)

    def _drop(self, key: tuple[str, str, str]) -> None:
        self.saver.storage[key[0]][key[1]].pop(key[2], None)
        self.saver.writes.pop(key, None)
        self.orphans.pop(key, None)

    def _cut_parents(self, thread: str, ns: str, gone: set[str]) -> None:
        stored = self.saver.storage[thread][ns]
        for cid, (c, m, parent) in list(stored.items()):
            if parent in gone:
                stored[cid] = (c, m, None)

    def prune(self, thread: str) -> None:
        for ns, stored in list(self.saver.storage[thread].items()):
            if not stored:
                continue
            newest = max(stored)
            gone = {cid for cid in stored if cid != newest}
            for cid in gone:
                self._drop((thread, ns, cid))
            self._cut_parents(thread, ns, gone)
            for key in [k for k in self.saver.writes if k[:2] == (thread, ns)]:
                if key[2] not in stored and key[2] < newest:
                    self._drop(key)

    def delete_for_runs(self, run: str) -> None:
        for thread, spaces in list(self.saver.storage.items()):
            for ns, stored in list(spaces.items()):
                gone = {c for c in stored if self.runs.get((thread, ns, c)) == run}
                for cid in gone:
                    self._drop((thread, ns, cid))
                self._cut_parents(thread, ns, gone)
        for key, runs in list(self.orphans.items()):
            if run in runs:
                if key[2] in self.saver.storage[key[0]][key[1]]:
                    runs.discard(run)  # put since by another run: the checkpoint is that run's
                else:
                    self._drop(key)

    def delete_thread(self, thread: str) -> None:
        self.saver.delete_thread(thread)
        for key in [k for k in self.orphans if k[0] == thread]:
            del self.orphans[key]

    def copy_thread(self, source: str, target: str) -> None:
        mem = self.saver
        for ns, stored in list(mem.storage[source].items()):
            for cid in sorted(stored):
                mem.storage[target][ns][cid] = stored[cid]
                self.runs[(target, ns, cid)] = self.runs.get((source, ns, cid))
                self.orphans.pop((target, ns, cid), None)
                for (thread, bns, channel, version), blob in list(mem.blobs.items()):
                    if (thread, bns) == (source, ns):
                        mem.blobs[(target, ns, channel, version)] = blob
                dst = mem.writes[(target, ns, cid)]
                for inner, write in mem.writes.get((source, ns, cid), {}).items():
                    if inner[1] < 0 or inner not in dst:
                        dst[inner] = write


def _view(tup: CheckpointTuple) -> tuple[Any, ...]:
    parent = tup.parent_config["configurable"]["checkpoint_id"] if tup.parent_config else None
    return (
        tup.config["configurable"]["checkpoint_ns"],
        tup.config["configurable"]["checkpoint_id"],
        parent,
        tup.checkpoint["channel_values"],
        tup.metadata.get("run_id"),
        sorted((w[0], w[1], repr(w[2])) for w in tup.pending_writes or []),
    )


NAMESPACES = ["", "sub:1"]
TASKS = ["t1", "t2"]


async def _call(saver: RedisSaver, use_async: bool, name: str, *args: Any) -> Any:
    if use_async:
        return await getattr(saver, "a" + name)(*args)
    return getattr(saver, name)(*args)


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("seed", range(4))
async def test_random_operations_keep_every_index_consistent(
    connector: RedisConnector, use_async: bool, seed: int
) -> None:
    """A seeded random sequence of put / put_writes (to the newest checkpoint, to one not
    put yet, to one deleted or never put below the newest) / prune / delete_for_runs /
    copy_thread / delete_thread over three threads, two checkpoint namespaces and three
    runs: after every step each index names only what exists and everything stored is
    named (`_problems`), and every thread reads as `InMemorySaver` reads it."""
    rnd = random.Random(seed)
    saver = RedisSaver(connector=connector, delete_batch=rnd.choice([1, 2, 100]))
    model = _Model()
    tag = uuid.uuid4().hex[:6]
    threads = [f"t{i}-{tag}" for i in range(3)]
    runs = [f"r{i}-{tag}" for i in range(3)]
    pending: dict[tuple[str, str], list[str]] = defaultdict(list)
    seen: list[str] = []
    for step in range(60):
        thread, ns, run = rnd.choice(threads), rnd.choice(NAMESPACES), rnd.choice(runs)
        op = rnd.choices(
            ["put", "writes", "prune", "delete_for_runs", "copy", "delete_thread"],
            weights=[10, 8, 3, 2, 2, 1],
        )[0]
        pruned: tuple[str, ...] = ()
        if op == "put":
            head = model.saver.get_tuple(_cfg(thread, ns))
            waiting = pending[(thread, ns)]
            cid = None
            if waiting and rnd.random() < 0.5:  # a checkpoint whose writes came first
                cid = waiting.pop(rnd.randrange(len(waiting)))
            cp = empty_checkpoint()
            cp["id"] = cid or str(uuid6())
            versions = dict(head.checkpoint["channel_versions"]) if head else {}
            values = dict(head.checkpoint["channel_values"]) if head else {}
            new = {"v": saver.get_next_version(versions.get("v"), None)}
            if "w" not in versions:
                new["w"] = saver.get_next_version(None, None)
                values["w"] = f"w{step}"
            values["v"] = step
            versions.update(new)
            cp["channel_versions"] = versions
            cp["channel_values"] = values
            md = {"source": "loop", "step": step, "parents": {}, "run_id": run}
            parent = _cfg(thread, ns, head.config["configurable"]["checkpoint_id"] if head else "")
            await _call(saver, use_async, "put", parent, cp, md, new)
            model.put(parent, cp, md, new)
            seen.append(cp["id"])
        elif op == "writes":
            kind = rnd.choice(["newest", "future", "old"])
            head = model.saver.get_tuple(_cfg(thread, ns))
            if kind == "newest" and head:
                cid = head.config["configurable"]["checkpoint_id"]
            elif kind == "old" and seen:
                cid = rnd.choice(seen)
            else:
                cid = str(uuid6())
                pending[(thread, ns)].append(cid)
            writes = [("v", f"{step}")]
            if rnd.random() < 0.3:
                writes.append(("__error__", f"e{step}"))
            config = _cfg(thread, ns, cid, run)
            task = rnd.choice(TASKS)
            await _call(saver, use_async, "put_writes", config, writes, task)
            model.put_writes(config, writes, task)
        elif op == "prune":
            await _call(saver, use_async, "prune", [thread])
            model.prune(thread)
            pruned = (thread,)
        elif op == "delete_for_runs":
            await _call(saver, use_async, "delete_for_runs", [run])
            model.delete_for_runs(run)
        elif op == "copy":
            target = rnd.choice([t for t in threads if t != thread])
            await _call(saver, use_async, "copy_thread", thread, target)
            model.copy_thread(thread, target)
        else:
            await _call(saver, use_async, "delete_thread", thread)
            model.delete_thread(thread)
        assert _problems(connector, saver, threads, runs, pruned=pruned) == [], (step, op)
        for t in threads:
            ours = [_view(tup) for tup in saver.list(_cfg(t, ns))]
            theirs = [_view(tup) for tup in model.saver.list(_cfg(t, ns))]
            assert ours == theirs, (step, op, t, ns)
    for t in threads:
        for ns in NAMESPACES:
            ours = [_view(tup) for tup in saver.list(_cfg(t, ns))]
            assert ours == [_view(tup) for tup in model.saver.list(_cfg(t, ns))]
        await _call(saver, use_async, "delete_thread", t)
    assert _problems(connector, saver, threads, runs) == []
