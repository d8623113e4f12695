"""The local blob store under concurrent writers and deleters of one spilled file.

`LocalBlobStore.delete` prunes the directories it leaves empty; a writer of the same path
makes that directory and then creates its temporary file in it. A delete landing between the
two steps made the write raise (FileNotFoundError from `mkstemp`, or FileExistsError from
`Path.mkdir(exist_ok=True)`, which saw the directory and then found it gone): two writes in
1,200 when one thread rewrote and another deleted a spilled file. The tests below put a real
delete, by another worker through Redis, exactly in each of those windows.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from deepagents_redis.core import InvalidInputError, RedisSettings
from deepagents_redis.fs import RedisBackend, _blobs

pytestmark = pytest.mark.integration

BIG = "spilled line\n" * 1000  # 13 KB: over the 8 KB spill threshold below
SPILL = {"chunk_size": 4096, "spill_threshold": 8192}


def _inject_delete(
    monkeypatch: pytest.MonkeyPatch, where: str, directory: Path, delete: Callable[[], Any]
) -> list[str]:
    """Run `delete` once, inside the writer's `where` step ('mkdir' or 'mkstemp') on `directory`."""
    done: list[str] = []
    if where == "mkstemp":
        real_mkstemp = tempfile.mkstemp

        def mkstemp(*args: Any, **kwargs: Any) -> Any:
            if not done and Path(kwargs["dir"]) == directory:
                done.append(where)
                delete()  # the directory was there a moment ago; now it is gone
            return real_mkstemp(*args, **kwargs)

        monkeypatch.setattr(_blobs.tempfile, "mkstemp", mkstemp)
    else:
        real_mkdir = os.mkdir

        def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
            try:
                real_mkdir(path, *args, **kwargs)
            except FileExistsError:
                if not done and Path(path) == directory:
                    done.append(where)
                    delete()  # between mkdir's EEXIST and its is_dir() check
                raise

        monkeypatch.setattr(os, "mkdir", mkdir)
    return done


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("where", ["mkstemp", "mkdir"])
async def test_a_write_survives_a_delete_that_removes_its_blob_directory(
    make_backend: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, mode: str
) -> None:
    opts = {"chunk_size": 4096, "spill_threshold": 8192, "blob_dir": str(tmp_path / "blobs")}
    writer: RedisBackend = make_backend(**opts)
    deleter: RedisBackend = make_backend(namespace=writer.resolve_namespace(), **opts)
    assert writer.write("/big.txt", BIG).error is None
    old = writer.stat("/big.txt")
    assert old is not None
    assert old.blob_ref is not None
    directory = Path(opts["blob_dir"], *old.blob_ref.split("/")[:-1])

    def delete() -> None:
        assert deleter.delete("/big.txt").error is None
        assert not directory.exists()  # its only blob went, so did the directory

    done = _inject_delete(monkeypatch, where, directory, delete)
    new = BIG.replace("spilled", "rewritten")
    if mode == "sync":
        result = writer.write("/big.txt", new)
    else:
        result = await writer.awrite("/big.txt", new)

    assert done == [where]
    assert result.error is None
    got = writer.read("/big.txt", 0, 5000)
    assert got.file_data is not None
    assert got.file_data["content"] == new
    st = writer.stat("/big.txt")
    assert st is not None
    assert st.blob_ref is not None
    assert st.blob_ref != old.blob_ref
    assert writer.blob_store.get(st.blob_ref) == new.encode()


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("grace", [-1.0, -3600.0, math.nan, math.inf])
async def test_gc_refuses_a_grace_that_would_take_a_blob_about_to_be_committed(
    make_backend: Any, tmp_path: Path, grace: float, mode: str
) -> None:
    # A negative grace put the orphan cutoff in the future: the blob a writer has just put
    # and not yet committed was deleted (its file then had no content); NaN and infinity
    # removed no orphan at all. The CLI already refused these (fs gc --orphan-grace).
    b: RedisBackend = make_backend(**SPILL, blob_dir=str(tmp_path / "blobs"))
    assert b.write("/big.txt", BIG).error is None
    st = b.stat("/big.txt")
    assert st is not None
    assert st.blob_ref is not None
    in_flight = st.blob_ref.rsplit("/", 2)[0] + "/feedface/uncommitted"
    b.blob_store.put(in_flight, b"being written")
    if mode == "sync":
        with pytest.raises(InvalidInputError, match="orphan_grace"):
            b.gc(orphan_grace=grace)
    else:
        with pytest.raises(InvalidInputError, match="orphan_grace"):
            await b.agc(orphan_grace=grace)
    assert b.blob_store.get(in_flight) == b"being written"
    # the default grace leaves it alone and a grace of 0 takes it: it is an orphan
    assert b.gc() == 0
    assert b.gc(orphan_grace=0) == 1
    assert b.blob_store.get(in_flight) is None


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_gc_of_another_deployment_sharing_the_blob_dir_keeps_our_blobs(
    make_backend: Any, redis_target: Any, redis_url: str, tmp_path: Path, closer: Any, mode: str
) -> None:
    # Two deployments, same key prefix, same namespace, one blob directory (the default is
    # a folder in the temp dir): ours on the target, the other on database 1 of the
    # standalone server. gc on the other took our blob for its orphan (none of its files
    # references it) and deleted it: our file then raised NotFoundError on every read.
    blobs = str(tmp_path / "shared-blobs")
    ours: RedisBackend = make_backend(**SPILL, blob_dir=blobs)
    settings = RedisSettings(
        url=redis_url.rsplit("/", 1)[0] + "/1" if redis_url.count("/") > 2 else redis_url + "/1",
        key_prefix=redis_target.settings.key_prefix,
        cluster="off",
    )
    other = closer(
        RedisBackend(settings=settings, namespace=ours.resolve_namespace(), blob_dir=blobs, **SPILL)
    )
    assert ours.write("/big.txt", BIG).error is None
    assert other.write("/theirs.txt", BIG.upper()).error is None
    if mode == "sync":
        removed = other.gc(orphan_grace=0)
    else:
        removed = await other.agc(orphan_grace=0)
    assert removed == 0
    got = ours.read("/big.txt", 0, 5000)
    assert got.file_data is not None
    assert got.file_data["content"] == BIG
    assert other.read("/theirs.txt", 0, 1).error is None
    # and each one's gc still collects its own orphans
    st = ours.stat("/big.txt")
    assert st is not None
    assert st.blob_ref is not None
    orphan = st.blob_ref.rsplit("/", 2)[0] + "/feedface/left-behind"
    ours.blob_store.put(orphan, b"x")
    # and one left by a writer from before blob folders had an id
    legacy = ours._blob_prefix(ours.resolve_namespace()) + "feedface/left-behind"
    ours.blob_store.put(legacy, b"x")
    assert ours.gc(orphan_grace=0) == 2
    assert ours.blob_store.get(orphan) is None
    assert ours.blob_store.get(legacy) is None
    assert other.read("/theirs.txt", 0, 1).error is None


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_gc_removes_the_temporary_file_of_a_writer_killed_mid_put(
    make_backend: Any, tmp_path: Path, mode: str
) -> None:
    # `put` writes .tmp-* beside its blob, then renames it; a writer killed in between left
    # the temporary file, which `list` hides from gc: it stayed forever (here 13 KB; a
    # spilled file is 32 MiB or more by default).
    b: RedisBackend = make_backend(**SPILL, blob_dir=str(tmp_path / "blobs"))
    assert b.write("/big.txt", BIG).error is None
    st = b.stat("/big.txt")
    assert st is not None
    assert st.blob_ref is not None
    folder = Path(tmp_path / "blobs", *st.blob_ref.split("/")[:-1])
    crashed, fresh = folder / ".tmp-crashed", folder / ".tmp-in-flight"
    crashed.write_bytes(BIG.encode())
    fresh.write_bytes(BIG.encode())
    two_hours_ago = time.time() - 7200
    os.utime(crashed, (two_hours_ago, two_hours_ago))

    removed = b.gc() if mode == "sync" else await b.agc()

    assert removed == 1
    assert not crashed.exists()
    assert fresh.exists()  # younger than the orphan grace: a put may still rename it
    got = b.read("/big.txt", 0, 5000)
    assert got.file_data is not None
    assert got.file_data["content"] == BIG


