"""`_read_window` (the read window cut) against deepagents' `slice_read_response`."""

from __future__ import annotations

import random
from typing import Any

import pytest
from deepagents.backends.protocol import FileData
from deepagents.backends.utils import slice_read_response
from deepagents_redis.fs import _common
from deepagents_redis.fs._backend import RedisBackend
from deepagents_redis.fs._common import _read_window
from hypothesis import given, settings
from hypothesis import strategies as st

_PIECES = ["a", "é", "line", " ", "\t", "\n", "\n\n", "\r", "\r\n", "\x0b", "\x85", "\u2028"]
_PIECES += ["z" * 40, "\u3000", "\xa0", "\x1e", "\u2029", "\x0c", "\x1c"]


_META = {"e": b"utf-8", "ca": b"c", "ma": b"m"}


def _fd(content: str) -> FileData:
    return RedisBackend._file_data(_META, content.encode("utf-8"))


def _ours(content: str, offset: int, limit: int) -> Any:
    return _read_window(_META, content.encode("utf-8"), offset, limit)


@pytest.fixture(autouse=True)
def _small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    # exercise the fast path on small inputs too
    monkeypatch.setattr(_common, "_FAST_SLICE_MIN", 0)
    # tiny blocks and walks: the block skip and the halving run on small inputs too
    monkeypatch.setattr(_common, "_LINE_BLOCK", 16)
    monkeypatch.setattr(_common, "_LINE_WALK", 2)


@settings(max_examples=600, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES), max_size=60),
    st.integers(min_value=-3, max_value=70),
    st.integers(min_value=-3, max_value=70),
)
def test_same_as_deepagents(pieces: list[str], offset: int, limit: int) -> None:
    content = "".join(pieces)
    assert _ours(content, offset, limit) == slice_read_response(_fd(content), offset, limit)


@pytest.mark.parametrize(("block", "walk"), [(1 << 16, 64), (4096, 8), (64, 1)])
def test_big_file_windows(monkeypatch: pytest.MonkeyPatch, block: int, walk: int) -> None:
    monkeypatch.setattr(_common, "_LINE_BLOCK", block)
    monkeypatch.setattr(_common, "_LINE_WALK", walk)
    rng = random.Random(7)
    lines = [("x" * rng.randrange(0, 90)) + "\n" for _ in range(30_000)]
    for content in ("".join(lines), "".join(lines) + "tail", "".join(lines) + "\n\n"):
        for offset, limit in [
            (0, 10),
            (0, 2000),
            (29_990, 2000),
            (30_000, 5),
            (40_000, 1),
            (12_345, 678),
            (0, 0),
            (-1, 3),
            (0, 30_001),
            (1, 30_000),
            (29_999, 1),
            (15_000, 100_000),
        ]:
            assert _ours(content, offset, limit) == slice_read_response(
                _fd(content), offset, limit
            ), (offset, limit)


def test_read_reports_a_lost_chunk(make_backend: Any) -> None:
    """A chunk gone from the chunk hash is reported, not read around (either read path)."""
    from deepagents_redis.core import DeepAgentsRedisError

    for refresh in (False, True):
        b = make_backend(refresh_ttl_on_read=refresh)
        b.write("/big.txt", "x" * 5000 + "\n")
        assert b.read("/big.txt").file_data is not None
        client = b.connector.client()
        ckey = b._k(b.resolve_namespace(), "c", "/big.txt")
        field = sorted(client.hkeys(ckey))[0]
        client.hdel(ckey, field)
        with pytest.raises(DeepAgentsRedisError, match="missing"):
            b.read("/big.txt")


def test_skip_lines_lands_after_the_nth_lf() -> None:
    """`_skip_lines` against a plain walk, across block and halving edges."""
    from deepagents_redis.fs._common import _skip_lines

    rng = random.Random(11)
    data = b"".join(b"y" * rng.choice([0, 0, 1, 5, 70, 300]) + b"\n" for _ in range(3000))
    lfs = [i + 1 for i, c in enumerate(data) if c == 10]
    for pos_line in (0, 1, 17, 1500, 2999):
        pos = 0 if pos_line == 0 else lfs[pos_line - 1]
        for n in (0, 1, 2, 63, 64, 65, 999, 3000 - pos_line):
            if pos_line + n > 3000:
                continue
            want = pos if n == 0 else lfs[pos_line + n - 1]
            assert _skip_lines(data, pos, n) == want, (pos_line, n)
    with pytest.raises(ValueError, match="subsection not found"):
        _skip_lines(b"a\nb", 0, 2)
