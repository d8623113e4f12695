"""Adversarial review of 93ca0cb and 08e0282 (UTF-8 checks in the EDIT and GREP scripts,
prefix_end() for listings, LS/LIST field counts).

- utf8.lua against Python's strict decoder: seeded random texts mixing every valid shape with
  overlongs, surrogates, CESU-8 pairs, code points past U+10FFFF, F5..FF and truncated
  sequences, and sequences straddling has_high_byte's 4,000-byte slices and the 64 KiB
  UTF8_CHECK_MAX line.
- grep across the GREP script's 1 MiB UTF-8-check budget (the call stops and the client calls
  again from the file it stopped at): every match once, in path and line order, for every
  `max_count` around the stop; a mix of ASCII, non-ASCII (checked in Lua, or over 64 KiB and
  streamed by the client) and foreign files; path and glob filters; FilesystemBackend's own
  search on the same bytes.
- edit: results identical whichever path applies them (the script, or the client for
  non-ASCII content over 64 KiB or content that is not UTF-8), checked against deepagents'
  perform_string_replacement; an edit whose result crosses 64 KiB; replace_all with
  multi-byte strings; a lost reply re-sent applies once on both paths.
- listings: empty directories, one entry, sub-directory entries (empty summaries), and pages
  of exactly 1,000 paths and one more.

Every test runs on the standalone server and on the cluster (`redis_target`), sync and async,
except the lost-reply ones (one server shared by a lossy client and the checker).
"""

from __future__ import annotations

import logging
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.exceptions as rexc
from deepagents.backends import FilesystemBackend
from deepagents.backends.utils import perform_string_replacement
from deepagents_redis.core import RedisSettings, load_lua
from deepagents_redis.fs import RedisBackend
from deepagents_redis.fs._common import _EDIT, _GREP, _WRITE

pytestmark = pytest.mark.integration

INLINE = {"chunk_size": 300_000, "spill_threshold": 32 * 1024 * 1024}
"""Files up to 300,000 bytes stay inline, so the GREP and EDIT scripts see them."""
BAD = b"\xff\xfe"
CHECK_MAX = 64 * 1024  # utf8.lua's UTF8_CHECK_MAX
CALL_MAX = 1024 * 1024  # grep.lua's UTF8_CALL_MAX


async def _call(mode: str, b: RedisBackend, name: str, *args: Any, **kw: Any) -> Any:
    if mode == "sync":
        return getattr(b, name)(*args, **kw)
    return await getattr(b, f"a{name}")(*args, **kw)


def _raw(b: RedisBackend, path: str) -> bytes:
    got = b.download_files([path])[0]
    assert got.error is None, got.error
    assert got.content is not None
    return got.content


def _plant_inline(b: RedisBackend, path: str, content: bytes) -> None:
    """Replace an inline file's stored bytes, as another program could."""
    ns = b.resolve_namespace()
    b.connector.client().hset(b._k(ns, "m", path), "d", content)


