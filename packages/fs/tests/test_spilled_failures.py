"""A spilled write whose commit fails removes its blob, and only when that is safe.

A spilled write puts an immutable blob, then commits the metadata naming it. When the commit
failed (a refused script, a reset connection, a cancelled task) the blob stayed in the blob
store until the next `gc()` pass: a 32 MiB+ file per failed attempt. Now the backend fences
the write's op id (`SET NX` of a record the idempotent wrapper replays) and deletes the blob
only when its fence holds: a commit that still reaches Redis afterwards applies nothing, and
a commit that did apply keeps its blob, even when the removal runs after the commit's op
record expired (the fence script also checks the file's metadata and the blobs set).
A commit that ran and answered CONFLICT but whose every reply was lost also gets its blob
removed at once: its own op record says it wrote nothing and its replays write nothing (the
blob was kept for gc before). Checked on real servers (standalone and Cluster).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.exceptions as rexc
from deepagents_redis.core import (
    Command,
    DeepAgentsRedisError,
    OutcomeUnknownError,
    RedisSettings,
    Sleep,
    run_idempotent,
)
from deepagents_redis.fs import LocalBlobStore, RedisBackend, _common
from deepagents_redis.fs._common import _FENCE, _FENCE_SCRIPT, _OP_TTL_MS, _WRITE

pytestmark = pytest.mark.integration

SPILL = 16 * 1024


def _text(tag: str, size: int = 3 * SPILL) -> str:
    line = f"{tag} line of a spilled file\n"
    return (line * (size // len(line) + 1))[:size]


def _blobs(backend: RedisBackend) -> list[str]:
    return sorted(ref for ref, _mtime in backend.blob_store.list(""))


def _content(backend: RedisBackend, path: str) -> str:
    got = backend.read(path, 0, 100_000)
    assert got.error is None, got.error
    assert got.file_data is not None
    return got.file_data["content"]


async def test_a_spilled_write_whose_commit_fails_removes_its_blob(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The commit script refuses the call (a malformed header: nothing written, nothing
    # recorded) after the blob was put; write, awrite and upload_files commit the same way.
    b: RedisBackend = make_backend(spill_threshold=SPILL)
    assert b.write("/big.txt", _text("old")).error is None
    stat = b.stat("/big.txt")
    assert stat is not None
    assert stat.spilled
    kept = _blobs(b)
    assert kept == [stat.blob_ref]
    real = _common.Idempotent

    def refused(script: Any, op_key: Any, keys: Any, args: Any, **kw: Any) -> Any:
        return real(script, op_key, keys, ["bad header", *args[1:]], **kw)

    monkeypatch.setattr(_common, "Idempotent", refused)
    with pytest.raises(DeepAgentsRedisError, match="malformed header"):
        b.write("/big.txt", _text("new"))
    assert _blobs(b) == kept
    with pytest.raises(DeepAgentsRedisError, match="malformed header"):
        await b.awrite("/big.txt", _text("new"))
    assert _blobs(b) == kept
    with pytest.raises(DeepAgentsRedisError, match="malformed header"):
        b.upload_files([("/other.txt", _text("new").encode())])
    assert _blobs(b) == kept
    assert b._abandoned == {}
    monkeypatch.setattr(_common, "Idempotent", real)
    assert b.stat("/big.txt") == stat
    assert _content(b, "/big.txt") == _text("old")
    assert b.stat("/other.txt") is None


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_commit_arriving_after_the_fence_applies_nothing(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # The commit request is held back (the driver sends an unknown command instead and
    # fails), as if it sat in a dead connection's buffer; after the failed write removed its
    # blob, the very same commit reaches Redis: it must not name the deleted blob.
    b: RedisBackend = make_backend(spill_threshold=SPILL)
    held: list[Any] = []
    real = _common.Idempotent

    def hold(script: Any, op_key: Any, keys: Any, args: Any, **kw: Any) -> Any:
        held.append(real(script, op_key, keys, args, **kw))
        return Command(("NO-SUCH-COMMAND",))

    monkeypatch.setattr(_common, "Idempotent", hold)
    if mode == "sync":
        with pytest.raises(DeepAgentsRedisError):
            b.write("/late.txt", _text("late"))
    else:
        with pytest.raises(DeepAgentsRedisError):
            await b.awrite("/late.txt", _text("late"))
    monkeypatch.setattr(_common, "Idempotent", real)
    assert _blobs(b) == []
    (commit,) = held
    assert commit.script is _WRITE
    reply = run_idempotent(
        b.connector.client(),
        commit.script,
        op_key=commit.op_key,
        keys=commit.keys,
        args=commit.args,
        op_ttl_ms=commit.op_ttl_ms,
    )
    assert reply == b"ABANDONED"
    assert b.stat("/late.txt") is None
    assert b.ls("/").entries == []


class _LosesWriteReplies:
    """A client whose write-script replies are lost after the script ran (each retry's too)."""

    @staticmethod
    def wrap(client: Any) -> Any:
        real = client.execute_command

        def execute_command(*args: Any, **options: Any) -> Any:
            reply = real(*args, **options)
            if args[0] in ("EVALSHA", "EVAL") and args[1] in (_WRITE.sha, _WRITE.source):
                raise rexc.TimeoutError("Timeout reading from socket (reply dropped by the test)")
            return reply

        client.execute_command = execute_command
        return client


def test_a_spilled_commit_of_unknown_outcome_that_did_apply_keeps_its_blob(
    redis_url: str, tmp_path: Any
) -> None:
    # The fence finds the commit's own record: the blob is the file's content and stays.
    import redis

    settings = RedisSettings(url=redis_url, cluster="off", key_prefix="spf")
    store = LocalBlobStore(tmp_path / "blobs")
    opts: dict[str, Any] = {
        "namespace": f"unknown-{uuid.uuid4().hex[:8]}",
        "spill_threshold": SPILL,
        "blob_store": store,
    }
    client = _LosesWriteReplies.wrap(redis.Redis.from_url(redis_url))
    ours = RedisBackend(client=client, settings=settings, **opts)
    other = RedisBackend(settings=settings, **opts)
    try:
        with pytest.raises(OutcomeUnknownError):
            ours.write("/big.txt", _text("new"))
        assert ours._abandoned == {}
        stat = other.stat("/big.txt")
        assert stat is not None
        assert stat.spilled
        assert _blobs(other) == [stat.blob_ref]
        assert _content(other, "/big.txt") == _text("new")  # applied, and whole
    finally:
        other.delete("/")
        ours.close()
        other.close()
        client.close()


def test_a_blob_whose_fence_cannot_be_set_is_kept_and_retried_later(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cleanup fails with the server out of reach: the blob is kept (never deleted
    # unfenced) and the backend's next call fences and removes it.
    from deepagents_redis.core import RedisUnavailableError

    b: RedisBackend = make_backend(spill_threshold=SPILL)
    real_idem = _common.Idempotent
    real_op = b._unstage_op

    def refused(script: Any, op_key: Any, keys: Any, args: Any, **kw: Any) -> Any:
        return real_idem(script, op_key, keys, ["bad header", *args[1:]], **kw)

    def unreachable(keys: Any) -> Any:
        raise RedisUnavailableError("out of reach (test)")
        yield  # a generator, like the real one

    monkeypatch.setattr(_common, "Idempotent", refused)
    monkeypatch.setattr(b, "_unstage_op", unreachable)
    with pytest.raises(DeepAgentsRedisError, match="malformed header"):
        b.write("/big.txt", _text("new"))
    assert len(_blobs(b)) == 1
    assert len(b._abandoned) == 1
    monkeypatch.setattr(_common, "Idempotent", real_idem)
    monkeypatch.setattr(b, "_unstage_op", real_op)
    assert b.read("/nothing.txt").error is not None  # any call
    assert _blobs(b) == []
    assert b._abandoned == {}


def _apply_then_fail(b: RedisBackend, monkeypatch: pytest.MonkeyPatch, then: Any) -> list[Any]:
    """Make the next commit apply for real, then fail the call with `then()`'s request.

    The commit runs (and records its reply under its op-id key) before the driver sends
    anything; the driver then gets `then()`: the reply looks lost, or the task is cancelled.
    Returns the list the commit requests are appended to.
    """
    held: list[Any] = []
    real = _common.Idempotent

    def apply(script: Any, op_key: Any, keys: Any, args: Any, **kw: Any) -> Any:
        commit = real(script, op_key, keys, args, **kw)
        held.append(commit)
        run_idempotent(
            b.connector.client(),
            commit.script,
            op_key=commit.op_key,
            keys=commit.keys,
            args=commit.args,
            op_ttl_ms=commit.op_ttl_ms,
        )
        monkeypatch.setattr(_common, "Idempotent", real)
        return then()

    monkeypatch.setattr(_common, "Idempotent", apply)
    return held


def _expire_op_record(b: RedisBackend, commit: Any) -> None:
    """What `_OP_TTL_MS` does to the commit's record while the backend sits idle."""
    client = b.connector.client()
    assert client.exists(commit.op_key) == 1
    client.delete(commit.op_key)


def _assert_committed(b: RedisBackend, path: str, tag: str) -> None:
    stat = b.stat(path)
    assert stat is not None
    assert stat.spilled
    assert _blobs(b) == [stat.blob_ref]
    assert _content(b, path) == _text(tag)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_deferred_cleanup_after_the_op_record_expired_keeps_a_committed_blob(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # The commit applied but its reply was lost, and the cleanup found the server out of
    # reach: it is retried by the next call, which comes after the commit's op record
    # expired (10 minutes). The fence must see the file's metadata naming the blob, not set
    # itself on the empty op key and delete the file's content (review of cdefe43).
    from deepagents_redis.core import RedisUnavailableError

    b: RedisBackend = make_backend(spill_threshold=SPILL)
    held = _apply_then_fail(b, monkeypatch, lambda: Command(("NO-SUCH-COMMAND",)))
    real_op = b._unstage_op

    def unreachable(keys: Any) -> Any:
        raise RedisUnavailableError("out of reach (test)")
        yield  # a generator, like the real one

    monkeypatch.setattr(b, "_unstage_op", unreachable)
    if mode == "sync":
        with pytest.raises(DeepAgentsRedisError):
            b.write("/big.txt", _text("new"))
    else:
        with pytest.raises(DeepAgentsRedisError):
            await b.awrite("/big.txt", _text("new"))
    monkeypatch.setattr(b, "_unstage_op", real_op)
    assert len(b._abandoned) == 1  # kept for the next call
    (commit,) = held
    _expire_op_record(b, commit)
    if mode == "sync":
        b.ls("/")  # the next call, much later: runs the cleanup
    else:
        await b.als("/")
    assert b._abandoned == {}
    _assert_committed(b, "/big.txt", "new")
    # ... and the fence was not set: nothing under the op key
    assert b.connector.client().exists(commit.op_key) == 0


async def test_a_cancelled_write_whose_commit_applied_keeps_its_blob_after_the_record_expired(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The task is cancelled while it awaits the reply of a commit that applied: the cleanup
    # waits for the backend's next call (CancelledError is no Exception), which may come
    # after the commit's op record expired.
    b: RedisBackend = make_backend(spill_threshold=SPILL)

    def cancelled() -> Any:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # the next await of this task raises CancelledError
        return Sleep(60)

    held = _apply_then_fail(b, monkeypatch, cancelled)
    with pytest.raises(asyncio.CancelledError):
        await b.awrite("/big.txt", _text("new"))
    assert len(b._abandoned) == 1
    (commit,) = held
    _expire_op_record(b, commit)
    await b.als("/")
    assert b._abandoned == {}
    _assert_committed(b, "/big.txt", "new")


def test_a_blob_left_pending_past_the_op_ttl_is_left_to_gc(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Second guard: a pending removal older than its commit's op record may live (less a
    # margin) is dropped, its blob left to gc(), even when the fence would hold.
    from deepagents_redis.core import RedisUnavailableError

    b: RedisBackend = make_backend(spill_threshold=SPILL)
    real_idem = _common.Idempotent
    real_op = b._unstage_op

    def refused(script: Any, op_key: Any, keys: Any, args: Any, **kw: Any) -> Any:
        return real_idem(script, op_key, keys, ["bad header", *args[1:]], **kw)

    def unreachable(keys: Any) -> Any:
        raise RedisUnavailableError("out of reach (test)")
        yield  # a generator, like the real one

    monkeypatch.setattr(_common, "Idempotent", refused)
    monkeypatch.setattr(b, "_unstage_op", unreachable)
    with pytest.raises(DeepAgentsRedisError, match="malformed header"):
        b.write("/big.txt", _text("new"))
    monkeypatch.setattr(_common, "Idempotent", real_idem)
    monkeypatch.setattr(b, "_unstage_op", real_op)
    kept = _blobs(b)
    assert len(kept) == 1
    # as if the entry had waited out the op TTL (the server unreachable all along)
    aged = _common._OP_TTL_MS / 1000
    b._abandoned = {key: since - aged for key, since in b._abandoned.items()}
    assert b.read("/nothing.txt").error is not None  # any call
    assert b._abandoned == {}
    assert _blobs(b) == kept  # gc()'s to remove


def test_a_lost_conflict_reply_removes_the_spilled_blob_at_once(
    redis_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The commit ran and answered CONFLICT (nothing written, the reply recorded), and every
    # reply was lost: the caller gets OutcomeUnknownError, and the blob, which nothing names
    # and no replay of the commit can name, is deleted by the cleanup instead of gc.
    import redis

    settings = RedisSettings(url=redis_url, cluster="off", key_prefix="spf")
    store = LocalBlobStore(tmp_path / "blobs")
    opts: dict[str, Any] = {
        "namespace": f"conflict-{uuid.uuid4().hex[:8]}",
        "spill_threshold": SPILL,
        "blob_store": store,
    }
    raw = redis.Redis.from_url(redis_url)
    client = _LosesWriteReplies.wrap(redis.Redis.from_url(redis_url))
    ours = RedisBackend(client=client, settings=settings, **opts)
    other = RedisBackend(settings=settings, **opts)
    held: list[Any] = []
    real = _common.Idempotent

    def hold(script: Any, op_key: Any, keys: Any, args: Any, **kw: Any) -> Any:
        held.append(real(script, op_key, keys, args, **kw))
        return held[-1]

    try:
        assert other.write("/big.txt", _text("old")).error is None
        before = other.stat("/big.txt")
        assert before is not None
        kept = _blobs(other)
        assert kept == [before.blob_ref]
        monkeypatch.setattr(_common, "Idempotent", hold)
        with pytest.raises(OutcomeUnknownError):
            ours.write("/big.txt", _text("new"), expected_version=before.version + 100)
        monkeypatch.undo()
        assert ours._abandoned == {}
        assert _blobs(other) == kept  # the failed write's blob is gone
        assert other.stat("/big.txt") == before
        assert _content(other, "/big.txt") == _text("old")
        # the commit's record stays: a late copy of the commit still replays CONFLICT and
        # cannot name the deleted blob
        (commit,) = held
        reply = run_idempotent(
            raw,
            commit.script,
            op_key=commit.op_key,
            keys=commit.keys,
            args=commit.args,
            op_ttl_ms=commit.op_ttl_ms,
        )
        assert reply == [b"CONFLICT", before.version]
        assert other.stat("/big.txt") == before
        assert _blobs(other) == kept
    finally:
        other.delete("/")
        ours.close()
        other.close()
        client.close()
        raw.close()


def _fence(client: Any, tag: str, ref: str) -> tuple[int, str, str, str]:
    op_key, meta_key, blobs_key = f"{{{tag}}}:op", f"{{{tag}}}:m", f"{{{tag}}}:blobs"
    got = _FENCE_SCRIPT(client, keys=[op_key, meta_key, blobs_key], args=[_FENCE, _OP_TTL_MS, ref])
    return int(got), op_key, meta_key, blobs_key


def test_the_fence_script_deletes_only_for_its_own_fence_or_a_conflict_record(
    redis_url: str,
) -> None:
    import msgpack
    import redis

    client = redis.Redis.from_url(redis_url)
    tag = f"fence-{uuid.uuid4().hex[:8]}"
    op_key, meta_key, blobs_key = f"{{{tag}}}:op", f"{{{tag}}}:m", f"{{{tag}}}:blobs"
    try:
        # an OK record: the commit applied (a later write may have replaced its blob, and
        # deletes it itself): keep, and leave the record as it is
        ok = msgpack.packb([["OK", 7, "", 0]])  # as cmsgpack packs it
        client.set(op_key, ok, px=5000)
        assert _fence(client, tag, "ref-a")[0] == 0
        assert client.get(op_key) == ok
        assert client.pttl(op_key) <= 5000
        # a record that is no msgpack at all (not ours): keep
        client.set(op_key, b"\xc1 not msgpack", px=5000)
        assert _fence(client, tag, "ref-a")[0] == 0
        assert client.pttl(op_key) <= 5000
        # a CONFLICT record: nothing was written and a replay writes nothing: delete, and
        # the record now lives as long as a fence would
        conflict = msgpack.packb([["CONFLICT", 3]])
        client.set(op_key, conflict, px=5000)
        assert _fence(client, tag, "ref-a")[0] == 1
        assert client.get(op_key) == conflict
        assert client.pttl(op_key) > _OP_TTL_MS - 60_000
        assert _fence(client, tag, "ref-a")[0] == 1  # a re-run answers the same
        # ... unless something names the blob after all
        client.hset(meta_key, "b", "ref-a")
        assert _fence(client, tag, "ref-a")[0] == 0
        client.delete(meta_key)
        client.zadd(blobs_key, {"ref-a": 1})
        assert _fence(client, tag, "ref-a")[0] == 0
        # a record without a lifetime keeps none
        client.delete(blobs_key)
        client.set(op_key, conflict)
        assert _fence(client, tag, "ref-a")[0] == 1
        assert client.pttl(op_key) == -1
    finally:
        client.delete(op_key, meta_key, blobs_key)
        client.close()
