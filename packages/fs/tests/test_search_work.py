"""Searches inside Redis stay bounded for any needle (edit's old_string, grep's pattern).

Lua's plain `string.find` compares the needle at every position where its first byte occurs,
so m needle bytes over n content bytes cost up to n*m byte comparisons (content `aaa...`,
needle `aa...ab`). Measured on Redis 7.0 here: an edit of a 250,000-byte inline file with a
125,001-byte old_string held the server 277 ms, a grep for it as long per file, and one GREP
call searched up to 4 MB of such files. A search whose n*m exceeds the work bound now runs
in the client (Python's `in`/`count` are linear), with the same results.
"""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.core import LuaScript
from deepagents_redis.testing.backends import Operation

pytestmark = pytest.mark.integration


async def call(backend: Any, mode: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call `name` through the sync method or its native async twin."""
    operation = Operation(name, args, kwargs)
    return operation(backend) if mode == "sync" else await operation.acall(backend)


def _generation(backend: Any, path: str) -> bytes:
    raw = backend._connector.client()
    return raw.hget(backend._k(backend.resolve_namespace(), "m", path), "g")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_edit_too_costly_to_search_in_lua_is_applied_by_the_client(
    make_backend: Any, mode: str
) -> None:
    backend = make_backend(chunk_size=256 * 1024, spill_threshold=0)
    # inline (under chunk_size); 100,002 x 3,001 comparisons is over the bound
    assert (await call(backend, mode, "write", "/a.txt", "a" * 100_000 + "b\n")).error is None
    before = _generation(backend, "/a.txt")
    res = await call(backend, mode, "edit", "/a.txt", "a" * 3_000 + "b", "X")
    assert res.error is None, res.error
    assert res.occurrences == 1
    got = await call(backend, mode, "read", "/a.txt", 0, 10)
    assert got.file_data["content"] == "a" * 97_000 + "X\n"
    # the EDIT script (which keeps the generation) answered FALLBACK before searching; the
    # client's read and conditional write stored a new generation
    after = _generation(backend, "/a.txt")
    assert after != before
    # a cheap edit of the same file still runs in Redis in one step
    assert (await call(backend, mode, "edit", "/a.txt", "X", "Y")).error is None
    assert _generation(backend, "/a.txt") == after
    assert (await call(backend, mode, "read", "/a.txt", 0, 10)).file_data["content"].endswith("Y\n")


def _spy_grep(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    replies: list[Any] = []
    run_raw, arun_raw = LuaScript.run_raw, LuaScript.arun_raw

    def spy(script: LuaScript, client: Any, keys: Any = (), args: Any = ()) -> Any:
        reply = run_raw(script, client, keys, args)
        if script.name == "fs_grep":
            replies.append(reply)
        return reply

    async def aspy(script: LuaScript, client: Any, keys: Any = (), args: Any = ()) -> Any:
        reply = await arun_raw(script, client, keys, args)
        if script.name == "fs_grep":
            replies.append(reply)
        return reply

    monkeypatch.setattr(LuaScript, "run_raw", spy)
    monkeypatch.setattr(LuaScript, "arun_raw", aspy)
    return replies


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_grep_searches_a_file_too_costly_for_lua_in_the_client(
    make_backend: Any, store: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    backend = make_backend(chunk_size=256 * 1024, spill_threshold=0)
    files = [
        ("/g/1.txt", ("a" * 100_000 + "b\nsmall\n").encode()),
        ("/g/2.txt", b"aab\n"),
        ("/g/3.bin", b"\xff" + b"a" * 5_000 + b"b"),
    ]
    await call(backend, mode, "upload_files", files)
    store.upload_files(files)
    pattern = "a" * 3_000 + "b"
    replies = _spy_grep(monkeypatch)
    got = await call(backend, mode, "grep", pattern, "/g")
    want = store.grep(pattern, "/g")
    assert got == want
    assert [(m["path"], m["line"]) for m in got.matches] == [("/g/1.txt", 1)]
    # the GREP script handed /g/1.txt (file 1 of its call) to the client unsearched
    assert int(replies[0][0]) == 1
    assert len(replies[0]) == 1


@pytest.mark.parametrize("work", [1, 40, 200, 10**9])
def test_grep_work_budgets_split_the_search_never_change_it(
    make_backend: Any, store: Any, monkeypatch: pytest.MonkeyPatch, work: int
) -> None:
    """Any work bound per GREP call (a whole call, one file) finds the same matches, with
    binary, chunked and expired files in between and a match cap."""
    import time

    from deepagents_redis.fs import _search

    backend = make_backend()
    brief = make_backend(namespace=backend.resolve_namespace(), ttl=0.05)
    files = [(f"/s/{i:02d}.txt", f"head {i}\nneedle {i}\n".encode()) for i in range(12)]
    files += [("/s/03.bin", b"\xffneedle"), ("/s/07.txt", ("needle\n" + "y" * 5000).encode())]
    backend.upload_files(files)
    store.upload_files(files)
    brief.write("/s/05b.txt", "needle gone soon")
    time.sleep(0.1)
    monkeypatch.setattr(_search, "_SEARCH_WORK", work)
    got = backend.grep("needle", "/s")
    assert got == store.grep("needle", "/s")
    assert len(got.matches) == 12
    capped = backend.grep("needle", "/s", max_count=5)
    assert capped == store.grep("needle", "/s", max_count=5)
    assert capped.truncated


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_grep_hands_a_file_of_too_many_lines_to_the_client(
    make_backend: Any, store: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The GREP script walks every line of an inline file that holds the pattern: 16 files
    of 131,000 two-byte lines and one match each held the server 448 ms in one call (with
    deepagents' default cap of 1,000 matches), and an uncapped grep("") of newline files
    passed Redis' 5 s script limit (BUSY). A call now walks at most `_GREP_LINES` lines;
    a file with more alone is left to the client's stream."""
    from deepagents_redis.fs import _search

    backend = make_backend(chunk_size=512 * 1024, spill_threshold=0)
    lines = _search._GREP_LINES + 10
    files = [
        ("/l/1.txt", b"short\n"),
        ("/l/2.txt", ("x\n" * lines + "needle").encode()),
        ("/l/3.txt", b"needle\n"),
    ]
    await call(backend, mode, "upload_files", files)
    store.upload_files(files)
    replies = _spy_grep(monkeypatch)
    got = await call(backend, mode, "grep", "needle", "/l")
    assert got == store.grep("needle", "/l")
    assert [(m["path"], m["line"]) for m in got.matches] == [
        ("/l/2.txt", lines + 1),
        ("/l/3.txt", 1),
    ]
    # file 2 was handed to the client with none of its lines in the reply
    assert [int(r[0]) for r in replies] == [2, 0]
    assert len(replies[0]) == 1


@pytest.mark.parametrize("budget", [1, 2, 3, 5, 10**6])
def test_grep_line_budgets_split_the_search_never_change_it(
    make_backend: Any, store: Any, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    from deepagents_redis.fs import _search

    backend = make_backend()
    files = [(f"/s/{i:02d}.txt", f"a {i}\nneedle {i}\nb\nneedle\n".encode()) for i in range(9)]
    files += [("/s/03.bin", b"\xffneedle"), ("/s/z.txt", ("needle\n" + "y\n" * 3000).encode())]
    backend.upload_files(files)
    store.upload_files(files)
    monkeypatch.setattr(_search, "_GREP_LINES", budget)
    for cap in (None, 0, 1, 4, 7, 18, 19):
        got = backend.grep("needle", "/s", max_count=cap)
        assert got == store.grep("needle", "/s", max_count=cap), cap


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_edit_with_too_many_occurrences_for_lua_is_applied_by_the_client(
    make_backend: Any, mode: str
) -> None:
    """The EDIT script replaced every occurrence in Lua (a find, a cut and a table slot
    each): 262,000 one-byte replacements held the server 148 ms. Over `_EDIT_HITS` the
    script answers FALLBACK at once and the client applies the edit, with the same result."""
    from deepagents_redis.fs import _common

    backend = make_backend(chunk_size=256 * 1024, spill_threshold=0)
    many = _common._EDIT_HITS + 1
    assert (await call(backend, mode, "write", "/m.txt", "a" * many + "\n")).error is None
    before = _generation(backend, "/m.txt")
    res = await call(backend, mode, "edit", "/m.txt", "a", "b", True)
    assert res.error is None, res.error
    assert res.occurrences == many
    assert (await call(backend, mode, "read", "/m.txt")).file_data["content"] == "b" * many + "\n"
    after = _generation(backend, "/m.txt")
    assert after != before  # the client's conditional write, not the EDIT script
    res = await call(backend, mode, "edit", "/m.txt", "b" * (many - 5), "c" * (many - 5))
    assert res.error is None, res.error
    assert _generation(backend, "/m.txt") == after  # one match: the EDIT script did it
