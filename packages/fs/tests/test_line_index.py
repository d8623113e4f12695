"""The line index of chunked text files: a read fetches only the chunks of its window.

The pure part (index, plan, cut) is checked against deepagents' `slice_read_response` on
generated content and chunk sizes; the backend part on real servers: the window is read
without the chunks outside it, results match the reference backend, and a stored index that
does not describe the chunks (malformed, hostile, stale) is never believed.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from deepagents.backends.protocol import FileData
from deepagents.backends.utils import normalize_read_bounds, slice_read_response
from deepagents_redis.core import DeepAgentsRedisError
from deepagents_redis.fs._backend import RedisBackend
from deepagents_redis.fs._common import WindowRead, _cut_window
from deepagents_redis.fs._lines import ascii_line_index, lf_count, line_index, plan_window
from hypothesis import given, settings
from hypothesis import strategies as st

_META = {"e": b"utf-8", "ca": b"c", "ma": b"m"}
_NO_SPILL = 64 << 20  # the tests' files stay in Redis, in 4 KB chunks
_PIECES = ["a", "é", "line", " ", "\t", "\n", "\n\n", "z" * 40, "\u3000", "☃𝄞", "\xa0"]
_OTHER_BREAKS = ["\r", "\r\n", "\x0b", "\x85", "\u2028", "\x1e"]


def _fd(data: bytes) -> FileData:
    return RedisBackend._file_data(_META, data)


def _windowed(data: bytes, chunk: int, offset: int, limit: int) -> Any:
    """Our read of `data` stored in `chunk`-byte chunks, through the index; None if unindexed."""
    index = line_index("g1", data, chunk)
    if not index:
        return None
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    start, count = normalize_read_bounds(offset, limit)
    plan = plan_window(index, "g1", len(chunks), start, count)
    if plan is None:  # past the last line: the whole file answers
        assert start >= data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        return "past the end"
    cut = _cut_window(_META, chunks[plan.first : plan.last + 1], plan, start)
    assert isinstance(cut, WindowRead)
    assert cut.fetched == sum(len(c) for c in chunks[plan.first : plan.last + 1])
    return cut.result


@settings(max_examples=800, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES), max_size=80),
    st.integers(min_value=1, max_value=24),
    st.integers(min_value=-2, max_value=90),
    st.integers(min_value=1, max_value=90),
)
def test_window_from_chunks_same_as_deepagents(
    pieces: list[str], chunk: int, offset: int, limit: int
) -> None:
    """Any content, chunk size and window: the cut from the indexed chunks is deepagents'."""
    data = "".join(pieces).encode("utf-8")
    ours = _windowed(data, chunk, offset, limit)
    want = slice_read_response(_fd(data), offset, limit)
    if ours is None:  # blank content: not indexed
        assert not data.strip() or not any(c in data for c in b"!~az")
        return
    if isinstance(ours, str):
        assert want.error is not None
        assert "exceeds file length" in want.error
        return
    assert ours == want


@settings(max_examples=500, deadline=None)
@given(
    lines=st.lists(st.integers(min_value=0, max_value=300), max_size=200),
    filler=st.sampled_from([b"x", b"\r", b"\xc3\xa9"]),
    cut=st.tuples(st.integers(0, 70_000), st.integers(0, 70_000)),
)
def test_lf_count_is_bytes_count(lines: list[int], filler: bytes, cut: tuple[int, int]) -> None:
    # Short and long lines (both counting paths), ranges inside and past the data.
    data = b"".join(filler * n + b"\n" for n in lines)
    start, end = min(cut), max(cut)
    assert lf_count(data, start, end) == data.count(b"\n", start, end)


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(alphabet="ab \t\n~", max_size=300)
    | st.text(alphabet="ab \t\n\r\x0b\x0c\x1c\x1d\x1e~", max_size=300),
    chunk=st.integers(min_value=1, max_value=40),
)
def test_ascii_index_from_chunks_is_the_whole_content_index(text: str, chunk: int) -> None:
    data = text.encode()
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    assert ascii_line_index("g1", chunks) == line_index("g1", data, chunk)


