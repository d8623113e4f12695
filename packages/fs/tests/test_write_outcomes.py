"""A write whose outcome cannot be known raises `OutcomeUnknownError`, never a result.

Write, upload and edit commit through op-id scripts whose replies the idempotent wrapper
records and replays. Before, `_commit` read any reply that was not ``OK`` as a conflict: a
replayed fence record (``b"ABANDONED"``, the record `_Layout._abandon_blob`'s cleanup puts
under a failed spilled write's op id) came back as "File '/f' changed: expected version
None, found 66" (its second byte), `upload_files` reported it as stored, an edit's fast
path took it for a fallback and applied the edit again under a new op id, a delete raised
a bare ValueError (or reported a deletion) from its bytes. Now any reply
that is not one of the script's own raises `OutcomeUnknownError` (the cleanup then decides
about the blob).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis.exceptions as rexc
from deepagents_redis.core import OutcomeUnknownError, RedisSettings
from deepagents_redis.fs import LocalBlobStore, RedisBackend, _common, _files
from deepagents_redis.fs._common import _EDIT, _FENCE, _OP_TTL_MS, _WRITE

pytestmark = pytest.mark.integration

SPILL = 16 * 1024


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


def _prefence(b: RedisBackend, monkeypatch: pytest.MonkeyPatch, *scripts: Any) -> list[Any]:
    """Put the fence record under the op key of each next call of `scripts` before it runs.

    What the commit finds when the cleanup of a failed write fenced its op id first: the
    wrapper replays the fence (``b"ABANDONED"``) instead of running the script. Returns the
    list the fenced requests are appended to.
    """
    fenced: list[Any] = []
    client = b.connector.client()
    for module in (_common, _files):
        real = module.Idempotent

        def prefenced(
            script: Any, op_key: Any, keys: Any, args: Any, _real: Any = real, **kw: Any
        ) -> Any:
            if script in scripts:
                client.set(op_key, _FENCE, px=_OP_TTL_MS)
                fenced.append(op_key)
            return _real(script, op_key, keys, args, **kw)

        monkeypatch.setattr(module, "Idempotent", prefenced)
    return fenced


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("size", [100, 3 * SPILL], ids=["inline", "spilled"])
@pytest.mark.parametrize("expected", [None, "current"])
async def test_a_write_that_replays_a_fence_raises_outcome_unknown(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, mode: str, size: int, expected: Any
) -> None:
    b: RedisBackend = make_backend(spill_threshold=SPILL)
    assert b.write("/f.txt", _text("old", size)).error is None
    before = b.stat("/f.txt")
    assert before is not None
    kept = _blobs(b)
    version = before.version if expected == "current" else None
    fenced = _prefence(b, monkeypatch, _WRITE)
    if mode == "sync":
        with pytest.raises(OutcomeUnknownError, match="may or may not"):
            b.write("/f.txt", _text("new", size), expected_version=version)
    else:
        with pytest.raises(OutcomeUnknownError, match="may or may not"):
            await b.awrite("/f.txt", _text("new", size), expected_version=version)
    assert len(fenced) == 1
    monkeypatch.undo()
    # nothing applied; a spilled write's blob is removed (its fence holds)
    assert b.stat("/f.txt") == before
    assert _content(b, "/f.txt") == _text("old", size)
    assert _blobs(b) == kept
    assert b._abandoned == {}


@pytest.mark.parametrize("size", [100, 3 * SPILL], ids=["inline", "spilled"])
async def test_an_upload_that_replays_a_fence_raises_outcome_unknown(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    # upload_files ignored the commit's status: a fenced commit was reported stored.
    b: RedisBackend = make_backend(spill_threshold=SPILL)
    _prefence(b, monkeypatch, _WRITE)
    with pytest.raises(OutcomeUnknownError):
        b.upload_files([("/up.txt", _text("up", size).encode())])
    with pytest.raises(OutcomeUnknownError):
        await b.aupload_files([("/up.txt", _text("up", size).encode())])
    monkeypatch.undo()
    assert b.stat("/up.txt") is None
    assert _blobs(b) == []
    assert b._abandoned == {}


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_edit_that_replays_a_fence_raises_outcome_unknown(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # The fast path (edit script) took the replayed fence for a FALLBACK and applied the
    # edit again on the client path: a second application under a new op id.
    b: RedisBackend = make_backend(spill_threshold=SPILL)
    assert b.write("/e.txt", "one two\n").error is None
    _prefence(b, monkeypatch, _EDIT)
    if mode == "sync":
        with pytest.raises(OutcomeUnknownError):
            b.edit("/e.txt", "one", "1")
    else:
        with pytest.raises(OutcomeUnknownError):
            await b.aedit("/e.txt", "one", "1")
    monkeypatch.undo()
    assert _content(b, "/e.txt") == "one two\n"


async def test_an_edit_whose_commit_replays_a_fence_raises_outcome_unknown(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client path (a spilled file: read, replace, conditional write) took the fenced
    # commit for a conflict and retried until it gave up with "kept changing".
    b: RedisBackend = make_backend(spill_threshold=SPILL, edit_retries=3)
    assert b.write("/e.txt", _text("one")).error is None
    before = b.stat("/e.txt")
    kept = _blobs(b)
    fenced = _prefence(b, monkeypatch, _WRITE)
    with pytest.raises(OutcomeUnknownError):
        b.edit("/e.txt", "one line", "1 line", replace_all=True)
    assert len(fenced) == 1  # no retry under a new op id
    monkeypatch.undo()
    assert b.stat("/e.txt") == before
    assert _blobs(b) == kept
    assert b._abandoned == {}


def test_a_delete_that_replays_a_foreign_record_raises_outcome_unknown(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reply that is no delete script's (here a fence record under its op id) raised a
    # bare ValueError from int(b'A'...) instead of a typed error.
    from deepagents_redis.fs._common import _DELETE

    b: RedisBackend = make_backend()
    assert b.write("/d.txt", "x").error is None
    _prefence(b, monkeypatch, _DELETE)
    with pytest.raises(OutcomeUnknownError):
        b.delete("/d.txt")
    monkeypatch.undo()
    assert _content(b, "/d.txt") == "x"


class _LosesReplies:
    """A client that runs each write/edit script call, then loses its reply `lose` times.

    The script runs every time (the first applies, the rest replay its record); with `lose`
    above core's retries every reply is lost.
    """

    def __init__(self, client: Any, lose: int) -> None:
        self.lost = 0
        real = client.execute_command
        scripts = (_WRITE.sha, _WRITE.source, _EDIT.sha, _EDIT.source)

        def execute_command(*args: Any, **options: Any) -> Any:
            reply = real(*args, **options)
            if args[0] in ("EVALSHA", "EVAL") and args[1] in scripts and self.lost < lose:
                self.lost += 1
                raise rexc.TimeoutError("Timeout reading from socket (reply dropped by the test)")
            return reply

        client.execute_command = execute_command


@pytest.mark.parametrize("size", [100, 10_000, 3 * SPILL], ids=["inline", "chunked", "spilled"])
@pytest.mark.parametrize("expected", [None, "current", "stale"])
def test_a_write_whose_every_reply_is_lost_raises_outcome_unknown(
    redis_url: str, tmp_path: Any, size: int, expected: str | None
) -> None:
    # Applied (OK) or not (CONFLICT): the caller never saw a reply, so it is told neither,
    # and never "changed". With one reply lost the retry replays the record: that answer is
    # certain and comes back as before (stored, or "changed").
    import redis

    settings = RedisSettings(url=redis_url, cluster="off", key_prefix="wo")
    opts: dict[str, Any] = {
        "namespace": f"lost-{uuid.uuid4().hex[:8]}",
        "spill_threshold": SPILL,
        "chunk_size": 4096,
        "blob_store": LocalBlobStore(tmp_path / "blobs"),
    }
    other = RedisBackend(settings=settings, **opts)
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    lossy = _LosesReplies(clients[0], lose=100)
    once = _LosesReplies(clients[1], lose=1)
    backends = [RedisBackend(client=c, settings=settings, **opts) for c in clients]
    try:
        assert other.write("/f.txt", _text("old", size)).error is None
        stat = other.stat("/f.txt")
        assert stat is not None
        version = {None: None, "current": stat.version, "stale": stat.version + 100}[expected]
        with pytest.raises(OutcomeUnknownError):
            backends[0].write("/f.txt", _text("new", size), expected_version=version)
        assert lossy.lost > 1
        applied = expected != "stale"
        assert _content(other, "/f.txt") == _text("new" if applied else "old", size)
        now = other.stat("/f.txt")
        assert now is not None
        if size > SPILL:
            # the file's blob is kept; a CONFLICT's is deleted at once. (An applied write's
            # lost reply named the blob it replaced: that one is left for gc.)
            assert now.blob_ref in _blobs(other)
            assert len(_blobs(other)) == (2 if applied else 1)
        again = {None: None, "current": now.version, "stale": now.version + 100}[expected]
        got = backends[1].write("/f.txt", _text("third", size), expected_version=again)
        assert once.lost == 1
        if expected == "stale":
            assert got.error is not None
            assert "changed: expected version" in got.error
            assert _content(other, "/f.txt") == _text("old", size)
        else:
            assert got.error is None
            assert _content(other, "/f.txt") == _text("third", size)
    finally:
        other.delete("/")
        for b in (*backends, other):
            b.close()
        for c in clients:
            c.close()


def test_an_edit_whose_every_reply_is_lost_raises_outcome_unknown(
    redis_url: str, tmp_path: Any
) -> None:
    # The edit script applied, its replies were lost: the caller is told the outcome is
    # unknown, never sent down the client path to apply the edit a second time.
    import redis

    settings = RedisSettings(url=redis_url, cluster="off", key_prefix="wo")
    opts: dict[str, Any] = {"namespace": f"lost-{uuid.uuid4().hex[:8]}"}
    other = RedisBackend(settings=settings, **opts)
    client = redis.Redis.from_url(redis_url)
    lossy = _LosesReplies(client, lose=100)
    ours = RedisBackend(client=client, settings=settings, **opts)
    try:
        assert other.write("/e.txt", "a\n").error is None
        with pytest.raises(OutcomeUnknownError):
            ours.edit("/e.txt", "a", "aa")
        assert lossy.lost > 1
        assert _content(other, "/e.txt") == "aa\n"  # once
    finally:
        other.delete("/")
        ours.close()
        other.close()
        client.close()
