"""The line index of a chunked text file: which chunks a read window needs.

A read answers with a window of lines and the file's line count (deepagents' `ReadResult`:
`total_lines`, `next_offset`). Without an index that needs every byte of the file: reading
the first 10 lines of a 10 MB file moved 10 MB out of Redis. The write that stores a chunked
UTF-8 file therefore also stores, in the metadata's `L` field, the number of LFs in each
chunk:

    L = '<generation>:<1 if the content ends with LF else 0>:<LFs in chunk 0>,<chunk 1>,...'

and a read fetches only the chunks its window covers. An index is written only for content
whose lines are LF-separated (no other `str.splitlines` break) and that is not blank: the
content `_read_window` cuts by byte position. Everything else has `L` empty and is read
whole, as before.

The index is used only as far as it can be checked: it must name the generation the
metadata names (chunks are written once per generation, and a writer without the index
writes a new generation), have one count per chunk, and each fetched chunk must hold exactly
the LFs its count says and no other line break. A window starting past the last line is
answered from the whole file, so "exceeds file length" always comes from the content.
Anything else (a malformed value, or one the fetched chunks contradict) falls back to
reading the whole file. A well-formed index that is wrong only about chunks a read does not
fetch is believed, as the bytes of those chunks would be: what Redis stores is the file.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__: list[str] = []

# UTF-8 of the line breaks `str.splitlines` knows besides LF (CR, VT, FF, FS, GS, RS, NEL,
# U+2028, U+2029): text without them has LF-separated lines
ASCII_BREAKS: Final = (b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")
OTHER_BREAKS: Final = (*ASCII_BREAKS, b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")
NON_BLANK: Final = re.compile(rb"[\x21-\x7e]")  # printable ASCII: never whitespace


def lf_lines_only(data: bytes, *, is_ascii: bool | None = None) -> bool:
    """Whether `data` has LF as its only line break (so lines can be cut by byte position).

    Args:
        data: UTF-8 text.
        is_ascii: Whether it is ASCII, when the caller knows (`str.isascii()` of the text it
            encoded answers at once; `bytes.isascii()` reads every byte: ~0.4 ms per 10 MB).
    """
    # (searching for a 2-3 byte sequence is slow: skip that when the text is ASCII)
    if is_ascii is None:
        is_ascii = data.isascii()
    breaks = ASCII_BREAKS if is_ascii else OTHER_BREAKS
    return not any(br in data for br in breaks)


_SAMPLE: Final = 4096
_SPARSE_LINE: Final = 48


def lf_count(data: bytes, start: int, end: int) -> int:
    """The number of LFs in `data[start:end]`, counted the faster way for its line lengths.

    `bytes.count` of one byte checks every byte (~3 GB/s here); `bytes.replace` finds each
    LF with `memchr`, so it is ~2x faster when lines are long and ~15x slower when they are
    a few bytes. The first 4 KB decide: lines of 48 bytes or more on average go through
    `replace` (of a copy of the range), shorter ones through `count`.
    """
    end = min(end, len(data))
    probe = min(start + _SAMPLE, end)
    if end - start <= _SAMPLE or data.count(b"\n", start, probe) * _SPARSE_LINE > probe - start:
        return data.count(b"\n", start, end)
    part = data[start:end]
    return len(part) - len(part.replace(b"\n", b""))


def line_index(gen: str, data: bytes, chunk_size: int) -> str:
    """The `L` value for `data` stored in chunks of `chunk_size` bytes ('' = no index).

    Args:
        gen: The content's generation (names its chunks).
        data: The UTF-8 content.
        chunk_size: The chunk size the content is split with.

    Returns:
        The index, or '' when the content is blank or has other line breaks than LF.
    """
    if NON_BLANK.search(data) is None or not lf_lines_only(data):
        return ""
    counts = [lf_count(data, at, at + chunk_size) for at in range(0, len(data), chunk_size)]
    return _index_value(gen, counts, data.endswith(b"\n"))


def ascii_line_index(gen: str, chunks: Sequence[bytes]) -> str:
    """`line_index` of ASCII content given as its chunks (no copy of the whole is needed).

    Args:
        gen: The content's generation.
        chunks: The content's chunks, in order, every one ASCII (so no line break, all
            single bytes, can straddle two of them).

    Returns:
        What `line_index` gives for the joined chunks and their chunk size.
    """
    indexer = AsciiLineIndexer()
    for chunk in chunks:
        indexer.add(chunk)
    return indexer.value(gen)


class AsciiLineIndexer:
    """`ascii_line_index` built one chunk at a time, as a big write encodes its chunks."""

    __slots__ = ("_counts", "_ends", "_lf_only", "_non_blank")

    def __init__(self) -> None:
        self._counts: list[int] = []
        self._non_blank = False
        self._lf_only = True
        self._ends = False

    def add(self, chunk: bytes) -> None:
        """Take the next chunk (ASCII)."""
        if self._lf_only and not lf_lines_only(chunk, is_ascii=True):
            self._lf_only = False  # no index: nothing more to count
        if not self._lf_only:
            return
        self._counts.append(lf_count(chunk, 0, len(chunk)))
        self._non_blank = self._non_blank or NON_BLANK.search(chunk) is not None
        self._ends = chunk.endswith(b"\n")

    def value(self, gen: str) -> str:
        """The index of the chunks taken so far ('' = none: blank, or other line breaks)."""
        if not (self._lf_only and self._non_blank):
            return ""
        return _index_value(gen, self._counts, self._ends)


def _index_value(gen: str, counts: list[int], ends_with_lf: bool) -> str:
    return f"{gen}:{'1' if ends_with_lf else '0'}:{','.join(map(str, counts))}"


@dataclass(frozen=True, slots=True)
class Window:
    """The chunks a read window needs, and where its lines are among them."""

    first: int
    """Index of the first chunk to fetch."""
    last: int
    """Index of the last chunk to fetch (inclusive)."""
    counts: tuple[int, ...]
    """The index's LF count of each fetched chunk (checked against what was fetched)."""
    skip: int
    """LFs to skip from the start of the first fetched chunk to reach the window's start."""
    total: int
    """The file's number of lines."""
    end: int
    """The 0-indexed line after the window's last line (`total` when it runs to the end)."""