def _utf8(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return 0
    return 1


# ----------------------------------------------------------------------------- utf8.lua

_VALID_CHARS = [
    "a", "\n", "\x00", "\x7f", "\x80", "ÿ", "\u07ff", "\u0800", "\u0fff", "\u1000", "\ucfff",
    "\ud000", "\ud7ff", "\ue000", "\ufffe", "\uffff", "\U00010000", "😀", "\U0003ffff",
    "\U00040000", "\U000fffff", "\U00100000", "\U0010ffff", "日", "é",
]  # fmt: skip
_VALID = [c.encode() for c in _VALID_CHARS]
_INVALID = [
    b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xe0\x9f\xbf", b"\xf0\x80\x80\x80",
    b"\xf0\x8f\xbf\xbf",  # overlongs
    b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xa0\xbd\xed\xb8\x80",  # surrogates, CESU-8 😀
    b"\xf4\x90\x80\x80", b"\xf7\xbf\xbf\xbf", b"\xf5\x80\x80\x80",  # past U+10FFFF
    b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xff", b"\x80", b"\xbf",
]  # fmt: skip
# every proper prefix of a multi-byte character: a sequence cut short
_TRUNCATED = sorted({v[:n] for v in _VALID if len(v) > 1 for n in range(1, len(v))})


def _random_text(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(1, 10)):
        roll = rng.random()
        if roll < 0.75:
            parts.append(rng.choice(_VALID))
        elif roll < 0.88:
            parts.append(rng.choice(_INVALID))
        elif roll < 0.96:
            parts.append(rng.choice(_TRUNCATED))
        else:
            parts.append(bytes([rng.randrange(256)]))
    return b"".join(parts)


def _is_utf8_source() -> str:
    return load_lua("deepagents_redis.fs", "utf8.lua") + (
        "local out = {}\nfor i = 1, #ARGV do out[i] = is_utf8(ARGV[i]) and 1 or 0 end\nreturn out\n"
    )


def test_is_utf8_random_texts_agree_with_python(make_backend: Any) -> None:
    b: RedisBackend = make_backend()
    client = b.connector.client()
    key = b._k(b.resolve_namespace(), "probe")  # the namespace's slot (a Cluster routes by it)
    rng = random.Random(20261207)
    cases = [_random_text(rng) for _ in range(30_000)]
    # a good or bad tail after valid non-ASCII text: every pass of the validator runs
    cases += [("é✓😀" * 20).encode() + t for t in (*_INVALID, *_TRUNCATED, *_VALID)]
    cases += [t + ("é✓😀" * 20).encode() for t in (*_INVALID, *_TRUNCATED, *_VALID)]
    assert 0 < sum(map(_utf8, cases)) < len(cases)  # both kinds, in numbers
    for start in range(0, len(cases), 5000):
        batch = cases[start : start + 5000]
        assert client.eval(_is_utf8_source(), 1, key, *batch) == [_utf8(c) for c in batch]


def test_is_utf8_at_slice_and_size_boundaries(make_backend: Any) -> None:
    # has_high_byte reads 4,000-byte slices; a character (or a cut one) on either side of
    # a slice edge, and around UTF8_CHECK_MAX, the size the callers hand over
    b: RedisBackend = make_backend()
    client = b.connector.client()
    key = b._k(b.resolve_namespace(), "probe")
    tails = [*_VALID[4:], *_INVALID, *_TRUNCATED, b"\xf0\x9f\x98\x80" + b"\x80"]
    cases = [
        b"a" * n + t + b"a" * m
        for n in (3996, 3997, 3998, 3999, 4000, 4001, 7999, 8000)
        for t in tails
        for m in (0, 1, 5)
    ]
    cases += [b"a" * (CHECK_MAX - len(t) + d) + t for t in tails for d in (-1, 0, 1)]
    # valid non-ASCII text whose last slice ends inside a 4-byte character
    cases += [("😀" * 1000 + "é" * k).encode() + t for k in range(3) for t in (b"", b"\xff")]
    batch: list[bytes] = []
    for i, case in enumerate(cases):  # calls of ~1 MB, quick for the server
        batch.append(case)
        if sum(map(len, batch)) > 1_000_000 or i == len(cases) - 1:
            assert client.eval(_is_utf8_source(), 1, key, *batch) == [_utf8(c) for c in batch]
            batch = []


# ----------------------------------------------------------------------------- grep


def _expected(files: dict[str, bytes], pattern: str) -> list[dict[str, Any]]:
    """Matches a grep of valid UTF-8 files answers, in path then line order."""
    out = []
    for path in sorted(files):
        try:
            text = files[path].decode("utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.split("\n"), 1):
            if pattern in line:
                out.append({"path": path, "line": n, "text": line})
    return out


def _filesystem_grep(tmp_path: Path, files: dict[str, bytes], pattern: str, **kw: Any) -> Any:
    root = tmp_path / f"fsb-{uuid.uuid4().hex[:6]}"
    for path, data in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    fsb = FilesystemBackend(root_dir=root, virtual_mode=True)
    fsb._ripgrep_search = lambda *a, **k: (None, False)  # type: ignore[method-assign]
    return fsb.grep(pattern, **kw)


def _ascii_file(size: int, tag: int) -> bytes:
    # needle lines near the start, the middle and the end of the file
    filler = (f"filler line {tag} " + "x" * 60 + "\n").encode()
    head = f"needle {tag} head\n".encode()
    tail = f"needle {tag} tail".encode()
    body = filler * ((size - len(head) - len(tail)) // len(filler) + 1)
    mid = len(body) // 2 // len(filler) * len(filler)
    body = body[:mid] + f"needle {tag} mid\n".encode() + body[mid:]
    data = head + body
    return data[: size - len(tail)] + tail if len(data) + len(tail) > size else data + tail


def _write_all(b: RedisBackend, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        assert b.write(path, data.decode("utf-8", "replace")).error is None
        if _utf8(data) == 0:
            _plant_inline(b, path, data)
        assert _raw(b, path) == data


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_grep_across_the_utf8_check_budget_finds_each_match_once(
    make_backend: Any, mode: str, tmp_path: Path
) -> None:
    # ASCII files with matches whose sizes put the 1 MiB check budget's stop at a file
    # boundary (4 x 256 KiB is exactly 1 MiB) and inside the next file
    b: RedisBackend = make_backend(**INLINE)
    sizes = [CALL_MAX // 4] * 4 + [CALL_MAX // 4 + 1] + [200_000] * 6 + [37]
    files = {f"/r/f{i:02d}.txt": _ascii_file(size, i) for i, size in enumerate(sizes)}
    _write_all(b, files)
    want = _expected(files, "needle")
    assert len(want) > 30
    got = await _call(mode, b, "grep", "needle")
    assert got.error is None
    assert not got.truncated
    assert got.matches == want
    assert sorted(map(str, want)) == sorted(
        map(str, _filesystem_grep(tmp_path, files, "needle", path="/").matches)
    )
    # every cap around the stops: the first matches, flagged, none twice, none lost
    for cap in (1, 11, 12, 13, 14, 15, 16, 17, len(want) - 1):
        got = await _call(mode, b, "grep", "needle", max_count=cap)
        assert got.error is None
        assert got.truncated
        assert got.matches == want[:cap], cap
    got = await _call(mode, b, "grep", "needle", max_count=len(want))
    assert got.matches == want
    assert not got.truncated


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_grep_over_a_mix_of_ascii_non_ascii_and_foreign_files(
    make_backend: Any, mode: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Many small files with matches in one batch, non-ASCII files on both sides of 64 KiB
    # (the script checks one, the client streams the other), foreign files among them, and
    # big ASCII files that spend the check budget between them.
    b: RedisBackend = make_backend(**INLINE)
    rng = random.Random(7)
    files: dict[str, bytes] = {}
    for i in range(60):
        files[f"/m/small/s{i:02d}.py"] = f"a\nneedle ✓ {i}\nb\nneedle {i}\n".encode()
    for i, extra in enumerate((-1, 0, 1, 5000)):  # around UTF8_CHECK_MAX, non-ASCII
        unit = "日本語 needle é😀\n".encode()
        data = unit * ((CHECK_MAX + extra) // len(unit))
        data += b"z" * (CHECK_MAX + extra - len(data))
        files[f"/m/big/u{i}.md"] = data
    for i in range(5):
        files[f"/m/big/a{i}.txt"] = _ascii_file(250_000, 100 + i)
    # foreign: bad bytes in a line without the match, at the start, at the end, a cut
    # 4-byte character at the end of a big file, a CESU-8 pair
    files["/m/small/s05x.py"] = b"needle one\n" + BAD + b"\n"
    files["/m/small/s10x.py"] = b"\xc0\x80needle"
    files["/m/big/u1x.md"] = ("needle é\n" * 8000).encode() + b"\xf0\x9f\x98"
    files["/m/small/s20x.py"] = b"needle \xed\xa0\xbd\xed\xb8\x80\n"
    files["/m/big/a2x.txt"] = _ascii_file(250_000, 999) + b"\xff"
    order = list(files)
    rng.shuffle(order)
    _write_all(b, {p: files[p] for p in order})
    want = _expected(files, "needle")
    foreign = {p for p, d in files.items() if not _utf8(d)}
    assert len(foreign) == 5
    # at_level on our logger: another test in the same process (the CLI's own logging set-up)
    # may have left its level above WARNING, and the whole suite then saw no warning at all
    with caplog.at_level(logging.WARNING, logger="deepagents_redis.fs"):
        got = await _call(mode, b, "grep", "needle")
    assert got.error is None
    assert got.matches == want
    assert {m["path"] for m in got.matches}.isdisjoint(foreign)
    skipped = " ".join(r.getMessage() for r in caplog.records if "grep skipped" in r.getMessage())
    assert all(p in skipped for p in foreign)
    ref = _filesystem_grep(tmp_path, {p: d for p, d in files.items() if p not in foreign}, "needle")
    assert sorted(map(str, ref.matches)) == sorted(map(str, want))
    # path and glob filters
    got = await _call(mode, b, "grep", "needle", path="/m/small", glob="*.py")
    assert got.matches == [m for m in want if m["path"].startswith("/m/small/")]
    got = await _call(mode, b, "grep", "needle", path="/m/big", glob="u*.md")
    assert got.matches == [m for m in want if m["path"].startswith("/m/big/u")]
    got = await _call(mode, b, "grep", "日本語", glob="**/*.md")
    assert got.matches == _expected({p: d for p, d in files.items() if p.endswith(".md")}, "日本語")
    # caps in the small files, whose foreign bytes the client meets before any line (a cap
    # reached inside a foreign file's own lines keeps them, as FilesystemBackend's
    # line-by-line search does: test_fs_edges_review pins that)
    small = [m for m in want if m["path"].startswith("/m/small/")]
    for cap in (1, 9, 10, 11, 59, 60, 61, len(small) - 1):
        got = await _call(mode, b, "grep", "needle", path="/m/small", max_count=cap)
        assert got.matches == small[:cap], cap
        assert got.truncated


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_grep_answers_the_same_for_non_ascii_files_on_both_sides_of_64k(
    make_backend: Any, mode: str
) -> None:
    # a valid file is never skipped for its size: exactly UTF8_CHECK_MAX bytes (checked in
    # Lua) and one more (the client's), each ending in a 4-byte character
    b: RedisBackend = make_backend(**INLINE)
    files = {}
    for extra in (0, 1):
        head = "needle ✓\n".encode()
        tail = "\nneedle 😀".encode()
        pad = CHECK_MAX + extra - len(head) - len(tail)
        files[f"/v/f{extra}.txt"] = head + b"a" * (pad - 2) + "é".encode() + tail
        assert len(files[f"/v/f{extra}.txt"]) == CHECK_MAX + extra
    _write_all(b, files)
    got = await _call(mode, b, "grep", "needle")
    assert got.matches == _expected(files, "needle")
    assert len(got.matches) == 4


class _CountsGreps(redis.Redis):
    calls = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if args[0] in ("EVALSHA", "EVAL") and _GREP.sha in args[1:2]:
            self.calls += 1
        return super().execute_command(*args, **options)


class _ACountsGreps(redis.asyncio.Redis):
    calls = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if args[0] in ("EVALSHA", "EVAL") and _GREP.sha in args[1:2]:
            self.calls += 1
        return await super().execute_command(*args, **options)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_one_grep_call_checks_less_non_ascii_text_than_ascii(
    redis_url: str, mode: str
) -> None:
    # A check of non-ASCII text runs up to 7 gsub passes and 8 scans (~8x an ASCII
    # text's single scan): counted as ASCII, one GREP call checked 16 files of 60 KB
    # holding every shape and held the server ~130 ms (its budget says ~10). Now such
    # text counts 8x against the 1 MiB per call: 2 files a call; ASCII files stay 16.
    settings = RedisSettings(url=redis_url, cluster="off", key_prefix="rv2")
    sync_client = _CountsGreps.from_url(redis_url)
    async_client = _ACountsGreps.from_url(redis_url)
    b = RedisBackend(
        client=sync_client, async_client=async_client, settings=settings,
        namespace=f"grep-cost-{uuid.uuid4().hex[:8]}", **INLINE,
    )  # fmt: skip
    try:
        line = "é✓😀\u0800\ud7ff\U00040000\U0010ffff" * 70 + "\n"
        files = {}
        for i in range(16):
            files[f"/n/f{i:02d}.txt"] = (f"needle {i}\n" + line * 38).encode()
            files[f"/a/f{i:02d}.txt"] = (f"needle {i}\n" + "x" * (len(line.encode()) * 38)).encode()
        assert 60_000 < len(files["/n/f00.txt"]) <= CHECK_MAX
        _write_all(b, files)
        for where, most in (("/n", 8), ("/a", 1)):
            sync_client.calls = async_client.calls = 0
            got = await _call(mode, b, "grep", "needle", path=where)
            assert got.matches == _expected(
                {p: d for p, d in files.items() if p.startswith(where)}, "needle"
            )
            calls = sync_client.calls + async_client.calls
            assert calls >= most if where == "/n" else calls == most, (where, calls)
    finally:
        b.close()
        await b.aclose()
        sync_client.close()
        await async_client.aclose()


# ----------------------------------------------------------------------------- edit


def _replace(text: str, old: str, new: str, replace_all: bool) -> tuple[str, int]:
    got = perform_string_replacement(text, old, new, replace_all)
    assert not isinstance(got, str), got
    return got[0], int(got[1])


EDIT_CASES = [
    # (initial text, [(old, new, replace_all), ...])
    pytest.param(
        "a" * (CHECK_MAX - 40) + "\nMARK\n",
        [("MARK", "é" * 40, False), ("é", "e", True), ("e" * 40, "😀" * 10, False)],
        id="ascii-result-crosses-64k-then-back",
    ),
    pytest.param(
        ("日本 x\n" * 7000)[: CHECK_MAX // 3 - 10] + "end",
        [("日本", "😀x", True), ("😀x", "日本", True)],
        id="non-ascii-under-64k-replace-all",
    ),
    pytest.param(
        ("日本 x\n" * 8000) + "end",
        [("日本", "😀x", True), ("x\n😀", "\nÿ", True)],
        id="non-ascii-over-64k-replace-all",
    ),
    pytest.param(
        "😀" * (CHECK_MAX // 4 - 1) + "tail",  # 65,536 bytes
        [("😀tail", "é", False), ("😀" * 3, "ab", True)],
        id="exactly-64k-of-emoji",
    ),
]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("text", "edits"), EDIT_CASES)
async def test_edits_match_deepagents_replacement_on_either_path(
    make_backend: Any, mode: str, text: str, edits: list[tuple[str, str, bool]]
) -> None:
    b: RedisBackend = make_backend(**INLINE)
    assert b.write("/e.txt", text).error is None
    for old, new, replace_all in edits:
        text, occurrences = _replace(text, old, new, replace_all)
        got = await _call(mode, b, "edit", "/e.txt", old, new, replace_all=replace_all)
        assert got.error is None, got.error
        assert got.occurrences == occurrences
        assert _raw(b, "/e.txt") == text.encode()
    # the errors are the same as well: a missing string, and a non-unique one
    got = await _call(mode, b, "edit", "/e.txt", "∅ nowhere", "x")
    assert got.error == perform_string_replacement(text, "∅ nowhere", "x", False)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_edit_of_foreign_content_changes_nothing_whatever_its_size(
    make_backend: Any, mode: str
) -> None:
    # over and under 64 KiB, bad bytes far from the match: the script hands it to the client
    # (or checks it itself), and the client answers the read's error result
    b: RedisBackend = make_backend(**INLINE)
    for n, data in enumerate(
        [
            b"MARK " + "é".encode() * 100 + b"\xed\xa0\x80",
            b"MARK " + b"a" * (CHECK_MAX + 10) + b"\xc1\xbf",
            b"MARK " + "😀".encode() * (CHECK_MAX // 4) + b"\xf0\x9f\x98",
            b"\xf4\x90\x80\x80" + b"a" * 3990 + b"MARK",
        ]
    ):
        path = f"/x{n}.txt"
        assert b.write(path, "placeholder").error is None
        _plant_inline(b, path, data)
        got = await _call(mode, b, "edit", path, "MARK", "done")
        assert got.error is not None
        assert "'utf-8' codec can't decode" in got.error
        assert _raw(b, path) == data


class _LosesOneReply(redis.Redis):
    """Applies the first call of one script, then raises a timeout as if the reply was lost."""

    sha = ""
    lost = False

    def execute_command(self, *args: Any, **options: Any) -> Any:
        reply = super().execute_command(*args, **options)
        if args[0] in ("EVALSHA", "EVAL") and self.sha in args[1:2] and not self.lost:
            self.lost = True
            raise rexc.TimeoutError("Timeout reading from socket (reply dropped by the test)")
        return reply


class _ALosesOneReply(redis.asyncio.Redis):
    sha = ""
    lost = False

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        reply = await super().execute_command(*args, **options)
        if args[0] in ("EVALSHA", "EVAL") and self.sha in args[1:2] and not self.lost:
            self.lost = True
            raise rexc.TimeoutError("Timeout reading from socket (reply dropped by the test)")
        return reply


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("path_taken", ["script", "client"])
async def test_an_edit_whose_reply_is_lost_applies_once(
    redis_url: str, mode: str, path_taken: str
) -> None:
    # Lua path: the EDIT script's reply is lost; client path (non-ASCII content over 64 KiB,
    # so the script answers FALLBACK): the WRITE script's. The re-sent call replays the first
    # reply (same op id): the edit is applied once and reported applied.
    settings = RedisSettings(url=redis_url, cluster="off", key_prefix="rv2")
    namespace = f"lost-edit-{uuid.uuid4().hex[:8]}"
    checker = RedisBackend(settings=settings, namespace=namespace, **INLINE)
    sha = _EDIT.sha if path_taken == "script" else _WRITE.sha
    text = ("é" if path_taken == "client" else "e") * (CHECK_MAX // 2 + 10) + " ab"
    sync_client = _LosesOneReply.from_url(redis_url)
    async_client = _ALosesOneReply.from_url(redis_url)
    sync_client.sha = async_client.sha = sha
    b = RedisBackend(
        client=sync_client, async_client=async_client, settings=settings, namespace=namespace,
        **INLINE,
    )  # fmt: skip
    try:
        assert checker.write("/l.txt", text).error is None
        got = await _call(mode, b, "edit", "/l.txt", "ab", "abab", replace_all=True)
        assert sync_client.lost or async_client.lost
        assert got.error is None, got.error
        assert got.occurrences == 1
        assert _raw(checker, "/l.txt") == text.replace("ab", "abab").encode()
    finally:
        b.close()
        await b.aclose()
        checker.close()
        sync_client.close()
        await async_client.aclose()


# ----------------------------------------------------------------------------- listings


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_listings_of_empty_and_one_entry_directories(make_backend: Any, mode: str) -> None:
    b: RedisBackend = make_backend()
    got = await _call(mode, b, "ls", "/")
    assert got.error is None
    assert got.entries == []
    assert (await _call(mode, b, "glob", "*")).matches == []
    assert (await _call(mode, b, "grep", "x")).matches == []
    assert b.write("/only/sub/f.txt", "x").error is None  # /only: one sub-directory entry
    got = await _call(mode, b, "ls", "/only")
    assert [(e["path"], e.get("is_dir")) for e in got.entries] == [("/only/sub/", True)]
    got = await _call(mode, b, "ls", "/only/sub")
    assert [(e["path"], e.get("size")) for e in got.entries] == [("/only/sub/f.txt", 1)]
    assert b.write("/only/empty.txt", "").error is None
    got = await _call(mode, b, "ls", "/only")
    assert sorted(e["path"] for e in got.entries) == ["/only/empty.txt", "/only/sub/"]
    got = await _call(mode, b, "glob", "**/*.txt")
    assert sorted(m["path"] for m in got.matches) == ["/only/empty.txt", "/only/sub/f.txt"]
    assert (await _call(mode, b, "grep", "x", path="/only")).matches == [
        {"path": "/only/sub/f.txt", "line": 1, "text": "x"}
    ]
    assert b.delete("/only/sub/f.txt").error is None
    got = await _call(mode, b, "ls", "/only/sub")
    assert got.error is None
    assert got.entries == []
    got = await _call(mode, b, "ls", "/only")
    assert [e["path"] for e in got.entries] == ["/only/empty.txt"]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_listings_across_thousand_entry_pages(make_backend: Any, mode: str) -> None:
    # LIST pages hold 1,000 paths: exactly one page, and one path more
    b: RedisBackend = make_backend()
    for count, where in ((1000, "/p1000"), (1001, "/p1001")):
        files = [(f"{where}/f{i:04d}.txt", f"hit {i}".encode()) for i in range(count)]
        assert all(r.error is None for r in b.upload_files(files))
        got = await _call(mode, b, "ls", where)
        assert sorted(e["path"] for e in got.entries) == [p for p, _ in files]
        got = await _call(mode, b, "glob", "*.txt", path=where)
        assert sorted(m["path"] for m in got.matches) == [p for p, _ in files]
        got = await _call(mode, b, "grep", "hit", path=where)
        assert [m["path"] for m in got.matches] == [p for p, _ in files]
        got = await _call(mode, b, "grep", "hit", path=where, max_count=count - 1)
        assert got.truncated
        assert [m["path"] for m in got.matches] == [p for p, _ in files][: count - 1]
    got = await _call(mode, b, "grep", "hit 100")
    assert [m["path"] for m in got.matches] == [
        "/p1000/f0100.txt",
        "/p1001/f0100.txt",
        "/p1001/f1000.txt",
    ]
