"""Records in our keyspace that are not UTF-8 give typed errors and change nothing.

Another program writing into our keys, or a damaged value, put bytes fs decodes as UTF-8
where none are: an op record a write, edit or delete replays, a field of a file's metadata,
a path in the index or a directory hash, the blob folder id, a file's content. Each raised
a bare UnicodeDecodeError (or ValueError, binascii.Error) from fs. Now: an op record that is
no reply of its script is `OutcomeUnknownError`; stored data fs cannot read is
`SerializationError`; a text file whose content is not UTF-8 reads and edits as deepagents'
FilesystemBackend answers a file it cannot decode (an error result), and grep skips it (with
a warning), as FilesystemBackend does. Nothing on the server changes.

Every test runs on the standalone server and on the cluster (`redis_target`), sync and async.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from deepagents_redis.core import OutcomeUnknownError, SerializationError
from deepagents_redis.fs import RedisBackend, _common, _files
from deepagents_redis.fs._common import _DELETE, _EDIT, _OP_TTL_MS, _WRITE

pytestmark = pytest.mark.integration

BAD = b"\xff\xfe"  # never UTF-8
# cmsgpack of the one-element array the idempotent wrapper stores: the "reply" it replays
# is [BAD, 1], a list whose status is not UTF-8
FOREIGN_RECORD = b"\x91\x92\xa2" + BAD + b"\x01"


def _keys(b: RedisBackend) -> dict[bytes, Any]:
    """Every data key of the backend's namespace with its type and content.

    Op records are left out: a call that fails part-way may have run a script that changed
    nothing but left its own record (a delete of a path with no file, then the listing).
    Content, not DUMP: a hash in a hash table serializes in its table's order, which a read
    can change (an incremental rehash step; seen on Valkey 8 with nothing written).
    """
    client = b.connector.client()
    ns = b.resolve_namespace()
    found = sorted(set(client.scan_iter(match=f"*:fs:{{{ns}}}:*", count=1000)))
    assert found
    return {k: _content(client, k) for k in found}


def _content(client: Any, key: bytes) -> Any:
    kind = client.type(key)
    if kind == b"string":
        return kind, client.get(key)
    if kind == b"hash":
        return kind, client.hgetall(key)
    if kind == b"zset":
        return kind, client.zrange(key, 0, -1, withscores=True)
    if kind == b"set":
        return kind, client.smembers(key)
    if kind == b"list":
        return kind, client.lrange(key, 0, -1)
    return kind, client.dump(key)


def _still_planted(b: RedisBackend, planted: list[Any]) -> None:
    client = b.connector.client()
    assert planted
    assert all(client.get(k) == FOREIGN_RECORD for k in planted)


async def _call(mode: str, b: RedisBackend, name: str, *args: Any, **kw: Any) -> Any:
    if mode == "sync":
        return getattr(b, name)(*args, **kw)
    return await getattr(b, f"a{name}")(*args, **kw)


def _plant_records(b: RedisBackend, monkeypatch: pytest.MonkeyPatch, *scripts: Any) -> list[Any]:
    """Put `FOREIGN_RECORD` under the op key of each next call of `scripts` before it runs."""
    planted: list[Any] = []
    client = b.connector.client()
    for module in (_common, _files):
        real = module.Idempotent

        def foreign(
            script: Any, op_key: Any, keys: Any, args: Any, _real: Any = real, **opts: Any
        ) -> Any:
            if script in scripts:
                client.set(op_key, FOREIGN_RECORD, px=_OP_TTL_MS)
                planted.append(op_key.encode() if isinstance(op_key, str) else op_key)
            return _real(script, op_key, keys, args, **opts)

        monkeypatch.setattr(module, "Idempotent", foreign)
    return planted


# ----------------------------------------------------------------------------- op records


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("size", [100, 10_000], ids=["inline", "chunked"])
async def test_a_write_replaying_a_non_utf8_op_record_is_outcome_unknown(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, mode: str, size: int
) -> None:
    b: RedisBackend = make_backend()
    assert b.write("/f.txt", "o" * size).error is None
    before = _keys(b)
    planted = _plant_records(b, monkeypatch, _WRITE)
    with pytest.raises(OutcomeUnknownError, match="may or may not"):
        await _call(mode, b, "write", "/f.txt", "n" * size)
    with pytest.raises(OutcomeUnknownError):
        await _call(mode, b, "upload_files", [("/f.txt", b"u" * size)])
    monkeypatch.undo()
    assert len(planted) == 2
    _still_planted(b, planted)
    assert _keys(b) == before


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_edit_replaying_a_non_utf8_op_record_is_outcome_unknown(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    b: RedisBackend = make_backend()
    assert b.write("/e.txt", "one two\n").error is None
    before = _keys(b)
    planted = _plant_records(b, monkeypatch, _EDIT)
    with pytest.raises(OutcomeUnknownError, match="may or may not"):
        await _call(mode, b, "edit", "/e.txt", "one", "1")
    monkeypatch.undo()
    assert len(planted) == 1
    _still_planted(b, planted)
    assert _keys(b) == before


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_delete_replaying_a_non_utf8_op_record_is_outcome_unknown(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # int(b'\xff\xfe') raised a bare ValueError
    b: RedisBackend = make_backend()
    assert b.write("/d.txt", "x").error is None
    before = _keys(b)
    planted = _plant_records(b, monkeypatch, _DELETE)
    with pytest.raises(OutcomeUnknownError, match="may or may not"):
        await _call(mode, b, "delete", "/d.txt")
    monkeypatch.undo()
    assert len(planted) == 1
    _still_planted(b, planted)
    assert _keys(b) == before


# ----------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("field", ["e", "ca", "ma", "b", "n", "g"])
async def test_a_non_utf8_metadata_field_is_a_serialization_error(
    make_backend: Any, mode: str, field: str
) -> None:
    b: RedisBackend = make_backend()
    size = 10_000 if field == "g" else 100  # the generation names a chunked file's chunks
    assert b.write("/m.txt", "z" * size).error is None
    ns = b.resolve_namespace()
    b.connector.client().hset(b._k(ns, "m", "/m.txt"), field, BAD)
    before = _keys(b)
    with pytest.raises(SerializationError):
        await _call(mode, b, "read", "/m.txt")
    if field in ("e", "b", "n", "g"):
        with pytest.raises(SerializationError):
            await _call(mode, b, "download_files", ["/m.txt"])
    assert _keys(b) == before


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("field", ["v", "x", "s", BAD.decode("latin-1")])
async def test_stat_of_non_utf8_metadata_is_a_serialization_error(
    make_backend: Any, mode: str, field: str
) -> None:
    # a value (int(b'\xff\xfe'): ValueError) or a field name (HGETALL) that is not UTF-8
    b: RedisBackend = make_backend()
    assert b.write("/s.txt", "abc").error is None
    ns = b.resolve_namespace()
    name = field.encode("latin-1")
    b.connector.client().hset(b._k(ns, "m", "/s.txt"), name, BAD)
    before = _keys(b)
    with pytest.raises(SerializationError):
        await _call(mode, b, "stat", "/s.txt")
    assert _keys(b) == before


# ----------------------------------------------------------------------------- indexes


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["file", "directory", "expired"])
async def test_a_non_utf8_directory_member_is_a_serialization_error(
    make_backend: Any, mode: str, kind: str
) -> None:
    b: RedisBackend = make_backend()
    assert b.write("/dir/a.txt", "a").error is None
    ns = b.resolve_namespace()
    client = b.connector.client()
    if kind == "file":
        client.hset(b._k(ns, "d", "/dir/"), b"\xff.txt", b"f")
        client.hset(b._k(ns, "files"), b"/dir/\xff.txt", b"1|0|utf-8|2026-01-01")
    elif kind == "directory":
        client.hset(b._k(ns, "d", "/dir/"), b"\xff/", b"1")
    else:  # an expired path ls must purge first
        client.zadd(b._k(ns, "exp"), {b"/dir/\xff.txt": 1})
    before = _keys(b)
    with pytest.raises(SerializationError):
        await _call(mode, b, "ls", "/dir/")
    assert _keys(b) == before


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_non_utf8_indexed_path_is_a_serialization_error(
    make_backend: Any, mode: str
) -> None:
    b: RedisBackend = make_backend()
    assert b.write("/dir/a.txt", "a").error is None
    ns = b.resolve_namespace()
    client = b.connector.client()
    client.zadd(b._k(ns, "idx"), {b"/dir/\xc3(.txt": 0})
    client.hset(b._k(ns, "files"), b"/dir/\xc3(.txt", b"1|0|utf-8|2026-01-01T00:00:00+00:00")
    before = _keys(b)
    with pytest.raises(SerializationError):
        await _call(mode, b, "glob", "**/*.txt")
    with pytest.raises(SerializationError):
        await _call(mode, b, "grep", "a")
    with pytest.raises(SerializationError):
        await _call(mode, b, "delete", "/dir/")
    assert _keys(b) == before


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_non_utf8_expired_path_leaves_a_write_committed(
    make_backend: Any, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A write whose script saw expired index entries purges a batch of them after it
    # committed: a path there that is not UTF-8 raised a bare UnicodeDecodeError from a
    # write that had been applied. Now the purge fails typed, is logged, and the write's
    # answer stands; the foreign entry is left alone.
    b: RedisBackend = make_backend()
    ns = b.resolve_namespace()
    client = b.connector.client()
    exp = b._k(ns, "exp")
    client.zadd(exp, {b"/\xff.txt": 1})
    with caplog.at_level(logging.WARNING, logger="deepagents_redis.fs"):
        got = await _call(mode, b, "write", "/w.txt", "w")
    assert got.error is None
    assert b.read("/w.txt").file_data["content"] == "w"
    assert client.zscore(exp, b"/\xff.txt") == 1
    assert "not UTF-8" in caplog.text


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_non_utf8_blob_folder_id_is_a_serialization_error(
    make_backend: Any, mode: str
) -> None:
    b: RedisBackend = make_backend(spill_threshold=1024)
    ns = b.resolve_namespace()
    b.connector.client().set(b._k(ns, "blobid"), BAD)
    before = _keys(b)
    with pytest.raises(SerializationError):
        await _call(mode, b, "write", "/big.txt", "b" * 4096)
    assert _keys(b) == before
    assert list(b.blob_store.list("")) == []


# ----------------------------------------------------------------------------- content


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("size", [100, 10_000], ids=["inline", "chunked"])
async def test_a_text_file_whose_content_is_not_utf8_reads_as_filesystem_backend(
    make_backend: Any, mode: str, size: int
) -> None:
    # FilesystemBackend: ReadResult(error=f"Error reading file '{path}': {decode error}")
    b: RedisBackend = make_backend()
    assert b.write("/c.txt", "c" * size).error is None
    ns = b.resolve_namespace()
    client = b.connector.client()
    meta = b._k(ns, "m", "/c.txt")
    if size <= 4096:
        client.hset(meta, "d", BAD + b"c" * (size - 2))
    else:
        gen = client.hget(meta, "g").decode()
        client.hset(b._k(ns, "c", "/c.txt"), f"{gen}:0", BAD + b"c" * 4094)
    before = _keys(b)
    got = await _call(mode, b, "read", "/c.txt")
    with pytest.raises(UnicodeDecodeError) as raised:
        BAD.decode("utf-8")
    assert got.error == f"Error reading file '/c.txt': {raised.value}"
    assert got.file_data is None
    assert _keys(b) == before


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_edit_of_content_that_is_not_utf8_is_an_error_result(
    make_backend: Any, mode: str
) -> None:
    # a spilled file is edited on the client (read, replace, conditional write)
    b: RedisBackend = make_backend(spill_threshold=1024)
    assert b.write("/c.txt", "c" * 2048).error is None
    stat = b.stat("/c.txt")
    assert stat is not None
    assert stat.blob_ref
    b.blob_store.put(stat.blob_ref, BAD + b"c" * 2046)
    before = _keys(b)
    got = await _call(mode, b, "edit", "/c.txt", "cc", "d", replace_all=True)
    assert got.error is not None
    assert got.error.startswith("Error editing file '/c.txt': 'utf-8' codec can't decode")
    assert _keys(b) == before
    assert b.blob_store.get(stat.blob_ref) == BAD + b"c" * 2046


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("size", [100, 10_000], ids=["inline", "chunked"])
async def test_grep_skips_a_file_whose_content_is_not_utf8(
    make_backend: Any, mode: str, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    # FilesystemBackend skips a file it cannot decode; the other files' matches stay
    b: RedisBackend = make_backend()
    assert b.write("/bad.txt", "needle\n" * (size // 7)).error is None
    assert b.write("/good.txt", "a needle\n").error is None
    ns = b.resolve_namespace()
    client = b.connector.client()
    meta = b._k(ns, "m", "/bad.txt")
    if size <= 4096:
        client.hset(meta, "d", b"needle " + BAD + b"\n")
    else:
        gen = client.hget(meta, "g").decode()
        client.hset(b._k(ns, "c", "/bad.txt"), f"{gen}:1", b"needle " + BAD + b"\n" * 4087)
    before = _keys(b)
    with caplog.at_level(logging.WARNING, logger="deepagents_redis.fs"):
        got = await _call(mode, b, "grep", "needle")
    assert got.error is None
    assert got.matches == [{"path": "/good.txt", "line": 1, "text": "a needle"}]
    assert "/bad.txt" in caplog.text
    assert _keys(b) == before


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_download_of_damaged_base64_is_a_serialization_error(
    make_backend: Any, mode: str
) -> None:
    # bad padding raised a bare binascii.Error; other foreign bytes were dropped silently
    b: RedisBackend = make_backend()
    assert b.upload_files([("/bin.dat", b"\x00\x01\x02\xff")])[0].error is None
    ns = b.resolve_namespace()
    b.connector.client().hset(b._k(ns, "m", "/bin.dat"), "d", b"AAEC" + BAD + b"==")
    before = _keys(b)
    with pytest.raises(SerializationError):
        await _call(mode, b, "download_files", ["/bin.dat"])
    assert _keys(b) == before


# ----------------------------------------------------------------------------- summaries


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["summary", "nul"])
async def test_a_damaged_index_entry_is_a_serialization_error(
    make_backend: Any, mode: str, kind: str
) -> None:
    # A summary that is not 'size|expire_at|encoding|modified_at' raised a bare ValueError
    # (ls) or IndexError (glob); a path holding a NUL put the listing's pairs out of step
    # (a bare ValueError from zip).
    b: RedisBackend = make_backend()
    assert b.write("/dir/a.txt", "a").error is None
    ns = b.resolve_namespace()
    client = b.connector.client()
    name = b"b.txt" if kind == "summary" else b"b\x00c.txt"
    summary = b"abc|0|utf-8" if kind == "summary" else b"1|0|utf-8|2026-01-01"
    client.zadd(b._k(ns, "idx"), {b"/dir/" + name: 0})
    client.hset(b._k(ns, "files"), b"/dir/" + name, summary)
    client.hset(b._k(ns, "d", "/dir/"), name, b"f")
    before = _keys(b)
    with pytest.raises(SerializationError):
        await _call(mode, b, "glob", "**/*.txt")
    if kind == "summary":
        with pytest.raises(SerializationError):
            await _call(mode, b, "ls", "/dir/")
    assert _keys(b) == before


# ----------------------------------------------------------------------------- blob refs


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("call", ["delete", "write"])
async def test_a_non_utf8_blob_ref_of_an_applied_change_is_left_with_a_warning(
    make_backend: Any, mode: str, call: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The script applied and answered the replaced or deleted file's blob ref: one that is
    # not UTF-8 raised a bare UnicodeDecodeError from a change that had been made.
    b: RedisBackend = make_backend()
    assert b.write("/r.txt", "r").error is None
    ns = b.resolve_namespace()
    b.connector.client().hset(b._k(ns, "m", "/r.txt"), "b", BAD)
    with caplog.at_level(logging.WARNING, logger="deepagents_redis.fs"):
        if call == "delete":
            got = await _call(mode, b, "delete", "/r.txt")
        else:
            got = await _call(mode, b, "write", "/r.txt", "new")
    assert got.error is None
    assert "not UTF-8" in caplog.text
    if call == "delete":
        assert b.stat("/r.txt") is None
    else:
        assert b.read("/r.txt").file_data["content"] == "new"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_gc_leaves_a_non_utf8_blob_ref_with_a_warning(
    make_backend: Any, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    b: RedisBackend = make_backend()
    assert b.write("/g.txt", "g").error is None
    ns = b.resolve_namespace()
    b.connector.client().zadd(b._k(ns, "blobs"), {BAD: 1})
    with caplog.at_level(logging.WARNING, logger="deepagents_redis.fs"):
        removed = await _call(mode, b, "gc")
    assert removed == 0
    assert "not UTF-8" in caplog.text
    assert b.read("/g.txt").file_data["content"] == "g"
