"""Every RedisBackend method, sync and async, standalone and cluster, against StoreBackend."""

from __future__ import annotations

import codecs
import dataclasses
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from deepagents_redis.core import LuaScript
from deepagents_redis.fs import RedisBackend, _search
from deepagents_redis.fs._common import _pairs
from deepagents_redis.testing.backends import Operation, arun_operations, run_operations

pytestmark = pytest.mark.integration


async def call(backend: Any, mode: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call `name` through the sync method or its native async twin."""
    operation = Operation(name, args, kwargs)
    return operation(backend) if mode == "sync" else await operation.acall(backend)


SCRIPT: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("read", ("/missing.txt",), {}),
    ("write", ("/a.txt", "hello\nworld\n"), {}),
    ("read", ("/a.txt",), {}),
    ("read", ("/a.txt", 1, 1), {}),
    ("read", ("/a.txt", 5, 10), {}),
    ("read", ("/a.txt", -3, 0), {}),
    ("write", ("/a.txt", "hello\r\nagain\nhello"), {}),
    ("read", ("/a.txt",), {}),
    ("edit", ("/a.txt", "again", "AGAIN"), {}),
    ("edit", ("/a.txt", "hello", "bye"), {}),
    ("edit", ("/a.txt", "hello", "bye", True), {}),
    ("edit", ("/a.txt", "nothere", "x"), {}),
    ("edit", ("/a.txt", "", "x"), {}),
    ("edit", ("/nope.txt", "a", "b"), {}),
    ("write", ("/src/app/main.py", "import os\nprint('TODO')\n"), {}),
    ("write", ("/src/app/util.py", "# TODO later\n" * 3), {}),
    ("write", ("/src/readme.md", "TODO: docs\n"), {}),
    ("write", ("/src/.hidden/x.py", "TODO hidden\n"), {}),
    ("write", ("/big.txt", "".join(f"line {i} TODO\n" for i in range(3000))), {}),
    ("write", ("/empty.txt", ""), {}),
    ("read", ("/empty.txt",), {}),
    ("read", ("/big.txt", 2990, 50), {}),
    ("ls", ("/",), {}),
    ("ls", ("/src",), {}),
    ("ls", ("/src/",), {}),
    ("ls", ("/src/app",), {}),
    ("ls", ("/nothing",), {}),
    ("ls", ("",), {}),
    ("glob", ("*.py",), {}),
    ("glob", ("**/*.py",), {}),
    ("glob", ("*.py", "/src/app"), {}),
    ("glob", ("/*.txt",), {}),
    ("glob", ("app/*.py", "/src"), {}),
    ("glob", ("../*.py",), {}),
    ("glob", ("*.py", "/src/app/main.py"), {}),
    ("glob", ("*.zzz",), {}),
    ("grep", ("TODO",), {}),
    ("grep", ("TODO", "/src"), {}),
    ("grep", ("TODO", "/src", "*.py"), {}),
    ("grep", ("TODO", None, "../x"), {}),
    ("grep", ("TODO", "/src/app/main.py"), {}),
    ("grep", ("nomatch",), {}),
    ("grep", ("",), {"glob": "*.md"}),
    ("grep", ("TODO",), {"max_count": 2000}),
    ("grep", ("line 5",), {"max_count": 3}),
    ("upload_files", ([("/img.png", b"\x89PNG\r\n\x1a\n\x00\xff"), ("/t.txt", b"text\n")],), {}),
    ("download_files", (["/img.png", "/t.txt", "/missing"],), {}),
    ("read", ("/img.png",), {}),
    ("edit", ("/img.png", "P", "Q"), {}),
    ("grep", ("PNG",), {}),
    ("write", ("/img.png", "now text"), {}),
    ("read", ("/img.png",), {}),
    ("delete", ("/src/app",), {}),
    ("ls", ("/src",), {}),
    ("delete", ("/src/app",), {}),
    ("delete", ("/a.txt",), {}),
    ("delete", ("/nope",), {}),
    ("delete", ("/src/",), {}),
    ("ls", ("/",), {}),
    ("delete", ("/",), {}),
    ("ls", ("/",), {}),
    ("glob", ("**",), {}),
]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_every_method_matches_store_backend(make_backend: Any, store: Any, mode: str) -> None:
    script = [Operation(name, args, kwargs) for name, args, kwargs in SCRIPT]
    if mode == "sync":
        run_operations(make_backend(), store, script)
    else:
        await arun_operations(make_backend(), store, script)


def test_capped_grep_keeps_the_first_matches_in_path_order(make_backend: Any) -> None:
    # The differential check only asks a capped grep for as many real matches as the
    # reference's; which ones is ours to define: the first, in path order.
    backend = make_backend()
    backend.upload_files([("/b.txt", b"x\nx\n"), ("/a.txt", b"x\n"), ("/c/d.txt", b"x\n")])
    capped = backend.grep("x", max_count=2)
    assert capped.truncated
    assert [(m["path"], m["line"]) for m in capped.matches] == [("/a.txt", 1), ("/b.txt", 1)]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("cap", [-1, -5, 0, 1, 2.5, 7.0, float("nan"), float("inf"), True])
async def test_grep_caps_like_deepagents_for_any_number(
    make_backend: Any, store: Any, cap: Any, mode: str
) -> None:
    # deepagents stops at the first match that finds len(matches) >= max_count: a negative
    # cap keeps no match, 2.5 keeps 3. Ours sent a negative cap to the GREP script as "no
    # cap" and sliced with it (-1 kept all matches but the last), and 2.5 raised TypeError.
    # One inline file before a chunked one (4 KB chunks): both search paths take the cap.
    script = [
        Operation("write", ("/a.txt", "x\nx\nx\n")),
        Operation("write", ("/b.txt", "x\n" * 3000)),
        Operation("grep", ("x",), {"max_count": cap}),
        Operation("grep", ("x", "/b.txt"), {"max_count": cap}),
    ]
    if mode == "sync":
        run_operations(make_backend(), store, script)
    else:
        await arun_operations(make_backend(), store, script)
    got = await call(make_backend(), mode, "grep", "x", max_count="3")
    assert got.error == "Error: max_count must be a number, got '3'"


def test_ls_of_a_directory_larger_than_one_summary_batch(make_backend: Any, store: Any) -> None:
    # LS reads file summaries 1,000 per HMGET: 2,345 files (and sub-directories among them)
    # cross two batch boundaries and end inside a third.
    files = [(f"/big/f{i:05d}.txt", f"{i}\n".encode()) for i in range(2345)]
    files += [(f"/big/sub{i}/x.txt", b"x") for i in range(3)]
    backend = make_backend()
    for b in (backend, store):
        b.upload_files(files)

    def shape(entries: Any) -> list[tuple[Any, ...]]:  # written at different moments
        return [(e["path"], e["is_dir"], e["size"]) for e in entries]

    got = backend.ls("/big").entries
    assert len(got) == 2348
    assert all(e["modified_at"] for e in got if not e["is_dir"])
    assert shape(got) == shape(store.ls("/big").entries)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_ls_of_a_big_directory_goes_in_bounded_pages(
    make_backend: Any, store: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # One LS call read the whole directory hash: 50,000 files held the server for 185 ms
    # in one script (everyone else waits that long). Now HSCAN pages of about 2,000.
    files = [(f"/big/f{i:05d}.txt", f"{i}\n".encode()) for i in range(5000)]
    files += [(f"/big/sub{i}/x.txt", b"x") for i in range(3)]
    backend = make_backend()
    for b in (backend, store):
        b.upload_files(files)
    pages: list[int] = []
    run_raw, arun_raw = LuaScript.run_raw, LuaScript.arun_raw

    def spy(script: LuaScript, client: Any, keys: Any = (), args: Any = ()) -> Any:
        reply = run_raw(script, client, keys, args)
        if script.name == "fs_ls" and reply[0] == b"OK":
            pages.append(len(list(_pairs(reply[1], reply[3]))))
        return reply

    async def aspy(script: LuaScript, client: Any, keys: Any = (), args: Any = ()) -> Any:
        reply = await arun_raw(script, client, keys, args)
        if script.name == "fs_ls" and reply[0] == b"OK":
            pages.append(len(list(_pairs(reply[1], reply[3]))))
        return reply

    monkeypatch.setattr(LuaScript, "run_raw", spy)
    monkeypatch.setattr(LuaScript, "arun_raw", aspy)
    got = await call(backend, mode, "ls", "/big")

    assert len(pages) > 1
    assert max(pages) <= 3000
    assert sum(pages) >= 5003

    def shape(entries: Any) -> list[tuple[Any, ...]]:  # written at different moments
        return [(e["path"], e["is_dir"], e["size"]) for e in entries]

    assert shape(got.entries) == shape(store.ls("/big").entries)


class _Counted(str):
    """Decoded text that counts the characters `str + it` copies in front of it."""

    copied = 0

    def __radd__(self, other: str) -> str:
        _Counted.copied += len(other)
        return other + str(self)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_grep_streams_a_long_line_without_copying_it_again_per_batch(
    make_backend: Any, store: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # The streaming grep kept the open line as `carry` and did `carry + text` for every
    # batch of chunks: a line of N bytes was copied N / batch times (quadratic: an 8 MB
    # one-line file with 4 KiB chunks took 1.3 s). 1 MB in 4 KiB chunks is 32 batches.
    text = "a" * (1 << 20) + "NEEDLE" + "b" * 5000 + "\nsecond NEEDLE line\n" + "c" * 9000
    backend = make_backend(chunk_size=4096, spill_threshold=0)
    for b in (backend, store):
        b.write("/min.js", text)
    real = codecs.getincrementaldecoder("utf-8")

    class Decoder:
        def __init__(self) -> None:
            self._decoder = real()

        def decode(self, data: bytes, final: bool = False) -> str:
            return _Counted(self._decoder.decode(data, final))

    monkeypatch.setattr(_search, "codecs", SimpleNamespace(getincrementaldecoder=lambda _: Decoder))
    _Counted.copied = 0
    got = await call(backend, mode, "grep", "NEEDLE")
    assert got.matches == store.grep("NEEDLE").matches
    assert [m["line"] for m in got.matches] == [1, 2]
    assert _Counted.copied <= 2 * len(text)


def test_grep_skips_a_binary_file_whose_stored_base64_holds_the_pattern(
    make_backend: Any, store: Any
) -> None:
    # GREP reads the content first and the encoding only on a match: this binary file's
    # stored form (base64 "needleAB") matches, and must still be skipped.
    import base64

    binary = base64.b64decode("needleAB")
    with pytest.raises(UnicodeDecodeError):
        binary.decode("utf-8")
    files = [("/s/a.bin", binary), ("/s/b.txt", b"no\nneedle here\n")]
    backend = make_backend()
    for b in (backend, store):
        b.upload_files(files)
    want = [{"path": "/s/b.txt", "line": 2, "text": "needle here"}]
    assert backend.grep("needle", "/s").matches == want
    assert store.grep("needle", "/s").matches == want


@pytest.mark.parametrize(("files", "max_bytes"), [(1000, 4 * 1024 * 1024), (3, 10), (2, 1)])
def test_grep_batches_by_files_and_bytes_find_the_same(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, files: int, max_bytes: int
) -> None:
    """Small file and byte budgets per GREP call split the search, never change its result
    (binary, chunked and expired files in between included)."""
    import time

    from deepagents_redis.fs import _search

    backend = make_backend()
    brief = make_backend(namespace=backend.resolve_namespace(), ttl=0.05)
    backend.upload_files(
        [(f"/s/{i:02d}.txt", f"head {i}\nneedle {i}\n".encode()) for i in range(12)]
        + [("/s/03.bin", b"\xffneedle"), ("/s/07.txt", ("needle\n" + "y" * 5000).encode())]
    )
    brief.write("/s/05b.txt", "needle gone soon")
    time.sleep(0.1)
    want = [(f"/s/{i:02d}.txt", 2) for i in range(12)]
    want[7] = ("/s/07.txt", 1)
    monkeypatch.setattr(_search, "_GREP_FILES", files)
    monkeypatch.setattr(_search, "_GREP_BYTES", max_bytes)
    got = backend.grep("needle", "/s")
    assert [(m["path"], m["line"]) for m in got.matches] == want
    capped = backend.grep("needle", "/s", max_count=5)
    assert capped.truncated
    assert [(m["path"], m["line"]) for m in capped.matches] == want[:5]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_chunked_and_spilled_files_round_trip(make_backend: Any, mode: str) -> None:
    ours = make_backend()
    small = "tiny\n"
    chunked = "".join(f"chunk line {i} é\n" for i in range(2000))  # > 4 KiB chunks
    spilled = "".join(f"spilled line {i} ☃\n" for i in range(8000))  # > 64 KiB threshold
    for path, text in [("/s.txt", small), ("/c.txt", chunked), ("/p.txt", spilled)]:
        assert (await call(ours, mode, "write", path, text)).error is None
        res = await call(ours, mode, "read", path, 0, 100_000)
        assert res.file_data["content"] == text
        dl = await call(ours, mode, "download_files", [path])
        assert dl[0].content == text.encode()
    stats = {p: await call(ours, mode, "stat", p) for p in ["/s.txt", "/c.txt", "/p.txt"]}
    assert stats["/s.txt"].chunks == 0
    assert not stats["/s.txt"].spilled
    assert stats["/c.txt"].chunks > 1
    assert not stats["/c.txt"].spilled
    assert stats["/p.txt"].spilled
    assert stats["/p.txt"].chunks == 0
    assert stats["/p.txt"].size == len(spilled.encode())
    # grep streams chunked and spilled files with the same results as a whole-file scan
    res = await call(ours, mode, "grep", "line 1999 ")
    assert [(m["path"], m["line"]) for m in res.matches] == [("/c.txt", 2000), ("/p.txt", 2000)]
    # edit of a spilled file keeps it spilled and replaces its blob
    assert (await call(ours, mode, "edit", "/p.txt", "spilled line 7 ☃", "EDITED")).occurrences == 1
    assert "EDITED" in (await call(ours, mode, "read", "/p.txt", 0, 10)).file_data["content"]
    blobs = list(ours.blob_store.list(""))
    assert len(blobs) == 1  # the old blob was cleaned up
    assert (await call(ours, mode, "delete", "/p.txt")).error is None
    assert list(ours.blob_store.list("")) == []


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_versions_and_expected_version(make_backend: Any, mode: str) -> None:
    ours = make_backend()
    assert (await call(ours, mode, "write", "/v.txt", "one", expected_version=0)).error is None
    first = await call(ours, mode, "stat", "/v.txt")
    assert first.version >= 1
    lost = await call(ours, mode, "write", "/v.txt", "two", expected_version=0)
    assert lost.error is not None
    assert "expected version 0" in lost.error
    ok = await call(ours, mode, "write", "/v.txt", "two", expected_version=first.version)
    assert ok.error is None
    second = await call(ours, mode, "stat", "/v.txt")
    assert second.version > first.version
    assert second.created_at == first.created_at
    stale = await call(ours, mode, "write", "/v.txt", "three", expected_version=first.version)
    assert stale.error is not None
    assert (await call(ours, mode, "read", "/v.txt")).file_data["content"] == "two"
    await call(ours, mode, "edit", "/v.txt", "two", "2")
    assert (await call(ours, mode, "stat", "/v.txt")).version > second.version
    # delete and re-create never reuses a version
    await call(ours, mode, "delete", "/v.txt")
    assert await call(ours, mode, "stat", "/v.txt") is None
    await call(ours, mode, "write", "/v.txt", "again")
    assert (await call(ours, mode, "stat", "/v.txt")).version > second.version


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_max_size_refused_and_nothing_written(make_backend: Any, mode: str) -> None:
    ours = make_backend(max_file_size=10_000)
    res = await call(ours, mode, "write", "/huge.txt", "x" * 10_001)
    assert res.error is not None
    assert "maximum file size" in res.error
    assert await call(ours, mode, "stat", "/huge.txt") is None
    assert (await call(ours, mode, "ls", "/")).entries == []
    up = await call(ours, mode, "upload_files", [("/huge.bin", b"y" * 10_001)])
    assert up[0].error is not None
    assert (await call(ours, mode, "glob", "**")).matches == []
    await call(ours, mode, "write", "/ok.txt", "x" * 9_000)
    grown = await call(ours, mode, "edit", "/ok.txt", "x", "yy", True)
    assert grown.error is not None
    assert "maximum file size" in grown.error
    assert (await call(ours, mode, "read", "/ok.txt", 0, 5)).file_data["content"] == "x" * 9_000


async def test_namespaces_are_exact(make_backend: Any) -> None:
    tag = uuid.uuid4().hex[:6]
    names = [f"{tag}a", f"{tag}a/b", f"{tag}ab", f"{tag}a:b", f"{tag}a{{b}}"]
    backends = {n: make_backend(namespace=n) for n in names}
    for n, b in backends.items():
        await b.awrite("/f.txt", n)
        await b.awrite(f"/d/{len(n)}.txt", n)
    for n, b in backends.items():
        assert (await b.aread("/f.txt")).file_data["content"] == n
        assert [e["path"] for e in (await b.als("/")).entries] == ["/d/", "/f.txt"]
        assert len((await b.aglob("**/*.txt")).matches) == 2
        assert {m["text"] for m in (await b.agrep(tag)).matches} == {n}


async def test_namespace_factory_receives_runtime_and_tuples_are_checked(
    make_backend: Any,
) -> None:
    seen: list[Any] = []

    def factory(rt: Any) -> tuple[str, ...]:
        seen.append(rt)
        return ("user-1", "files")

    b = make_backend(namespace=factory)
    await b.awrite("/x", "1")
    assert seen == [None]  # outside a graph the runtime is None, like StoreBackend
    assert b.resolve_namespace() == "user-1/files"
    bad = make_backend(namespace=lambda _rt: ("a*",))
    with pytest.raises(ValueError, match="disallowed"):
        await bad.aread("/x")


def test_sync_methods_on_both_targets(make_backend: Any) -> None:
    """The sync client path (no event loop at all)."""
    b = make_backend()
    assert b.write("/a/b.txt", "x\n").error is None
    assert b.read("/a/b.txt").file_data["content"] == "x\n"
    assert b.edit("/a/b.txt", "x", "y").occurrences == 1
    assert [e["path"] for e in b.ls("/a").entries] == ["/a/b.txt"]
    assert [m["path"] for m in b.glob("*.txt").matches] == ["/a/b.txt"]
    assert b.grep("y").matches == [{"path": "/a/b.txt", "line": 1, "text": "y"}]
    assert b.upload_files([("/u", b"\xff")])[0].error is None
    assert b.download_files(["/u"])[0].content == b"\xff"
    assert b.delete("/a").error is None
    assert b.stat("/a/b.txt") is None


def test_results_are_plain_protocol_types(make_backend: Any) -> None:
    b = make_backend()
    from deepagents.backends.protocol import ReadResult, WriteResult

    assert type(b.write("/x", "1")) is WriteResult
    assert type(b.read("/x")) is ReadResult
    assert dataclasses.is_dataclass(b.stat("/x"))


def test_clients_that_decode_responses_are_refused(redis_url: str) -> None:
    import redis
    from deepagents_redis.core import ConfigurationError

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ConfigurationError, match="decode_responses=False"):
            RedisBackend(client=client)
    finally:
        client.close()


@pytest.mark.parametrize("mode", ["warn", "refuse", "off"])
def test_eviction_policy_check_before_the_first_write(
    redis_server_factory: Any, caplog: pytest.LogCaptureFixture, mode: str, tmp_path: Any
) -> None:
    # Files have no TTL: an allkeys-* server can evict them silently (before: fs never
    # looked; todos did). One check, core's EvictionGuard, before the first write.
    import logging

    from deepagents_redis.core import ConfigurationError, RedisSettings
    from deepagents_redis.fs import RedisBackend

    server = redis_server_factory(config={"maxmemory-policy": "allkeys-lru"})
    backend = RedisBackend(
        settings=RedisSettings(url=server.url, key_prefix="p"),
        blob_dir=str(tmp_path),
        eviction_check=mode,  # type: ignore[arg-type]
    )
    try:
        with caplog.at_level(logging.WARNING, logger="deepagents_redis.fs"):
            assert backend.ls("/").entries == []  # reads never check
            if mode == "refuse":
                with pytest.raises(ConfigurationError, match="allkeys-lru"):
                    backend.write("/a.txt", "one")
                assert backend.ls("/").entries == []
            else:
                assert backend.write("/a.txt", "one").error is None
                assert backend.write("/b.txt", "two").error is None
        warned = [r for r in caplog.records if "can evict agent files" in r.getMessage()]
        assert len(warned) == (1 if mode == "warn" else 0)
    finally:
        backend.close()


# upload_files with a content that is not bytes: the files before it in the batch were
# written, then it raised (a str: TypeError), or an int n silently became n zero bytes. Like
# deepagents' own backends it raises (its FileUploadResponse codes name path conditions, not
# a caller's type error), but now before anything is written, as core's InvalidInputError.
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(("/b.txt", "text, not bytes"), id="str"),
        pytest.param(("/b.txt", 5), id="int"),
        pytest.param(("/b.txt", None), id="none"),
        pytest.param(("/b.txt", [104, 105]), id="list"),
        pytest.param(("/b.txt",), id="not-a-pair"),
        pytest.param("/b.txt", id="bare-path"),
    ],
)
async def test_upload_with_a_bad_item_writes_nothing(
    make_backend: Any, mode: str, bad: Any
) -> None:
    from deepagents_redis.core import InvalidInputError

    ours = make_backend()
    files = [("/a.txt", b"first\n"), bad, ("/c.bin", b"\xff\x00")]
    with pytest.raises(InvalidInputError, match="item 1"):
        await call(ours, mode, "upload_files", files)
    assert (await call(ours, mode, "glob", "**")).matches == []
    assert await call(ours, mode, "stat", "/a.txt") is None


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("old", "new", "which"),
    [
        pytest.param(None, "x", "old_string", id="old-none"),
        pytest.param("body", None, "new_string", id="new-none"),
        pytest.param(b"body", "x", "old_string", id="old-bytes"),
        pytest.param("body", 5, "new_string", id="new-int"),
    ],
)
async def test_edit_with_a_non_string_argument_is_an_error_result(
    make_backend: Any, mode: str, old: Any, new: Any, which: str
) -> None:
    # as `write` answers a non-str content: an error result naming it, nothing written (a
    # None new_string raised a bare TypeError; a None old_string was called "empty")
    ours = make_backend()
    for path, text in (("/small.txt", "body\n"), ("/big.txt", "body\n" * 2000)):  # Lua / client
        assert (await call(ours, mode, "write", path, text)).error is None
        before = await call(ours, mode, "stat", path)
        got = await call(ours, mode, "edit", path, old, new)
        assert (
            got.error
            == f"Error: {which} must be a string, got {type(old if which == 'old_string' else new)}"
        )
        assert await call(ours, mode, "stat", path) == before


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_upload_takes_bytes_like_content(make_backend: Any, mode: str) -> None:
    ours = make_backend()
    files = [("/a.txt", bytearray(b"one\n")), ("/b.bin", memoryview(b"\xff\x01")), ("/c", b"")]
    up = await call(ours, mode, "upload_files", files)
    assert [r.error for r in up] == [None, None, None]
    down = await call(ours, mode, "download_files", ["/a.txt", "/b.bin", "/c"])
    assert [d.content for d in down] == [b"one\n", b"\xff\x01", b""]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["text", "binary"])
async def test_upload_holds_no_decoded_copy_of_the_file(
    make_backend: Any, mode: str, kind: str
) -> None:
    """upload_files decoded a text file whole and encoded it again (two more copies of it:
    a 256 MB upload peaked at ~3x), and a binary file's base64 was made as text and then
    encoded (twice its 4/3). Now the UTF-8 is checked a piece at a time and stored as
    given, and the base64 made once, as bytes (memory traced with tracemalloc; the content
    itself was allocated before tracing started)."""
    import tracemalloc

    size = 8 * 1024 * 1024
    ours = make_backend(spill_threshold=64 * 1024, max_file_size=4 * size)
    if kind == "text":
        content = ("é and some text\n" * (size // 17 + 1)).encode()[:size]
        content = content[: content.rfind(b"\n") + 1]  # whole characters
        stored = len(content)
    else:
        content = bytes(range(256)) * (size // 256)
        stored = len(content) * 4 // 3 + 4
    tracemalloc.start()
    try:
        up = await call(ours, mode, "upload_files", [("/big.dat", content)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.error for r in up] == [None]
    # a text file: itself and a 1 MB piece (was ~3x); base64: its bytes once, built in a
    # buffer that peaks at ~1.5x them inside binascii (was ~2.3x: text, then bytes)
    limit = stored + size // 2 if kind == "text" else 2 * stored
    assert peak < limit, (peak, stored)
    got = await call(ours, mode, "download_files", ["/big.dat"])
    assert got[0].content == content
    assert (await call(ours, mode, "stat", "/big.dat")).encoding == (
        "utf-8" if kind == "text" else "base64"
    )


def test_upload_stores_what_deepagents_would_for_any_bytes() -> None:
    """The piecewise UTF-8 check takes exactly what ``bytes.decode("utf-8")`` takes, with
    pieces cut anywhere inside a character."""
    import base64

    from deepagents_redis.fs import _files
    from hypothesis import given, settings
    from hypothesis import strategies as st

    def reference(content: bytes) -> tuple[bytes, str]:
        try:
            return content.decode("utf-8").encode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.standard_b64encode(content), "base64"

    texts = st.text().map(lambda t: t.encode("utf-8", "surrogatepass"))
    pieces = st.lists(st.one_of(texts, st.binary(max_size=6)), max_size=6).map(b"".join)

    @settings(max_examples=300, deadline=None)
    @given(content=pieces, piece=st.integers(1, 5))
    def check(content: bytes, piece: int) -> None:
        saved = _files._UTF8_PIECE
        _files._UTF8_PIECE = piece
        try:
            assert _files._stored_upload(content) == reference(content)
        finally:
            _files._UTF8_PIECE = saved

    check()
