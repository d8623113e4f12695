"""Review of the foreign-bytes edges left after f3ab153/a8b0171/22f28d4.

- An inline file whose content is not UTF-8 anywhere, not only in a line with the match:
  the EDIT script wrote the edit into it (the read and the client's edit path answer an
  error result), and the GREP script answered its matching lines (grep skips such a file).
  Both now check the content in Lua (utf8.lua, checked here against Python's decoder).
- A chunked file whose bytes are not UTF-8 only after grep's `max_count` stopped: the
  matches found before stand (`truncated=True`), as deepagents' FilesystemBackend answers
  (it stops at the cap without reading further); without a cap it is skipped. Pinned.
- The listing's lexical range ended at `prefix + '\\xff'`, so an indexed member whose byte
  after the prefix is 0xff (none is UTF-8: another program's) was passed over in silence
  where every other non-UTF-8 member is a SerializationError. Valid paths of every kind
  (U+00FF, U+FFFF, astral characters) list as before.
- A listing whose members hold NULs was split on them: two NULs passed the parity check,
  one (grep's paths-only listing) was never checked; both turned one member into two paths.

Every test runs on the standalone server and on the cluster (`redis_target`), sync and async.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import pytest
from deepagents.backends import FilesystemBackend
from deepagents_redis.core import SerializationError, load_lua
from deepagents_redis.fs import RedisBackend
from deepagents_redis.fs._common import _GREP_CHUNK_BATCH

pytestmark = pytest.mark.integration

BAD = b"\xff\xfe"  # never UTF-8
SUMMARY = b"1|0|utf-8|2026-01-01T00:00:00+00:00"


async def _call(mode: str, b: RedisBackend, name: str, *args: Any, **kw: Any) -> Any:
    if mode == "sync":
        return getattr(b, name)(*args, **kw)
    return await getattr(b, f"a{name}")(*args, **kw)


def _keys(b: RedisBackend) -> dict[bytes, Any]:
    """Every data key of the backend's namespace with its content (op records left out)."""
    client = b.connector.client()
    ns = b.resolve_namespace()
    out: dict[bytes, Any] = {}
    for key in sorted(set(client.scan_iter(match=f"*:fs:{{{ns}}}:*", count=1000))):
        kind = client.type(key)
        if kind == b"hash":
            out[key] = client.hgetall(key)
        elif kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"string":
            out[key] = client.get(key)
    return out


def _plant_inline(b: RedisBackend, path: str, content: bytes) -> None:
    ns = b.resolve_namespace()
    b.connector.client().hset(b._k(ns, "m", path), "d", content)


# ----------------------------------------------------------------------------- utf8.lua

# Bytes at every boundary of UTF-8's ranges: ASCII, continuation, overlong leads, surrogate
# and past-U+10FFFF forms.
EDGES = [
    0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0,
    0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF,
]  # fmt: skip