def plan_window(
    index: bytes | str | None, gen: str, chunks: int, start: int, count: int
) -> Window | None:
    """Which chunks hold lines `start` .. `start + count - 1`, by the index.

    Args:
        index: The stored `L` value (untrusted).
        gen: The generation the metadata names.
        chunks: The number of chunks the metadata names.
        start: The window's first line (0-indexed).
        count: How many lines (positive).

    Returns:
        The window's chunks; None when there is no usable index or `start` is past the last
        line (read the whole file).
    """
    if not index or chunks <= 0:
        return None
    text = index.decode("utf-8", "replace") if isinstance(index, bytes) else index
    parts = text.split(":")
    if len(parts) != 3 or parts[0] != gen or parts[1] not in ("0", "1"):
        return None
    try:
        counts = [int(c) for c in parts[2].split(",")]
    except ValueError:
        return None
    if len(counts) != chunks or min(counts) < 0:
        return None
    before = [0]  # before[k]: LFs in chunks 0 .. k-1
    for c in counts:
        before.append(before[-1] + c)
    lfs = before[-1]
    total = lfs + (0 if parts[1] == "1" else 1)
    if start >= total:
        return None
    end = min(start + count, total)
    # Line s > 0 starts right after the s-th LF: in the first chunk k with before[k+1] >= s.
    first = 0 if start == 0 else bisect.bisect_left(before, start) - 1
    last = chunks - 1 if end == total else bisect.bisect_left(before, end) - 1
    return Window(
        first=first,
        last=last,
        counts=tuple(counts[first : last + 1]),
        skip=start - before[first],
        total=total,
        end=end,
    )


def fetched_as_indexed(parts: list[bytes], joined: bytes, window: Window) -> bool:
    """Whether the fetched chunks hold the LFs the index says, and no other line break.

    Args:
        parts: The fetched chunks, in order.
        joined: The same bytes joined (a break may straddle two chunks).
        window: What the index promised for them.
    """
    return all(
        lf_count(part, 0, len(part)) == want
        for part, want in zip(parts, window.counts, strict=True)
    ) and lf_lines_only(joined)
