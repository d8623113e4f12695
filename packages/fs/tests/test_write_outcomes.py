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

from typing import Any

import pytest
from deepagents_redis.core import OutcomeUnknownError
from deepagents_redis.fs import RedisBackend, _common, _files
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