def _utf8(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return 0
    return 1


def test_is_utf8_agrees_with_pythons_strict_decoder(make_backend: Any) -> None:
    # every sequence of 1 to 4 edge bytes (406,900), and valid text of every length class
    b: RedisBackend = make_backend()
    ns = b.resolve_namespace()
    source = load_lua("deepagents_redis.fs", "utf8.lua") + (
        "local out = {}\nfor i = 1, #ARGV do out[i] = is_utf8(ARGV[i]) and 1 or 0 end\nreturn out\n"
    )
    client = b.connector.client()
    key = b._k(ns, "probe")  # a key of the namespace's slot (a Cluster routes by it)
    cases = [bytes(t) for n in range(1, 5) for t in itertools.product(EDGES, repeat=n)]
    cases += [
        s.encode()
        for s in [
            *["", "ÿ", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uffff", "\U00010000"],
            *["😀", "\U0003ffff", "\U00040000", "\U000fffff", "\U00100000", "\U0010ffff"],
        ]
    ]
    cases += [("a" * 100 + "é✓😀" + "日本\U0010ffff").encode() * 50]
    cases += [c + BAD for c in cases[-15:]] + [BAD + c for c in cases[-15:]]
    # around the 4,000-byte slices has_high_byte reads
    cases += [b"a" * n + tail for n in (3998, 3999, 4000, 7999) for tail in (b"\xc3\xa9", b"\x80")]
    for start in range(0, len(cases), 5000):
        batch = cases[start : start + 5000]
        got = client.eval(source, 1, key, *batch)
        assert got == [_utf8(c) for c in batch]


# ----------------------------------------------------------------------------- edit


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("where", ["line", "other-line"])
async def test_an_edit_of_an_inline_file_that_is_not_utf8_is_the_reads_error(
    make_backend: Any, mode: str, where: str
) -> None:
    # The EDIT script replaced 'hello' and wrote the rest's foreign bytes back (mixed bytes,
    # a new version); the read of the same file answers an error result.
    b: RedisBackend = make_backend()
    assert b.write("/e.txt", "hello world\nbye\n").error is None
    bad = b"hello " + BAD + b"\nbye\n" if where == "line" else b"hello world\n" + BAD + b"\n"
    _plant_inline(b, "/e.txt", bad)
    before = _keys(b)
    read = await _call(mode, b, "read", "/e.txt")
    assert read.error is not None
    assert read.error.startswith("Error reading file '/e.txt': 'utf-8' codec can't decode")
    got = await _call(mode, b, "edit", "/e.txt", "hello", "howdy")
    assert got.error is not None
    assert got.error.startswith("Error editing file '/e.txt': 'utf-8' codec can't decode")
    assert _keys(b) == before


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    "text",
    ["ÿ café ✓", "日本語 \uffff", "emoji 😀 \U0010ffff", "ascii only"],
    ids=["latin", "bmp", "astral", "ascii"],
)
async def test_edits_of_valid_text_stay_in_the_script(
    make_backend: Any, mode: str, text: str
) -> None:
    # the check takes every valid text: the edit is the script's, the client's path (which
    # loads the file first) is not taken
    b: RedisBackend = make_backend()
    content = f"{text}\nold {text}\n"
    assert b.write("/v.txt", content).error is None

    def no_fallback(*args: Any, **kw: Any) -> Any:
        raise AssertionError("the edit went the client's way")

    b._load = no_fallback  # type: ignore[method-assign]
    got = await _call(mode, b, "edit", "/v.txt", "old", "new")
    assert got.error is None
    assert got.occurrences == 1
    del b._load
    assert b.read("/v.txt", 0, 10).file_data["content"] == content.replace("old", "new")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("bad", [False, True], ids=["valid", "not-utf8"])
async def test_a_large_non_ascii_inline_file_is_edited_by_the_client(
    make_backend: Any, mode: str, bad: bool
) -> None:
    # over utf8.lua's UTF8_CHECK_MAX (64 KiB) non-ASCII text goes the client's way, whose
    # answer is the same: the edit, or the read's error
    b: RedisBackend = make_backend(chunk_size=256 * 1024, spill_threshold=1024 * 1024)
    content = "é" * 40_000 + "\nold\n"
    assert b.write("/l.txt", content).error is None
    stat = b.stat("/l.txt")
    assert stat is not None
    assert stat.chunks == 0
    assert not stat.blob_ref
    if bad:
        _plant_inline(b, "/l.txt", content.encode() + BAD)
    before = _keys(b)
    got = await _call(mode, b, "edit", "/l.txt", "old", "new")
    if bad:
        assert got.error is not None
        assert got.error.startswith("Error editing file '/l.txt': 'utf-8' codec can't decode")
        assert _keys(b) == before
    else:
        assert got.error is None
        assert b.read("/l.txt", 0, 10).file_data["content"] == content.replace("old", "new")


# ----------------------------------------------------------------------------- grep


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("max_count", [1, 2, None])
async def test_grep_skips_an_inline_file_not_utf8_outside_its_matching_lines(
    make_backend: Any, mode: str, max_count: int | None, caplog: pytest.LogCaptureFixture
) -> None:
    # the GREP script answered the valid matching lines of such a file
    b: RedisBackend = make_backend()
    assert b.write("/a.txt", "needle\nx\n").error is None
    assert b.write("/b.txt", "b needle\n").error is None
    _plant_inline(b, "/a.txt", b"needle\n" + BAD + b"\n")
    before = _keys(b)
    with caplog.at_level(logging.WARNING, logger="deepagents_redis.fs"):
        got = await _call(mode, b, "grep", "needle", max_count=max_count)
    assert got.error is None
    assert got.matches == [{"path": "/b.txt", "line": 1, "text": "b needle"}]
    assert not got.truncated
    assert "/a.txt" in caplog.text
    assert _keys(b) == before


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_grep_checks_many_inline_files_over_several_calls(
    make_backend: Any, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    # 40 files of 60 KB with a match each pass the script's 1 MiB check budget per call:
    # the calls resume where the budget ran out, none is lost, the bad one is skipped
    b: RedisBackend = make_backend(chunk_size=64 * 1024, spill_threshold=1024 * 1024)
    body = ("é" * 30 + "\n") * 950 + "needle\n"
    for i in range(40):
        assert b.write(f"/m/{i:02}.txt", body).error is None
    _plant_inline(b, "/m/17.txt", body.encode() + BAD)
    with caplog.at_level(logging.WARNING, logger="deepagents_redis.fs"):
        got = await _call(mode, b, "grep", "needle", "/m")
    assert [m["path"] for m in got.matches] == [f"/m/{i:02}.txt" for i in range(40) if i != 17]
    assert "/m/17.txt" in caplog.text


def _plant_chunked_bad_tail(b: RedisBackend, path: str) -> None:
    # 4 KiB chunks, streamed 8 at a time (_GREP_CHUNK_BATCH): matches in the first batch,
    # foreign bytes only in the last chunk, batches later
    assert b.write(path, ("needle\n" + "x" * 500 + "\n") * 150).error is None
    stat = b.stat(path)
    assert stat is not None
    assert stat.chunks > 2 * _GREP_CHUNK_BATCH
    ns = b.resolve_namespace()
    client = b.connector.client()
    gen = client.hget(b._k(ns, "m", path), "g").decode()
    field = f"{gen}:{stat.chunks - 1}"
    last = client.hget(b._k(ns, "c", path), field)
    client.hset(b._k(ns, "c", path), field, BAD + last[2:])


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_chunked_file_not_utf8_after_max_count_stands_like_filesystem_backend(
    make_backend: Any, mode: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Policy (pinned): grep streams a chunked file and stops at max_count without reading
    # the rest, as FilesystemBackend's search does (bounded work and memory); foreign bytes
    # past that point are not seen, so the matches before them stand, truncated. A grep that
    # reaches them skips the file (with a warning) like any file it cannot decode.
    b: RedisBackend = make_backend(spill_threshold=1024 * 1024)
    _plant_chunked_bad_tail(b, "/c.txt")
    got = await _call(mode, b, "grep", "needle", max_count=2)
    assert got.error is None
    assert got.truncated
    assert got.matches == [
        {"path": "/c.txt", "line": 1, "text": "needle"},
        {"path": "/c.txt", "line": 3, "text": "needle"},
    ]
    # the same bytes on disk, FilesystemBackend's own search (no ripgrep)
    (tmp_path / "fsb").mkdir()
    (tmp_path / "fsb" / "c.txt").write_bytes(_raw(b, "/c.txt"))
    fsb = FilesystemBackend(root_dir=tmp_path / "fsb", virtual_mode=True)
    fsb._ripgrep_search = lambda *a, **k: (None, False)  # type: ignore[method-assign]
    ref = fsb.grep("needle", "/", max_count=2)
    assert ref.truncated
    assert [(m["path"], m["line"], m["text"]) for m in ref.matches] == [
        (m["path"], m["line"], m["text"]) for m in got.matches
    ]
    with caplog.at_level(logging.WARNING, logger="deepagents_redis.fs"):
        whole = await _call(mode, b, "grep", "needle")
    assert whole.error is None
    assert whole.matches == []
    assert "/c.txt" in caplog.text


def _raw(b: RedisBackend, path: str) -> bytes:
    ns = b.resolve_namespace()
    client = b.connector.client()
    meta = client.hgetall(b._k(ns, "m", path))
    chunks = client.hgetall(b._k(ns, "c", path))
    gen = meta[b"g"].decode()
    n = int(meta[b"n"])
    return b"".join(chunks[f"{gen}:{i}".encode()] for i in range(n))


# ----------------------------------------------------------------------------- listing bounds

VALID_NAMES = ["ÿ.txt", "\uffff.txt", "\U0010ffff.txt", "😀/deep.txt", "z.txt", "\x7f.txt"]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("top", ["/", "/ÿ", "/\uffff", "/\U0010ffff"])
async def test_every_valid_path_lists_under_every_prefix(
    make_backend: Any, mode: str, top: str
) -> None:
    # the range end is no issue for UTF-8 (no byte 0xff); pinned for the highest characters
    b: RedisBackend = make_backend()
    base = top.rstrip("/") + "/"
    paths = sorted(base + n for n in VALID_NAMES)
    siblings = [top.rstrip("/") + "x/s.txt", top.rstrip("/") + "\U0010ffff/s.txt"]
    for p in paths + (siblings if top != "/" else []):
        assert b.write(p, "needle").error is None
    glob = await _call(mode, b, "glob", "**", top)
    assert sorted(m["path"] for m in glob.matches) == paths
    grep = await _call(mode, b, "grep", "needle", top)
    assert [m["path"] for m in grep.matches] == paths
    ls = await _call(mode, b, "ls", top)
    assert ls.error is None
    assert [e["path"] for e in ls.entries] == sorted(
        base + n.split("/")[0] + ("/" if "/" in n else "") for n in VALID_NAMES
    )
    if top != "/":  # delete's probe for what is left under the prefix
        assert (await _call(mode, b, "delete", base)).error is None
        left = await _call(mode, b, "glob", "**", "/")
        assert sorted(m["path"] for m in left.matches) == sorted(siblings)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("name", [b"\xff.txt", b"\xff\xff", b"\xfe.txt"], ids=["ff", "ffff", "fe"])
async def test_a_foreign_member_at_0xff_is_a_serialization_error_like_any_other(
    make_backend: Any, mode: str, name: bytes
) -> None:
    # '\xfe' raised SerializationError, '\xff' was left out of glob and grep in silence
    b: RedisBackend = make_backend()
    assert b.write("/dir/a.txt", "a").error is None
    ns = b.resolve_namespace()
    client = b.connector.client()
    client.zadd(b._k(ns, "idx"), {b"/dir/" + name: 0})
    client.hset(b._k(ns, "files"), b"/dir/" + name, SUMMARY)
    before = _keys(b)
    with pytest.raises(SerializationError):
        await _call(mode, b, "glob", "**", "/dir")
    with pytest.raises(SerializationError):
        await _call(mode, b, "grep", "a", "/dir")
    with pytest.raises(SerializationError):
        await _call(mode, b, "glob", "**")
    with pytest.raises(SerializationError):
        await _call(mode, b, "delete", "/dir/")
    assert _keys(b) == before


# ----------------------------------------------------------------------------- NULs


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("nuls", [1, 2, 3])
async def test_listed_members_holding_nuls_are_a_serialization_error(
    make_backend: Any, mode: str, nuls: int
) -> None:
    # an even count of NULs passed the parity check (glob answered '/dir/b', 'c.txt', ...);
    # grep's paths-only listing took any count (it searched '/dir/b' and 'c.txt')
    b: RedisBackend = make_backend()
    assert b.write("/dir/a.txt", "a").error is None
    ns = b.resolve_namespace()
    client = b.connector.client()
    names = [b"b%d\x00c.txt" % i for i in range(nuls)]
    for name in names:
        client.zadd(b._k(ns, "idx"), {b"/dir/" + name: 0})
        client.hset(b._k(ns, "files"), b"/dir/" + name, SUMMARY)
        client.hset(b._k(ns, "d", "/dir/"), name, b"f")
    before = _keys(b)
    for call, args in [("glob", ("**/*.txt",)), ("grep", ("a",)), ("ls", ("/dir/",))]:
        with pytest.raises(SerializationError):
            await _call(mode, b, call, *args)
    # an exact file path is answered alone, its summary has no NUL
    exact = await _call(mode, b, "glob", "*", "/dir/a.txt")
    assert [m["path"] for m in exact.matches] == ["/dir/a.txt"]
    assert _keys(b) == before


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("nuls", [1, 2])
async def test_a_summary_holding_nuls_is_a_serialization_error(
    make_backend: Any, mode: str, nuls: int
) -> None:
    b: RedisBackend = make_backend()
    assert b.write("/dir/a.txt", "a").error is None
    ns = b.resolve_namespace()
    client = b.connector.client()
    client.hset(b._k(ns, "files"), b"/dir/a.txt", SUMMARY + b"\x00x" * nuls)
    before = _keys(b)
    with pytest.raises(SerializationError):
        await _call(mode, b, "ls", "/dir")
    with pytest.raises(SerializationError):
        await _call(mode, b, "glob", "**")
    assert _keys(b) == before