@pytest.mark.parametrize("line", [1, 47, 48, 49, 200])
def test_lf_count_on_either_side_of_the_sample_rule(line: int) -> None:
    data = (b"y" * (line - 1) + b"\n") * (20_000 // line) + b"tail"
    for start, end in ((0, len(data)), (5, len(data) - 3), (4096, 10_000), (0, 4096)):
        assert lf_count(data, start, end) == data.count(b"\n", start, end)


@pytest.mark.parametrize("brk", _OTHER_BREAKS)
def test_no_index_for_other_line_breaks_or_blank_content(brk: str) -> None:
    """Only LF-separated, non-blank text is indexed: the rest is read whole, as before."""
    assert line_index("g", f"a\nb{brk}c\n".encode(), 2) == ""
    assert line_index("g", b" \n\t\n" * 10, 4) == ""
    assert line_index("g", b"ab\ncd\n\ne", 3) == "g:0:1,1,1"


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "",
        "garbage",
        "g1:1",
        "g2:1:1,1",  # another generation
        "g1:2:1,1",
        "g1:1:1",  # too few counts
        "g1:1:1,1,1",  # too many
        "g1:1:-1,3",
        "g1:1:a,b",
        "g1:1:1,,1",
        b"g1:1:\xff\xfe",
    ],
)
def test_unusable_stored_index_is_not_used(stored: Any) -> None:
    assert plan_window(stored, "g1", 2, 0, 5) is None


def _chunked_text(lines: int, seed: int = 3) -> str:
    rng = random.Random(seed)
    return "".join(
        f"{i} " + "é" * rng.randrange(0, 3) + "x" * rng.randrange(0, 120) + "\n"
        for i in range(lines)
    )


def _ascii_text(lines: int) -> str:
    return _chunked_text(lines).replace("é", "e")


def _same(a: Any, b: Any) -> None:
    assert (a.error, a.total_lines, a.start_line, a.end_line, a.next_offset) == (
        b.error,
        b.total_lines,
        b.start_line,
        b.end_line,
        b.next_offset,
    )
    assert (a.file_data or {}).get("content") == (b.file_data or {}).get("content")


_FIRST_CHUNK = [(0, 10), (3, 20), (0, 2000)]
_ANY = [*_FIRST_CHUNK, (400, 20), (799, 5), (900, 5)]
_WINDOWS = [
    (0, 10),
    (0, 2000),
    (17, 40),
    (500, 3),
    (1999, 5),
    (2000, 1),
    (2500, 9),
    (-3, 4),
    (0, 1),
]


@pytest.mark.parametrize("ascii", [False, True], ids=["utf8", "ascii"])
@pytest.mark.parametrize("tail", ["", "no final newline", "\n\n"])
def test_windows_match_the_reference_backend(
    make_backend: Any, store: Any, tail: str, ascii: bool
) -> None:
    # ASCII text is encoded chunk by chunk by the write (`stored_form`), other text whole
    b = make_backend(spill_threshold=_NO_SPILL)
    content = (_ascii_text(2000) if ascii else _chunked_text(2000)) + tail
    for backend in (b, store):
        backend.write("/log.txt", content)
    meta = b.stat("/log.txt")
    assert meta is not None
    assert meta.chunks > 20
    for offset, limit in _WINDOWS:
        _same(b.read("/log.txt", offset, limit), store.read("/log.txt", offset, limit))


def test_a_window_reads_only_its_chunks(make_backend: Any) -> None:
    """With the last chunk gone, a window at the start still reads; the whole file does not.

    Proof by behaviour that only the window's chunks are fetched (a whole read reports the
    lost chunk, see test_slicing).
    """
    b = make_backend(spill_threshold=_NO_SPILL)
    b.write("/log.txt", _chunked_text(2000))
    client = b.connector.client()
    ns = b.resolve_namespace()
    ckey = b._k(ns, "c", "/log.txt")
    gen = client.hget(b._k(ns, "m", "/log.txt"), "g").decode()
    last = max(int(f.decode().split(":")[1]) for f in client.hkeys(ckey))
    client.hdel(ckey, f"{gen}:{last}")
    head = b.read("/log.txt", 0, 10)
    assert head.error is None
    assert head.file_data is not None
    assert head.file_data["content"].startswith("0 ")
    assert head.total_lines == 2000
    assert head.next_offset == 10
    with pytest.raises(DeepAgentsRedisError, match="missing"):
        b.read("/log.txt", 1990, 10)


async def test_async_window(make_backend: Any, store: Any) -> None:
    b = make_backend(spill_threshold=_NO_SPILL)
    content = _chunked_text(1500, seed=9)
    store.write("/a.txt", content)
    await b.awrite("/a.txt", content)
    for offset, limit in _WINDOWS:
        _same(await b.aread("/a.txt", offset, limit), store.read("/a.txt", offset, limit))