def test_every_backend_of_a_namespace_names_the_blob_folder_by_the_id_in_redis(
    make_backend: Any, redis_target: Any, tmp_path: Path
) -> None:
    # The id is set once and read in one atomic command (SET NX GET): the first backend's
    # random id, and every later backend (a new process) finds the same one. As two calls
    # (SET NX, then GET), a key gone in between named the folder "None".
    blobs = str(tmp_path / "blobs")
    first: RedisBackend = make_backend(**SPILL, blob_dir=blobs)
    assert first.write("/a.txt", BIG).error is None
    ns = first.resolve_namespace()
    stored = redis_target.client.get(first._k(ns, "blobid"))
    assert stored is not None
    assert len(stored) == 16
    later: RedisBackend = make_backend(**SPILL, blob_dir=blobs, namespace=ns)
    assert later.write("/b.txt", BIG).error is None
    for b, path in ((first, "/a.txt"), (later, "/b.txt")):
        st = b.stat(path)
        assert st is not None
        assert st.blob_ref is not None
        assert st.blob_ref.split("/")[1] == stored.decode()


def test_a_blob_folder_id_gone_before_it_was_read_is_set_again(
    make_backend: Any, redis_target: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The id is set (SET NX) and read (GET) in one pipeline; a key deleted in between (an
    # operator, a flush) read as nothing, and the folder was named "None": shared by every
    # backend that ever saw that, across namespaces' deployments.
    from deepagents_redis.core import Pipeline

    b: RedisBackend = make_backend(**SPILL, blob_dir=str(tmp_path / "blobs"))
    original = RedisBackend._blob_home
    vanished: list[bool] = []

    def racing(self: RedisBackend, ns: str) -> Any:
        op = original(self, ns)
        reply: Any = None
        while True:
            try:
                request = op.send(reply)
            except StopIteration as stop:
                return stop.value
            if isinstance(request, Pipeline) and not vanished:
                vanished.append(True)
                reply = [True, None]  # set, then gone before the GET
                continue
            reply = yield request

    monkeypatch.setattr(RedisBackend, "_blob_home", racing)
    assert b.write("/a.txt", BIG).error is None
    st = b.stat("/a.txt")
    assert st is not None
    assert st.blob_ref is not None
    assert vanished == [True]
    stored = redis_target.client.get(b._k(b.resolve_namespace(), "blobid"))
    assert st.blob_ref.split("/")[1] == stored.decode() != "None"


def _replace_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


@pytest.mark.parametrize("damage", ["cut short", "grown"])
async def test_a_damaged_blob_is_an_error_not_the_files_content(
    make_backend: Any, tmp_path: Path, damage: str
) -> None:
    # A spilled file's blob cut short (a power loss before the store flushed it, a file
    # changed by hand) was served as the file's content, with no error.
    from deepagents_redis.core import SerializationError

    b: RedisBackend = make_backend(**SPILL, blob_dir=str(tmp_path / "blobs"))
    assert b.write("/big.txt", BIG).error is None
    st = b.stat("/big.txt")
    assert st is not None
    assert st.blob_ref is not None
    blob = Path(tmp_path / "blobs", *st.blob_ref.split("/"))
    raw = BIG.encode()
    _replace_bytes(blob, raw[:100] if damage == "cut short" else raw + b"tail\n")
    with pytest.raises(SerializationError, match="blob is damaged"):
        b.read("/big.txt", 0, 5000)
    with pytest.raises(SerializationError, match="blob is damaged"):
        await b.aread("/big.txt", 0, 5000)
    _replace_bytes(blob, raw)  # repaired: read as before
    got = b.read("/big.txt", 0, 5000)
    assert got.file_data is not None
    assert got.file_data["content"] == BIG


def test_a_local_blob_and_its_rename_are_flushed_to_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The backend commits the metadata right after `put`: without the flushes a power loss
    # could leave Redis naming a blob that is empty or cut short.
    store = _blobs.LocalBlobStore(tmp_path / "blobs")
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store.put("a/b/blob1", b"data")
    folder = tmp_path / "blobs" / "a" / "b"
    assert len(synced) == 2
    assert Path(synced[0]).parent == folder  # the temporary file, before its rename
    assert Path(synced[0]).name.startswith(".tmp-")
    assert Path(synced[1]) == folder  # then the directory holding the rename
    assert store.get("a/b/blob1") == b"data"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_overwrites_and_deletes_leave_only_the_live_files_blobs(
    make_backend: Any, mode: str
) -> None:
    """Each write of a spilled file puts a new blob; the one it replaced goes once the new
    metadata is committed (write, upload, edit, spilled to inline), and a delete (of a file
    or a directory) removes its blobs: the store holds exactly the live files' blobs, with
    no `gc` run."""
    from deepagents_redis.testing.backends import Operation

    async def call(b: Any, name: str, *args: Any) -> Any:
        op = Operation(name, args, {})
        return op(b) if mode == "sync" else await op.acall(b)

    b = make_backend(**SPILL)

    async def held() -> list[str]:
        live = []
        for path in ("/a.txt", "/d/x.txt", "/d/y.txt"):
            st = await call(b, "stat", path)
            if st is not None and st.spilled:
                live.append(st.blob_ref)
        assert sorted(ref for ref, _ in b.blob_store.list("")) == sorted(live)
        return live

    assert (await call(b, "write", "/a.txt", BIG)).error is None
    first = await held()
    assert len(first) == 1
    assert (await call(b, "write", "/a.txt", BIG + "v2")).error is None
    assert len(await held()) == 1
    await call(b, "upload_files", [("/a.txt", (BIG + "v3").encode())])
    assert len(await held()) == 1
    assert (await call(b, "edit", "/a.txt", "v3", "v4")).error is None
    assert len(await held()) == 1
    assert first != await held()
    assert (await call(b, "write", "/a.txt", "small now")).error is None
    assert await held() == []
    await call(b, "upload_files", [("/d/x.txt", BIG.encode()), ("/d/y.txt", BIG.encode())])
    assert (await call(b, "write", "/a.txt", BIG)).error is None
    assert len(await held()) == 3
    assert (await call(b, "delete", "/a.txt")).error is None
    assert len(await held()) == 2
    assert (await call(b, "delete", "/d")).error is None
    assert await held() == []
