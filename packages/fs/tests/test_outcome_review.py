"""Review of the op-record checks (fence of a lost CONFLICT, OutcomeUnknownError on a foreign
replay): the real replies still pass, and a lost CONFLICT's blob goes only when nothing can
name it.

`_commit`, the edit's fast path and the delete raise `OutcomeUnknownError` for a replayed reply
that is not their script's; these tests pin that every reply the scripts really give is read
as before on RESP3 as well as RESP2, on the async clients and on Cluster. The fence deletes the
blob of a commit whose own record says CONFLICT: pinned here on the async path and Cluster,
with the file "changed back" afterwards (an ``expected_version=0`` write that conflicted with
an existing file, which is then deleted: a re-run of the commit would now apply), and for an
upload batch whose middle file's replies are all lost after it applied (its blob is named and
kept). Real servers (standalone and Cluster).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis.exceptions as rexc
from deepagents_redis.core import OutcomeUnknownError, run_idempotent
from deepagents_redis.fs import RedisBackend, _common
from deepagents_redis.fs._common import _OP_TTL_MS, _WRITE
from deepagents_redis.testing import RedisTarget

pytestmark = pytest.mark.integration

SPILL = 16 * 1024
CHUNK = 4096


def _text(tag: str, size: int = 3 * SPILL) -> str:
    line = f"{tag} line of a file\n"
    return (line * (size // len(line) + 1))[:size]


def _blobs(backend: RedisBackend) -> list[str]:
    return sorted(ref for ref, _mtime in backend.blob_store.list(""))


def _content(backend: RedisBackend, path: str) -> str:
    got = backend.read(path, 0, 100_000)
    assert got.error is None, got.error
    assert got.file_data is not None
    return got.file_data["content"]


def _backends(
    redis_target: RedisTarget, tmp_path: Any, closer: Any, n: int, **settings: Any
) -> list[RedisBackend]:
    """`n` backends on one namespace and blob directory (each with its own clients)."""
    opts: dict[str, Any] = {
        "settings": redis_target.settings.model_copy(update=settings),
        "namespace": f"rev-{uuid.uuid4().hex[:8]}",
        "blob_dir": str(tmp_path / "blobs"),
        "spill_threshold": SPILL,
        "chunk_size": CHUNK,
    }
    return [closer(RedisBackend(**opts)) for _ in range(n)]


def _lose_write_replies(
    client: Any, lose: int, counter: list[int], *, is_async: bool, after: int = 0
) -> None:
    """Make `client` lose the replies of `lose` write-script calls (after they ran).

    The first `after` write-script calls keep their replies; `counter[0]` counts the lost.
    """
    real = client.execute_command
    scripts = (_WRITE.sha, _WRITE.source)
    calls = [0]

    def lost(args: tuple[Any, ...]) -> bool:
        if args[0] in ("EVALSHA", "EVAL") and args[1] in scripts:
            calls[0] += 1
            if calls[0] > after and counter[0] < lose:
                counter[0] += 1
                return True
        return False

    if is_async:

        async def aexecute_command(*args: Any, **options: Any) -> Any:
            reply = await real(*args, **options)
            if lost(args):
                raise rexc.TimeoutError("Timeout reading from socket (reply dropped by the test)")
            return reply

        client.execute_command = aexecute_command
    else:

        def execute_command(*args: Any, **options: Any) -> Any:
            reply = real(*args, **options)
            if lost(args):
                raise rexc.TimeoutError("Timeout reading from socket (reply dropped by the test)")
            return reply

        client.execute_command = execute_command


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_every_real_reply_is_read_as_before(
    redis_target: RedisTarget, tmp_path: Any, closer: Any, mode: str, protocol: int
) -> None:
    # Each script's own replies (write OK / CONFLICT, upload, edit OK / NOTFOUND / BINARY /
    # FALLBACK, delete) on RESP2 and RESP3, sync and async: none is taken for a foreign one.
    (b,) = _backends(redis_target, tmp_path, closer, 1, protocol=protocol)
    sync = mode == "sync"
    info = b.connector.client().client_info()
    if "resp" not in info:  # a cluster client's answer per node
        info = next(iter(info.values()))
    assert str(info["resp"]) == str(protocol)  # the clients speak RESP`protocol`

    async def call(name: str, *args: Any, **kw: Any) -> Any:
        if sync:
            return getattr(b, name)(*args, **kw)
        return await getattr(b, "a" + name)(*args, **kw)

    for path, size in (("/inline.txt", 100), ("/chunked.txt", 10_000), ("/big.txt", 3 * SPILL)):
        assert (await call("write", path, _text("one", size))).error is None
        stat = b.stat(path)
        assert stat is not None
        assert stat.spilled == (size > SPILL)
        assert (stat.chunks > 0) == (SPILL >= size > CHUNK)
        got = await call("write", path, _text("two", size), expected_version=stat.version + 7)
        assert got.error == (
            f"Error: File '{path}' changed: expected version {stat.version + 7}, found "
            f"{stat.version}. Read it again and retry."
        )
        got = await call("write", path, _text("two", size), expected_version=stat.version)
        assert got.error is None
        assert _content(b, path) == _text("two", size)
        # fast path (inline) or client path (chunked, spilled)
        got = await call("edit", path, "two line", "2 line", replace_all=True)
        assert got.error is None, got.error
        assert got.occurrences is not None
        assert got.occurrences > 0
        assert _content(b, path) == _text("two", size).replace("two line", "2 line")
    assert len(_blobs(b)) == 1  # the replaced blobs were deleted
    got = await call("edit", "/none.txt", "a", "b")
    assert got.error == "Error: File '/none.txt' not found"
    ups = await call("upload_files", [("/bin.dat", b"\xff\x00" * 10), ("/up.txt", b"up a\n")])
    assert [u.error for u in ups] == [None, None]
    got = await call("edit", "/bin.dat", "a", "b")
    assert got.error == "Error: Cannot edit binary files with text replacements."
    got = await call("edit", "/up.txt", "up a", "up b")  # fast path OK
    assert (got.error, got.occurrences) == (None, 1)
    got = await call("edit", "/up.txt", "zzz", "b")  # fast path FALLBACK, then the message
    assert got.error is not None
    assert "zzz" in got.error
    assert (await call("delete", "/big.txt")).error is None
    assert b.stat("/big.txt") is None
    assert _blobs(b) == []
    assert (await call("delete", "/")).error is None
    assert b.ls("/").entries == []
    assert b._abandoned == {}


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_lost_conflict_reply_then_the_file_changed_back(
    redis_target: RedisTarget,
    tmp_path: Any,
    closer: Any,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    protocol: int,
) -> None:
    # A create-only write (expected_version=0) of a spilled file conflicts with an existing
    # file and every reply is lost: OutcomeUnknownError, and the blob is deleted (its record
    # says CONFLICT). The file is then deleted, so the commit's condition holds again: a late
    # copy of the very same commit must still replay CONFLICT (the record outlives the fence
    # check by an op TTL), never create the file naming the deleted blob.
    ours, other = _backends(redis_target, tmp_path, closer, 2, protocol=protocol)
    assert other.write("/big.txt", _text("old")).error is None
    before = other.stat("/big.txt")
    assert before is not None
    kept = _blobs(other)
    lost = [0]
    held: list[Any] = []
    real = _common.Idempotent

    def hold(script: Any, op_key: Any, keys: Any, args: Any, **kw: Any) -> Any:
        held.append(real(script, op_key, keys, args, **kw))
        return held[-1]

    monkeypatch.setattr(_common, "Idempotent", hold)
    if mode == "sync":
        _lose_write_replies(ours.connector.client(), 100, lost, is_async=False)
        with pytest.raises(OutcomeUnknownError):
            ours.write("/big.txt", _text("new"), expected_version=0)
    else:
        client = await ours.connector.aclient()
        _lose_write_replies(client, 100, lost, is_async=True)
        with pytest.raises(OutcomeUnknownError):
            await ours.awrite("/big.txt", _text("new"), expected_version=0)
    monkeypatch.undo()
    assert lost[0] > 1
    assert ours._abandoned == {}
    assert _blobs(other) == kept  # the conflicting write's blob is gone
    assert other.stat("/big.txt") == before
    (commit,) = held
    raw = other.connector.client()
    # the record lives a fence's lifetime from the cleanup (at most the op TTL)
    assert 0 < raw.pttl(commit.op_key) <= _OP_TTL_MS
    assert (other.delete("/big.txt")).error is None
    assert other.stat("/big.txt") is None
    reply = run_idempotent(
        raw,
        commit.script,
        op_key=commit.op_key,
        keys=commit.keys,
        args=commit.args,
        op_ttl_ms=commit.op_ttl_ms,
    )
    assert reply == [b"CONFLICT", before.version]
    assert other.stat("/big.txt") is None
    assert _blobs(other) == []


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_upload_batch_whose_applied_file_lost_its_replies_keeps_every_named_blob(
    redis_target: RedisTarget, tmp_path: Any, closer: Any, mode: str
) -> None:
    # upload_files of three spilled files: the second's commit applies but every reply is
    # lost. The call raises OutcomeUnknownError; the first and second files are stored and
    # readable (their blobs kept: the cleanup finds the commit's OK record / the metadata),
    # the third was never sent.
    ours, other = _backends(redis_target, tmp_path, closer, 2)
    files = [(f"/u{i}.txt", _text(f"u{i}").encode()) for i in range(3)]
    lost = [0]
    if mode == "sync":
        _lose_write_replies(ours.connector.client(), 100, lost, is_async=False, after=1)
        with pytest.raises(OutcomeUnknownError):
            ours.upload_files(files)
    else:
        client = await ours.connector.aclient()
        _lose_write_replies(client, 100, lost, is_async=True, after=1)
        with pytest.raises(OutcomeUnknownError):
            await ours.aupload_files(files)
    assert lost[0] > 1
    assert ours._abandoned == {}
    stats = [other.stat(path) for path, _data in files]
    assert stats[0] is not None
    assert stats[1] is not None
    assert stats[2] is None
    for (path, data), stat in zip(files[:2], stats[:2], strict=True):
        assert stat is not None
        assert stat.spilled
        assert stat.blob_ref in _blobs(other)
        assert _content(other, path) == data.decode()
    # nothing else: the third file's blob was never put
    assert _blobs(other) == sorted(str(s.blob_ref) for s in stats[:2] if s is not None)