@pytest.mark.parametrize(
    ("hostile", "windows"),
    [
        ("garbage", _ANY),
        ("{gen}:1:" + ",".join(["1"] * 3), _ANY),  # wrong number of counts
        # the first chunk's count is off by one: seen by windows that fetch that chunk
        ("{gen}:1:{lying_first}", _FIRST_CHUNK),
        ("{gen}:0:{zeros}", _ANY),  # every count 0: one line, every window past it
        ("other:1:{counts}", _ANY),  # another generation
        ("{gen}:1:{huge}", _ANY),
        ("{gen}:1:{counts}\x00", _ANY),
    ],
)
def test_an_index_that_does_not_describe_the_chunks_is_not_believed(
    make_backend: Any, store: Any, hostile: str, windows: list[tuple[int, int]]
) -> None:
    """A planted `L` that is malformed or that the fetched chunks contradict changes
    nothing a read returns (the whole file is read instead)."""
    b = make_backend(spill_threshold=_NO_SPILL)
    content = _chunked_text(800, seed=5)
    b.write("/h.txt", content)
    store.write("/h.txt", content)
    client = b.connector.client()
    mkey = b._k(b.resolve_namespace(), "m", "/h.txt")
    gen, real = (v.decode() for v in client.hmget(mkey, "g", "L"))
    counts = real.split(":")[2].split(",")
    value = hostile.format(
        gen=gen,
        counts=",".join(counts),
        lying_first=",".join([str(int(counts[0]) + 1), *counts[1:]]),
        zeros=",".join("0" for _ in counts),
        huge=",".join("9" * 30 for _ in counts),
    )
    client.hset(mkey, "L", value)
    for offset, limit in windows:
        _same(b.read("/h.txt", offset, limit), store.read("/h.txt", offset, limit))


def test_index_follows_the_content(make_backend: Any) -> None:
    """Written for chunked LF text; empty for CR text, inline content and binary uploads."""
    b = make_backend(spill_threshold=_NO_SPILL)
    client = b.connector.client()
    ns = b.resolve_namespace()

    def stored(path: str) -> bytes | None:
        return client.hget(b._k(ns, "m", path), "L")

    b.write("/f.txt", _chunked_text(400))
    assert stored("/f.txt").startswith(client.hget(b._k(ns, "m", "/f.txt"), "g") + b":1:")
    b.write("/f.txt", "small now\n")  # inline: the chunks' index goes with them
    assert stored("/f.txt") is None
    assert b.read("/f.txt").file_data["content"] == "small now\n"
    b.write("/crlf.txt", _chunked_text(400).replace("\n", "\r\n"))
    assert stored("/crlf.txt") == b""
    assert b.read("/crlf.txt", 10, 2).file_data is not None
    b.upload_files([("/bin.dat", bytes(range(256)) * 40)])
    assert stored("/bin.dat") in (b"", None)
    # the index is exactly the whole content's, whichever way the write encoded it (ASCII
    # text chunk by chunk, other text whole), also after an edit
    for path, text in (("/u.txt", _chunked_text(400)), ("/a.txt", _ascii_text(400))):
        b.write(path, text)
        b.edit(path, "\n7 ", "\n7 edited ")
        content = b.read(path, 0, 100_000).file_data["content"]
        gen = client.hget(b._k(ns, "m", path), "g").decode()
        assert stored(path) == line_index(gen, content.encode(), b._chunk_size).encode()


def test_edits_and_uploads_keep_windows_right(make_backend: Any, store: Any) -> None:
    """A chunked file changed by edit (the read-modify-write path) or upload: new index."""
    b = make_backend(spill_threshold=_NO_SPILL)
    content = _chunked_text(900, seed=2)
    for backend in (b, store):
        backend.write("/e.txt", content)
        # lines added near the start shift every later line into other chunks
        edited = backend.edit("/e.txt", "\n3 ", "\n3\nnew line\nand another\n")
        assert edited.error is None, edited.error
        backend.upload_files([("/u.txt", content.replace("\n", "\n\n").encode())])
    for path in ("/e.txt", "/u.txt"):
        for offset, limit in _ANY:
            _same(b.read(path, offset, limit), store.read(path, offset, limit))


def test_files_without_an_index_are_read_whole(make_backend: Any, store: Any) -> None:
    """A chunked file written before the index existed (no `L`) reads as before."""
    b = make_backend(spill_threshold=_NO_SPILL)
    content = _chunked_text(700, seed=4)
    b.write("/old.txt", content)
    store.write("/old.txt", content)
    client = b.connector.client()
    assert client.hdel(b._k(b.resolve_namespace(), "m", "/old.txt"), "L") == 1
    for offset, limit in _ANY:
        _same(b.read("/old.txt", offset, limit), store.read("/old.txt", offset, limit))
