"""Review of the foreign-bytes changes (f3ab153, a8b0171): good data reads as before.

The strict base64 decode of `download_files`, the typed decode errors of `_s`, the op-reply
checks of write/edit/delete and grep's skipping of undecodable files must leave every path
of valid data unchanged: binary uploads of any size (inline, chunked, spilled), empty files,
non-ASCII paths and text (multi-byte characters across chunk boundaries), grep order and
max_count, ls/glob. And grep's skip of an undecodable file must not cost valid files their
matches.

Every test runs on the standalone server and on the cluster (`redis_target`), sync and async.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from deepagents_redis.fs import RedisBackend

pytestmark = pytest.mark.integration

BAD = b"\xff\xfe"  # never UTF-8


async def _call(mode: str, b: RedisBackend, name: str, *args: Any, **kw: Any) -> Any:
    if mode == "sync":
        return getattr(b, name)(*args, **kw)
    return await getattr(b, f"a{name}")(*args, **kw)


# ----------------------------------------------------------------------------- binary files


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    "size",
    [1, 2, 3, 4, 3071, 3072, 3073, 4096, 12_289, 49_153, 100_001],
    ids=lambda n: f"{n}B",
)
async def test_binary_uploads_of_every_layout_download_as_uploaded(
    make_backend: Any, mode: str, size: int
) -> None:
    # base64 of every padding length (0, 1, 2 '='), inline, chunked (4 KB chunks: a chunk
    # boundary inside a base64 quantum) and spilled (64 KB): the strict decode takes them all
    b: RedisBackend = make_backend()
    data = b"\xff" + os.urandom(size - 1)
    path = f"/bin/f{size}.png"
    up = await _call(mode, b, "upload_files", [(path, data)])
    assert up[0].error is None
    stat = b.stat(path)
    assert stat is not None
    assert stat.encoding == "base64"
    got = await _call(mode, b, "download_files", [path])
    assert got[0].error is None
    assert got[0].content == data
    read = await _call(mode, b, "read", path)
    assert read.error is None


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_empty_text_and_non_ascii_paths_round_trip(make_backend: Any, mode: str) -> None:
    b: RedisBackend = make_backend()
    files = [
        ("/données/vide.bin", b""),
        ("/données/ファイル.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256))),
        ("/données/テキスト.txt", "héllo wörld ✓\n".encode()),
    ]
    up = await _call(mode, b, "upload_files", files)
    assert [r.error for r in up] == [None, None, None]
    got = await _call(mode, b, "download_files", [p for p, _ in files])
    assert [(r.path, r.content, r.error) for r in got] == [(p, c, None) for p, c in files]
    ls = await _call(mode, b, "ls", "/données")
    assert ls.error is None
    assert [e["path"] for e in ls.entries] == sorted(p for p, _ in files)
    glob = await _call(mode, b, "glob", "*.png", "/données")
    assert [m["path"] for m in glob.matches] == ["/données/ファイル.png"]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_multibyte_text_across_chunk_boundaries_reads_edits_and_greps(
    make_backend: Any, mode: str
) -> None:
    # 4 KB chunks: 'é' (2 bytes) and '✓' (3 bytes) straddle chunk boundaries; each chunk
    # alone is no valid UTF-8, the file is
    b: RedisBackend = make_backend()
    line = "a" * 4094 + "é✓ needle\n"
    content = line * 5
    assert (await _call(mode, b, "write", "/ü/big.txt", content)).error is None
    assert b.stat("/ü/big.txt").chunks > 1  # type: ignore[union-attr]
    read = await _call(mode, b, "read", "/ü/big.txt", 0, 10)
    assert read.error is None
    assert read.file_data["content"].count("é✓ needle") == 5
    grep = await _call(mode, b, "grep", "é✓ needle", "/ü")
    assert grep.error is None
    assert [(m["path"], m["line"]) for m in grep.matches] == [
        ("/ü/big.txt", n) for n in range(1, 6)
    ]
    edit = await _call(mode, b, "edit", "/ü/big.txt", "é✓", "ß", True)
    assert edit.error is None
    assert edit.occurrences == 5
    got = await _call(mode, b, "download_files", ["/ü/big.txt"])
    assert got[0].content == content.replace("é✓", "ß").encode()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_write_edit_delete_outcomes_are_certain(make_backend: Any, mode: str) -> None:
    # the op replies' new checks take every reply of the scripts: OK, CONFLICT, NOTFOUND
    b: RedisBackend = make_backend()
    assert (await _call(mode, b, "write", "/w.txt", "one two two")).error is None
    stale = await _call(mode, b, "write", "/w.txt", "x", expected_version=0)
    assert stale.error is not None
    assert "expected version 0" in stale.error
    edit = await _call(mode, b, "edit", "/w.txt", "two", "three", True)
    assert edit.error is None
    assert edit.occurrences == 2
    missing = await _call(mode, b, "edit", "/none.txt", "a", "b")
    assert missing.error is not None
    assert "not found" in missing.error
    deleted = await _call(mode, b, "delete", "/w.txt")
    assert deleted.error is None
    assert (await _call(mode, b, "read", "/w.txt")).error is not None
    assert (await _call(mode, b, "delete", "/w.txt")).error is not None


# ----------------------------------------------------------------------------- grep skips


def _plant_undecodable(b: RedisBackend, path: str, lines: int) -> None:
    assert b.write(path, "needle\n" * lines).error is None
    ns = b.resolve_namespace()
    b.connector.client().hset(b._k(ns, "m", path), "d", (b"needle " + BAD + b"\n") * lines)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("max_count", [1, 2, 3, None])
async def test_grep_skip_of_an_undecodable_file_keeps_later_files_matches(
    make_backend: Any, mode: str, max_count: int | None, caplog: pytest.LogCaptureFixture
) -> None:
    # The GREP script counted the skipped file's matches against max_count's budget and
    # stopped after it; the files after it went unsearched and the grep answered complete
    # (max_count=1: no match at all, not truncated).
    b: RedisBackend = make_backend()
    _plant_undecodable(b, "/a.txt", 3)
    for name in ("/b.txt", "/c.txt", "/d.txt"):
        assert b.write(name, "a needle\n").error is None
    with caplog.at_level(logging.WARNING, logger="deepagents_redis.fs"):
        got = await _call(mode, b, "grep", "needle", max_count=max_count)
    assert got.error is None
    want = [{"path": p, "line": 1, "text": "a needle"} for p in ("/b.txt", "/c.txt", "/d.txt")]
    cap = 3 if max_count is None else max_count
    assert got.matches == want[:cap]
    assert bool(got.truncated) == (cap < 3)
    assert "/a.txt" in caplog.text


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_grep_skip_between_valid_files_keeps_order(make_backend: Any, mode: str) -> None:
    b: RedisBackend = make_backend()
    assert b.write("/a.txt", "needle 1\nx\nneedle 3\n").error is None
    _plant_undecodable(b, "/b.txt", 2)
    assert b.write("/c.txt", "needle\n").error is None
    _plant_undecodable(b, "/d.txt", 1)
    assert b.write("/e.txt", "x\nneedle e\n").error is None
    got = await _call(mode, b, "grep", "needle", max_count=4)
    assert got.error is None
    assert [(m["path"], m["line"]) for m in got.matches] == [
        ("/a.txt", 1),
        ("/a.txt", 3),
        ("/c.txt", 1),
        ("/e.txt", 2),
    ]
    assert not got.truncated
