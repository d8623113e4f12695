"""Big files (chunked, spilled), TTL rules, torn reads at expiry, refresh, blob GC."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from deepagents_redis.core import LuaScript
from deepagents_redis.fs import LocalBlobStore, RedisBackend

pytestmark = pytest.mark.integration

MB = 1024 * 1024


def _text(size: int, tag: str) -> str:
    line = f"{tag} " + "x" * 90 + "\n"
    return line * (size // len(line))


def test_10mb_file_chunked_round_trip(make_backend: Any) -> None:
    b: RedisBackend = make_backend(chunk_size=256 * 1024, spill_threshold=32 * MB)
    text = _text(10 * MB, "ten")
    assert b.write("/big/ten.txt", text).error is None
    st = b.stat("/big/ten.txt")
    assert st.chunks == -(-len(text.encode()) // (256 * 1024))
    assert not st.spilled
    got = b.download_files(["/big/ten.txt"])[0].content
    assert hashlib.sha256(got).digest() == hashlib.sha256(text.encode()).digest()
    window = b.read("/big/ten.txt", 1000, 2)
    assert (
        window.file_data["content"] == text.split("\n", 1)[0] + "\n" + text.split("\n", 1)[0] + "\n"
    )
    assert window.total_lines == text.count("\n")
    assert b.grep("nomatch-anywhere").matches == []
    assert b.delete("/big").error is None
    assert b.stat("/big/ten.txt") is None


@pytest.mark.parametrize("redis_target", ["standalone"], indirect=True)
def test_100mb_file_spilled_round_trip(make_backend: Any, tmp_path: Any) -> None:
    b: RedisBackend = make_backend(
        chunk_size=256 * 1024, spill_threshold=32 * MB, max_file_size=128 * MB
    )
    data = _text(100 * MB, "hundred").encode()
    digest = hashlib.sha256(data).digest()
    assert b.upload_files([("/big/hundred.txt", data)])[0].error is None
    del data
    st = b.stat("/big/hundred.txt")
    assert st.spilled
    assert st.chunks == 0
    assert len(list(b.blob_store.list(""))) == 1
    got = b.download_files(["/big/hundred.txt"])[0].content
    assert hashlib.sha256(got).digest() == digest
    del got
    assert b.grep("hundred", "/big", max_count=3).truncated
    assert b.delete("/big/hundred.txt").error is None
    assert list(b.blob_store.list("")) == []


def test_ttl_default_and_prefix_rules(make_backend: Any) -> None:
    b: RedisBackend = make_backend(ttl=500, ttl_rules={"/large_tool_results/": 60, "/keep/": None})
    b.write("/notes.md", "n")
    b.write("/large_tool_results/call-1", "r")
    b.write("/keep/forever.md", "k")
    now = time.time()
    notes, tool, keep = (
        b.stat(p) for p in ["/notes.md", "/large_tool_results/call-1", "/keep/forever.md"]
    )
    assert 400 < notes.expires_at - now <= 500
    assert 0 < tool.expires_at - now <= 60
    assert keep.expires_at is None
    # a write without a rule keeps no expiry
    plain = make_backend()
    plain.write("/x", "1")
    assert plain.stat("/x").expires_at is None


@pytest.mark.parametrize("size", [10, 8000, MB + 1000], ids=["inline", "chunked", "staged"])
def test_lifetime_follows_each_rewrite(make_backend: Any, size: int) -> None:
    """Rewrites between lifetimes leave no stray TTL or expiry entry (the write script only
    clears lifetimes when the file had one, is new, or its chunks came from a stage)."""
    ns = f"ns-{time.time_ns()}"
    forever: RedisBackend = make_backend(namespace=ns, spill_threshold=0)
    brief: RedisBackend = make_backend(namespace=ns, spill_threshold=0, ttl=300)
    client = forever.connector.client()
    meta, chunks = forever._k(ns, "m", "/f"), forever._k(ns, "c", "/f")
    exp = forever._k(ns, "exp")

    def check(lifetime: bool) -> None:
        ttls = [client.pttl(meta)] + ([client.pttl(chunks)] if size > 4096 else [])
        if lifetime:
            assert all(t > 0 for t in ttls), ttls
            assert client.zscore(exp, "/f") is not None
        else:
            assert ttls == [-1] * len(ttls), ttls
            assert client.zscore(exp, "/f") is None
        assert forever.read("/f", 0, 1).error is None

    for writer, lifetime in [
        (forever, False),
        (forever, False),
        (brief, True),
        (forever, False),
        (brief, True),
        (brief, True),
        (forever, False),
    ]:
        writer.write("/f", _text(size, "v") or "v")
        check(lifetime)
    assert [e["path"] for e in forever.ls("/").entries] == ["/f"]


def test_refresh_on_read_restarts_the_lifetime(make_backend: Any) -> None:
    b: RedisBackend = make_backend(ttl=30, refresh_ttl_on_read=True)
    b.write("/f", "x")
    first = b.stat("/f").expires_at
    time.sleep(0.02)
    assert b.read("/f").file_data["content"] == "x"
    assert b.stat("/f").expires_at > first
    no_refresh = make_backend(ttl=30)
    no_refresh.write("/f", "x")
    first = no_refresh.stat("/f").expires_at
    time.sleep(0.02)
    no_refresh.read("/f")
    assert no_refresh.stat("/f").expires_at == first


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_refreshing_read_keeps_the_chunks_out_of_lua(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # The READ script restarted the lifetime and answered every chunk: a refreshing read of
    # a 1 MB file copied 1 MB into Lua and out again, holding the server (10 MB: ~12 ms).
    b: RedisBackend = make_backend(ttl=30, refresh_ttl_on_read=True, spill_threshold=0)
    text = _text(MB, "refresh")
    assert b.write("/r.txt", text).error is None
    before = b.stat("/r.txt").expires_at
    carried: list[int] = []
    run_raw, arun_raw = LuaScript.run_raw, LuaScript.arun_raw

    def spy(script: LuaScript, client: Any, keys: Any = (), args: Any = ()) -> Any:
        reply = run_raw(script, client, keys, args)
        if script.name == "fs_read":
            carried.append(sum(len(x) for x in reply if isinstance(x, bytes)))
        return reply

    async def aspy(script: LuaScript, client: Any, keys: Any = (), args: Any = ()) -> Any:
        reply = await arun_raw(script, client, keys, args)
        if script.name == "fs_read":
            carried.append(sum(len(x) for x in reply if isinstance(x, bytes)))
        return reply

    monkeypatch.setattr(LuaScript, "run_raw", spy)
    monkeypatch.setattr(LuaScript, "arun_raw", aspy)
    if mode == "sync":
        whole = b.read("/r.txt", 0, 100_000)
        got = b.download_files(["/r.txt"])[0].content
    else:
        whole = await b.aread("/r.txt", 0, 100_000)
        got = (await b.adownload_files(["/r.txt"]))[0].content
    assert whole.file_data is not None
    assert whole.file_data["content"] == text
    assert got == text.encode()
    assert len(carried) == 2  # one refresh per call
    assert max(carried) < 4096  # metadata only
    assert b.stat("/r.txt").expires_at >= before  # (restarted: not earlier)


@pytest.mark.parametrize("grace", [60.0, 0.0], ids=["grace", "no-grace"])
@pytest.mark.parametrize("layout", ["inline", "chunked", "spilled"])
def test_no_torn_reads_at_ttl_expiry(make_backend: Any, grace: float, layout: str) -> None:
    size = {"inline": 2_000, "chunked": 40_000, "spilled": 100_000}[layout]
    # 1 s: long enough that a pause on a loaded CI machine cannot expire the file before the
    # first stat/read below, short enough to keep the test quick.
    b: RedisBackend = make_backend(ttl=1.0, chunk_grace=grace)
    text = _text(size, layout)
    b.write("/d/f.txt", text)
    b.write("/d/g.txt", "other")
    assert (b.stat("/d/f.txt").chunks > 0) == (layout == "chunked")
    assert b.stat("/d/f.txt").spilled == (layout == "spilled")
    whole = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        res = b.read("/d/f.txt", 0, 1_000_000)
        if res.error is not None:
            assert res.error == "File '/d/f.txt' not found"
            break
        assert res.file_data["content"] == text  # never a torn or partial file
        whole += 1
    else:
        pytest.fail("the file never expired")
    assert whole > 0
    while b.stat("/d/g.txt") is not None and time.monotonic() < deadline:
        time.sleep(0.01)  # g.txt was written a moment later
    # index entries of expired files disappear from every listing
    assert b.ls("/").entries == []
    assert b.ls("/d").entries == []
    assert b.glob("**").matches == []
    assert b.grep(layout).matches == []
    assert b.delete("/d").error == "Error: File '/d' not found"
    assert b.download_files(["/d/f.txt"])[0].error == "file_not_found"


def _wait_until_expired(b: RedisBackend, path: str) -> None:
    deadline = time.monotonic() + 10
    while b.stat(path) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b.stat(path) is None


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_writes_drop_the_index_entries_of_expired_files(
    make_backend: Any, redis_target: Any, mode: str
) -> None:
    # Only ls purged the index entries of expired files: a namespace whose files expired
    # and that nobody listed kept every expired path in idx, files, exp and its directory
    # hashes for good (500 expired files: 500 entries each, after any number of writes,
    # reads, globs and greps). A write that sees some now purges a batch of them.
    b: RedisBackend = make_backend(ttl_rules={"/tmp/": 1.0})
    for i in range(250):
        assert b.write(f"/tmp/{i % 5}/r{i}.txt", "x").error is None
    _wait_until_expired(b, "/tmp/4/r249.txt")
    head = b._head(b.resolve_namespace())
    raw = redis_target.client
    assert raw.zcard(f"{head}:idx") >= 1  # (a slow machine's own writes above may purge)
    for i in range(2):  # a batch (200) per write that finds expired entries
        path = f"/keep/k{i}.txt"
        result = b.write(path, "y") if mode == "sync" else await b.awrite(path, "y")
        assert result.error is None
    assert raw.zcard(f"{head}:idx") == 2
    assert raw.hlen(f"{head}:files") == 2
    assert raw.zcard(f"{head}:exp") == 0
    assert raw.hgetall(f"{head}:d:/") == {b"keep/": b"2"}
    assert [e["path"] for e in b.ls("/").entries or []] == ["/keep/"]
    assert sorted(m["path"] for m in b.glob("**").matches or []) == ["/keep/k0.txt", "/keep/k1.txt"]


def test_gc_removes_blobs_of_expired_files_and_orphans(make_backend: Any, tmp_path: Any) -> None:
    store = LocalBlobStore(tmp_path / "gc-blobs")
    b: RedisBackend = make_backend(blob_store=store, ttl_rules={"/tmp/": 0.2}, chunk_grace=0)
    b.write("/tmp/big.txt", _text(100_000, "tmp"))
    b.write("/kept.txt", _text(100_000, "kept"))
    assert len(list(store.list(""))) == 2
    # an orphan, as left by a writer that died between uploading and committing
    # (the namespace's blob folder: where its files' blobs are, the path hash and token cut)
    home = b.stat("/kept.txt").blob_ref.rsplit("/", 2)[0] + "/"
    store.put(home + "deadbeef/orphan", b"left behind")
    deadline = time.monotonic() + 10
    while b.stat("/tmp/big.txt") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.stat("/tmp/big.txt") is None
    time.sleep(0.01)
    assert b.gc(orphan_grace=0) == 2
    assert [ref for ref, _ in store.list("")] == [b.stat("/kept.txt").blob_ref]
    assert b.read("/kept.txt", 0, 1).file_data["content"].startswith("kept")
