"""Big chunked writes stage their chunks, then commit them with the write script.

The chunks go to a stage hash (one MULTI, with a TTL) and the op-id write script RENAMEs it
over the chunk hash in the same step that switches the metadata. What must hold, checked on
a real server: a reader never sees a partial file; a retried commit is applied once; a
conflict or a lost stage writes nothing; an abandoned stage expires; nothing is left behind.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.exceptions as rexc
from deepagents_redis.core import DeepAgentsRedisError, InvalidInputError, RedisSettings, Snapshot
from deepagents_redis.fs import RedisBackend, _common
from deepagents_redis.fs._common import _STAGE_TTL_MS, _WRITE
from deepagents_redis.fs._lines import line_index

pytestmark = pytest.mark.integration

CHUNK = 4096
DEFAULT_STAGE_MIN = _common._STAGE_MIN  # before the fixture below lowers it


@pytest.fixture(autouse=True)
def _stage_small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    # stage anything over two chunks, so test files stay small
    monkeypatch.setattr(_common, "_STAGE_MIN", 2 * CHUNK)


def _text(tag: str, size: int = 10 * CHUNK + 123) -> str:
    line = f"{tag} line of a big file\n"
    return (line * (size // len(line) + 1))[:size]


def _stages(backend: RedisBackend) -> list[Any]:
    head = backend._head(backend.resolve_namespace())
    return list(backend.connector.client().scan_iter(match=f"{head}:s:*"))


def _content(backend: RedisBackend, path: str) -> str:
    got = backend.read(path, 0, 100_000)
    assert got.error is None, got.error
    assert got.file_data is not None
    return got.file_data["content"]


def test_big_write_is_staged_and_read_back(make_backend: Any) -> None:
    b = make_backend(chunk_size=CHUNK, spill_threshold=0)
    for tag in ("first", "second"):  # create, then overwrite a chunked file
        text = _text(tag)
        assert b.write("/big.txt", text).error is None
        assert _content(b, "/big.txt") == text
        stat = b.stat("/big.txt")
        assert stat is not None
        assert stat.chunks == 11
        assert stat.size == len(text)
        assert _stages(b) == []
        # the chunk hash holds exactly this generation's chunks
        ckey = b._k(b.resolve_namespace(), "c", "/big.txt")
        assert len(b.connector.client().hkeys(ckey)) == 11
        assert b.connector.client().ttl(ckey) == -1  # no TTL left from the stage
    assert b.download_files(["/big.txt"])[0].content == _text("second").encode()


@pytest.mark.parametrize("tag", ["ascii", "naïve"])  # encoded batch by batch / whole
def test_a_big_stage_goes_in_batches(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, tag: str
) -> None:
    monkeypatch.setattr(_common, "_STAGE_BATCH", 3 * CHUNK)
    batches: list[int] = []

    def counted(cmds: Any, fallback: Any) -> Snapshot:
        batches.append((len(cmds[0]) - 2) // 2)  # HSET key f1 v1 f2 v2 ...
        return Snapshot(cmds, fallback)

    monkeypatch.setattr(_common, "Snapshot", counted)
    b = make_backend(chunk_size=CHUNK, spill_threshold=0)
    text = _text(tag)
    assert b.write("/big.txt", text).error is None
    assert batches == [3, 3, 3, 2]  # 11 chunks
    assert _content(b, "/big.txt") == text
    assert _stages(b) == []
    ns = b.resolve_namespace()
    meta = b.connector.client().hmget(b._k(ns, "m", "/big.txt"), "g", "L")
    assert meta[1] == line_index(meta[0].decode(), text.encode(), CHUNK).encode()
    assert b.read("/big.txt", 400, 3).file_data["content"] == "".join(
        text.splitlines(keepends=True)[400:403]
    )


def test_a_hostile_stored_field_stops_an_edit_before_anything_is_sent(make_backend: Any) -> None:
    # the write header joins its fields with NUL: a NUL in the stored created_at (garbage in
    # Redis) must refuse the edit before its chunks are staged, and change nothing
    b = make_backend(chunk_size=CHUNK, spill_threshold=0)
    text = _text("old")
    assert b.write("/big.txt", text).error is None
    meta_key = b._k(b.resolve_namespace(), "m", "/big.txt")
    b.connector.client().hset(meta_key, "ca", "2026\x00evil")
    before = b.stat("/big.txt")
    with pytest.raises(InvalidInputError, match="NUL"):
        b.edit("/big.txt", "old line", "new line", replace_all=True)
    assert b.stat("/big.txt") == before
    assert _content(b, "/big.txt") == text
    assert _stages(b) == []


def test_staged_write_honours_the_file_ttl(make_backend: Any) -> None:
    b = make_backend(chunk_size=CHUNK, spill_threshold=0, ttl=3600)
    assert b.write("/big.txt", _text("ttl")).error is None
    client = b.connector.client()
    ckey = b._k(b.resolve_namespace(), "c", "/big.txt")
    # the file's TTL plus the chunk grace, not the stage's ten minutes
    assert 3600 < client.ttl(ckey) <= 3600 + 60


@pytest.mark.parametrize("cluster_multi", [True, False])
async def test_async_staged_write(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, redis_target: Any, cluster_multi: bool
) -> None:
    """Async staging: MULTI, or the fs_stage script on an asyncio cluster client of a
    redis-py without cluster transactions (core's `_ASYNC_CLUSTER_MULTI` off)."""
    from deepagents_redis.core import _driver

    monkeypatch.setattr(_driver, "_ASYNC_CLUSTER_MULTI", cluster_multi)
    staged_by_script: list[str] = []
    script_type = type(_common._STAGE)
    real_acall = script_type.acall

    async def acall(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self is _common._STAGE:
            staged_by_script.append(self.name)
        return await real_acall(self, *args, **kwargs)

    monkeypatch.setattr(script_type, "acall", acall)
    b = make_backend(chunk_size=CHUNK, spill_threshold=0)
    text = _text("async")
    assert (await b.awrite("/big.txt", text)).error is None
    got = await b.aread("/big.txt", 0, 100_000)
    assert got.file_data is not None
    assert got.file_data["content"] == text
    assert _stages(b) == []
    by_script = redis_target.mode == "cluster" and not cluster_multi
    assert bool(staged_by_script) == by_script


def test_conflicting_staged_write_writes_nothing_and_drops_its_stage(make_backend: Any) -> None:
    b = make_backend(chunk_size=CHUNK, spill_threshold=0)
    assert b.write("/big.txt", _text("old")).error is None
    stat = b.stat("/big.txt")
    assert stat is not None
    result = b.write("/big.txt", _text("new"), expected_version=stat.version + 5)
    assert result.error is not None
    assert "changed" in result.error
    assert _content(b, "/big.txt") == _text("old")
    assert b.stat("/big.txt") == stat
    assert _stages(b) == []


def test_readers_never_see_a_partial_big_file(make_backend: Any) -> None:
    writer = make_backend(chunk_size=CHUNK, spill_threshold=0)
    reader = make_backend(chunk_size=CHUNK, spill_threshold=0, namespace=writer.resolve_namespace())
    versions = {_text("a"), _text("b", 12 * CHUNK), _text("c", 3 * CHUNK)}
    assert writer.write("/big.txt", _text("a")).error is None
    done = threading.Event()
    failures: list[str] = []

    def write_loop() -> None:
        try:
            for i in range(60):
                text = sorted(versions)[i % 3]
                if writer.write("/big.txt", text).error is not None:
                    failures.append("write failed")
        finally:
            done.set()

    thread = threading.Thread(target=write_loop)
    thread.start()
    reads = 0
    while not done.is_set() or reads < 20:
        if _content(reader, "/big.txt") not in versions:
            failures.append("a read returned content no write wrote")
        reads += 1
        if reads > 5000:
            break
    thread.join(60)
    assert not thread.is_alive()
    assert failures == []


# ------------------------------------------------------- failed writes remove their stage


class _Died(BaseException):
    """A process dying (no `Exception`: nothing after it is meant to run)."""


def _failing_batch(monkeypatch: pytest.MonkeyPatch, fail_at: int) -> list[int]:
    """Make staging batch number `fail_at` (1-based) fail on the server after its HSET.

    Its PEXPIRE gets a non-integer TTL: Redis runs the HSET and refuses the PEXPIRE (in the
    MULTI, or in the fs_stage script of the async cluster fallback), so the failure comes
    after that batch's chunks were stored, as a reset or a full server would leave them.
    """
    calls: list[int] = []
    real = _common.Snapshot

    def snapshot(cmds: Any, fallback: Any) -> Snapshot:
        calls.append(1)
        if len(calls) == fail_at:
            cmds = [cmds[0], ("PEXPIRE", cmds[1][1], "soon")]
            fallback = type(fallback)(fallback.script, fallback.keys, ["soon", *fallback.args[1:]])
        return real(cmds, fallback)

    monkeypatch.setattr(_common, "Snapshot", snapshot)
    monkeypatch.setattr(_common, "_STAGE_BATCH", 3 * CHUNK)
    return calls


@pytest.mark.parametrize("fail_at", [1, 3])
async def test_a_write_that_fails_while_staging_removes_its_stage(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    """A big write failing part-way left its staged chunks in Redis for 10 minutes (the
    stage's TTL): an agent retrying a large file held every attempt's bytes that long."""
    b = make_backend(chunk_size=CHUNK, spill_threshold=0)
    assert b.write("/big.txt", _text("old")).error is None
    stat = b.stat("/big.txt")
    calls = _failing_batch(monkeypatch, fail_at)
    with pytest.raises(DeepAgentsRedisError):
        b.write("/big.txt", _text("new"))
    assert len(calls) == fail_at
    assert _stages(b) == []
    assert b.stat("/big.txt") == stat
    assert _content(b, "/big.txt") == _text("old")
    calls.clear()
    with pytest.raises(DeepAgentsRedisError):
        await b.awrite("/big.txt", _text("new"))
    assert len(calls) == fail_at
    assert _stages(b) == []
    assert b.stat("/big.txt") == stat


async def test_a_write_whose_commit_fails_removes_its_stage(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the commit script refuses the call (a malformed header: nothing written, nothing
    # recorded) after every chunk was staged; an edit commits through the same path
    b = make_backend(chunk_size=CHUNK, spill_threshold=0)
    assert b.write("/big.txt", _text("old")).error is None
    stat = b.stat("/big.txt")
    real = _common.Idempotent

    def refused(script: Any, op_key: Any, keys: Any, args: Any, **kw: Any) -> Any:
        return real(script, op_key, keys, ["bad header", *args[1:]], **kw)

    monkeypatch.setattr(_common, "Idempotent", refused)
    with pytest.raises(DeepAgentsRedisError, match="malformed header"):
        b.write("/big.txt", _text("new"))
    assert _stages(b) == []
    with pytest.raises(DeepAgentsRedisError, match="malformed header"):
        await b.awrite("/big.txt", _text("new"))
    assert _stages(b) == []
    with pytest.raises(DeepAgentsRedisError, match="malformed header"):
        b.upload_files([("/big.txt", _text("new").encode())])
    assert _stages(b) == []
    assert b.stat("/big.txt") == stat
    assert _content(b, "/big.txt") == _text("old")


async def test_a_cancelled_staged_write_leaves_its_stage_to_the_next_call(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cancelled task does no more I/O for the write; the backend's next call removes it.
    b = make_backend(chunk_size=CHUNK, spill_threshold=0)
    monkeypatch.setattr(_common, "_STAGE_BATCH", 3 * CHUNK)
    calls: list[int] = []
    real = _common.Snapshot

    def snapshot(cmds: Any, fallback: Any) -> Snapshot:
        calls.append(1)
        if len(calls) == 2:
            raise asyncio.CancelledError
        return real(cmds, fallback)

    monkeypatch.setattr(_common, "Snapshot", snapshot)
    with pytest.raises(asyncio.CancelledError):
        await b.awrite("/big.txt", _text("new"))
    assert len(_stages(b)) == 1  # the first batch
    monkeypatch.setattr(_common, "Snapshot", real)
    assert (await b.aread("/other.txt")).error is not None  # any call: not found
    assert _stages(b) == []
    assert await b.astat("/big.txt") is None


async def test_stages_of_several_namespaces_are_removed_together(make_backend: Any) -> None:
    # one pipeline of UNLINKs, whose keys sit in as many Cluster slots as namespaces
    b = make_backend(chunk_size=CHUNK, spill_threshold=0)
    client = b.connector.client()
    for sync in (True, False):
        stages = [f"{b._head(f'ns-{uuid.uuid4().hex[:6]}-{i}')}:s:/x:1".encode() for i in range(4)]
        for key in stages:
            client.hset(key, "1:0", "x")
            b._abandon(key)
        got = b.read("/none.txt") if sync else await b.aread("/none.txt")
        assert got.error is not None
        assert client.exists(*stages) == 0
        assert b._abandoned == {}


@pytest.mark.parametrize("how", ["close", "aclose"])
async def test_closing_the_backend_removes_the_stage_of_an_interrupted_write(
    make_backend: Any, redis_target: Any, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # a service shutting down cancels its in-flight writes, then closes its backend
    b = make_backend(chunk_size=CHUNK, spill_threshold=0)
    monkeypatch.setattr(_common, "_STAGE_BATCH", 3 * CHUNK)
    calls: list[int] = []
    real = _common.Snapshot

    def snapshot(cmds: Any, fallback: Any) -> Snapshot:
        calls.append(1)
        if len(calls) == 2:
            raise asyncio.CancelledError
        return real(cmds, fallback)

    monkeypatch.setattr(_common, "Snapshot", snapshot)
    with pytest.raises(asyncio.CancelledError):
        await b.awrite("/big.txt", _text("new"))
    stages = _stages(b)
    assert len(stages) == 1
    if how == "close":
        b.close()
    else:
        await b.aclose()
    assert redis_target.client.exists(*stages) == 0


def test_a_write_refused_by_a_full_server_removes_what_it_staged(
    redis_server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server fills up while a big write stages: the batches already staged were held
    for 10 minutes on a server that had no memory to spare. UNLINK is allowed when full."""
    server = redis_server_factory(config={"maxmemory-policy": "noeviction"})
    settings = RedisSettings(url=server.url, cluster="off", key_prefix="full")
    b = RedisBackend(
        settings=settings,
        namespace="full",
        chunk_size=CHUNK,
        spill_threshold=0,
        eviction_check="off",
    )
    client = redis.Redis.from_url(server.url)
    try:
        monkeypatch.setattr(_common, "_STAGE_BATCH", 3 * CHUNK)
        calls: list[int] = []
        real = _common.Snapshot

        def snapshot(cmds: Any, fallback: Any) -> Snapshot:
            calls.append(1)
            if len(calls) == 2:
                client.config_set("maxmemory", "1")  # full from here on
            return real(cmds, fallback)

        monkeypatch.setattr(_common, "Snapshot", snapshot)
        with pytest.raises(DeepAgentsRedisError, match="maxmemory"):
            b.write("/big.txt", _text("new"))
        assert len(calls) == 2
        assert list(client.scan_iter(match="full*:s:*")) == []
    finally:
        client.config_set("maxmemory", "0")
        client.close()
        b.close()


def test_a_stage_the_server_refuses_to_remove_is_left_to_its_ttl(
    redis_server_factory: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # An ACL without UNLINK: the removal is refused once, with a warning, and not tried
    # again on every later call (a round trip and a warning each).
    server = redis_server_factory()
    admin = redis.Redis.from_url(server.url)
    admin.acl_setuser(
        "agent", enabled=True, passwords=["+pw"], keys=["~*"], commands=["+@all", "-unlink"]
    )
    url = server.url.replace("redis://", "redis://agent:pw@")
    settings = RedisSettings(url=url, cluster="off", key_prefix="acl")
    b = RedisBackend(
        settings=settings,
        namespace="acl",
        chunk_size=CHUNK,
        spill_threshold=0,
        eviction_check="off",
    )
    try:
        _failing_batch(monkeypatch, 2)
        with caplog.at_level("WARNING", logger="deepagents_redis.fs"):
            with pytest.raises(DeepAgentsRedisError):
                b.write("/big.txt", _text("new"))
            assert len(list(admin.scan_iter(match="acl*:s:*"))) == 1
            assert [r.message for r in caplog.records if "staged chunk" in r.message]
            caplog.clear()
            assert b.write("/small.txt", "x").error is None
            assert b.read("/small.txt").error is None
            assert not [r for r in caplog.records if "staged chunk" in r.message]
    finally:
        b.close()
        admin.close()


def test_a_stage_whose_removal_failed_is_removed_by_a_later_call(
    redis_url: str, fault_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections reset in the middle of staging: the write fails, its stage cannot be
    removed then (the server is unreachable), and the backend's next call removes it."""
    proxy = fault_proxy(redis_url)
    settings = RedisSettings(url=proxy.url, cluster="off", key_prefix=f"stg-{uuid.uuid4().hex[:6]}")
    b = RedisBackend(
        settings=settings,
        namespace="reset",
        chunk_size=CHUNK,
        spill_threshold=0,
        deadline_seconds=3,
        eviction_check="off",
    )
    direct = redis.Redis.from_url(redis_url)
    try:
        monkeypatch.setattr(_common, "_STAGE_BATCH", 3 * CHUNK)
        calls: list[int] = []
        real = _common.Snapshot

        def snapshot(cmds: Any, fallback: Any) -> Snapshot:
            calls.append(1)
            if len(calls) == 3:
                proxy.set_mode("reset")
            return real(cmds, fallback)

        monkeypatch.setattr(_common, "Snapshot", snapshot)
        head = b._head("reset")
        with pytest.raises(DeepAgentsRedisError):
            b.write("/big.txt", _text("new"))
        proxy.set_mode("pass")
        stages = list(direct.scan_iter(match=f"{head}:s:*"))
        assert len(stages) == 1
        assert direct.hlen(stages[0]) == 6  # two batches of three chunks
        assert b.read("/big.txt").error is not None  # the next call (not found)
        assert list(direct.scan_iter(match=f"{head}:s:*")) == []
    finally:
        for key in direct.scan_iter(match=f"{settings.key_prefix}*"):
            direct.delete(key)
        direct.close()
        b.close()


# ---------------------------------------------------------------- standalone: hooked client


class _Hooked(redis.Redis):
    """Runs `before` (once) just before the write script's call, `after` right after it."""

    before: Callable[[], None] = staticmethod(lambda: None)
    after: Callable[[], None] = staticmethod(lambda: None)
    fired = False

    def execute_command(self, *args: Any, **options: Any) -> Any:
        ours = args[0] in ("EVALSHA", "EVAL") and args[1] in (_WRITE.sha, _WRITE.source)
        if ours and not self.fired:
            self.fired = True
            self.before()
            reply = super().execute_command(*args, **options)
            self.after()
            return reply
        return super().execute_command(*args, **options)


@pytest.fixture
def hooked(redis_url: str) -> Iterator[tuple[RedisBackend, RedisBackend, _Hooked]]:
    """A backend on a hooked client, and a plain one on the same namespace."""
    settings = RedisSettings(url=redis_url, cluster="off", key_prefix="stg")
    ns = f"staged-{uuid.uuid4().hex[:8]}"
    opts: dict[str, Any] = {"namespace": ns, "chunk_size": CHUNK, "spill_threshold": 0}
    client = _Hooked.from_url(redis_url)
    ours = RedisBackend(client=client, settings=settings, **opts)
    other = RedisBackend(settings=settings, **opts)
    try:
        yield ours, other, client
    finally:
        other.delete("/")
        ours.close()
        other.close()
        client.close()


def test_a_reader_sees_the_old_file_while_the_new_one_is_staged(
    hooked: tuple[RedisBackend, RedisBackend, _Hooked],
) -> None:
    ours, other, client = hooked
    assert other.write("/big.txt", _text("old")).error is None
    seen: list[Any] = []
    client.fired = False
    client.before = lambda: seen.append((len(_stages(other)), _content(other, "/big.txt")))
    assert ours.write("/big.txt", _text("new")).error is None
    assert seen == [(1, _text("old"))]  # staged, not visible
    assert _content(other, "/big.txt") == _text("new")
    assert _stages(other) == []


def test_a_retried_commit_is_applied_once(
    hooked: tuple[RedisBackend, RedisBackend, _Hooked],
) -> None:
    ours, other, client = hooked
    assert other.write("/big.txt", _text("old")).error is None
    stat = other.stat("/big.txt")
    assert stat is not None

    def lose_reply() -> None:
        raise rexc.TimeoutError("Timeout reading from socket (reply dropped by the test)")

    client.fired = False
    client.after = lose_reply  # applied, then the reply is lost: the driver re-sends it
    assert ours.write("/big.txt", _text("new")).error is None
    after = other.stat("/big.txt")
    assert after is not None
    assert after.version == stat.version + 1
    assert _content(other, "/big.txt") == _text("new")
    assert _stages(other) == []


def test_a_lost_stage_writes_nothing(
    hooked: tuple[RedisBackend, RedisBackend, _Hooked],
) -> None:
    ours, other, client = hooked
    assert other.write("/big.txt", _text("old")).error is None
    stat = other.stat("/big.txt")

    def drop_stage() -> None:
        for key in _stages(other):
            other.connector.client().delete(key)

    client.fired = False
    client.before = drop_stage  # e.g. a failover to a replica that never got the stage
    with pytest.raises(DeepAgentsRedisError, match="staged chunks"):
        ours.write("/big.txt", _text("new"))
    assert other.stat("/big.txt") == stat
    assert _content(other, "/big.txt") == _text("old")


def test_a_failed_write_never_removes_another_writers_stage(
    hooked: tuple[RedisBackend, RedisBackend, _Hooked], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, other, client = hooked
    assert other.write("/big.txt", _text("old")).error is None

    def another_write_fails() -> None:
        # ours has staged every chunk and is about to commit; a write of the same path by
        # another backend fails part-way and removes its own stage only
        with monkeypatch.context() as m:
            m.setattr(_common, "_STAGE_BATCH", 3 * CHUNK)
            real = _common.Snapshot
            calls: list[int] = []

            def snapshot(cmds: Any, fallback: Any) -> Snapshot:
                calls.append(1)
                if len(calls) == 2:
                    cmds = [cmds[0], ("PEXPIRE", cmds[1][1], "soon")]
                return real(cmds, fallback)

            m.setattr(_common, "Snapshot", snapshot)
            with pytest.raises(DeepAgentsRedisError):
                other.write("/big.txt", _text("theirs"))
        assert len(_stages(other)) == 1  # ours

    client.fired = False
    client.before = another_write_fails
    assert ours.write("/big.txt", _text("new")).error is None
    assert _content(other, "/big.txt") == _text("new")
    assert _stages(other) == []


def test_an_abandoned_stage_expires(
    hooked: tuple[RedisBackend, RedisBackend, _Hooked],
) -> None:
    ours, other, client = hooked
    assert other.write("/big.txt", _text("old")).error is None

    def die() -> None:
        # the process dies here: nothing of it runs afterwards, so only the TTL is left
        # (an ordinary failure removes the stage: see the tests below)
        raise _Died("the worker died between staging and committing")

    client.fired = False
    client.before = die
    with pytest.raises(_Died):
        ours.write("/big.txt", _text("new"))
    stages = _stages(other)
    assert len(stages) == 1
    assert 0 < other.connector.client().pttl(stages[0]) <= _STAGE_TTL_MS
    assert _content(other, "/big.txt") == _text("old")
    other.connector.client().delete(*stages)


@pytest.mark.parametrize("kb", [80, 300])
def test_chunked_bytes_never_ride_in_the_script_call_by_default(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, kb: int
) -> None:
    """At the default threshold (64 KiB) a chunked write stages its chunks: the commit's
    script call carries none (each KB through Lua costs Redis ~1.2 µs; a 300 KB write took
    432 µs of server time with its chunks in the call, 62 staged)."""
    monkeypatch.setattr(_common, "_STAGE_MIN", DEFAULT_STAGE_MIN)
    calls: list[tuple[str, int]] = []
    real_snapshot, real_idempotent = _common.Snapshot, _common.Idempotent

    def snapshot(cmds: Any, fallback: Any) -> Snapshot:
        calls.append(("stage", max(len(a) for a in cmds[0] if isinstance(a, bytes))))
        return real_snapshot(cmds, fallback)

    def idempotent(script: Any, op_key: Any, keys: Any, args: Any, **kw: Any) -> Any:
        calls.append(("commit", max(len(a) for a in args)))
        return real_idempotent(script, op_key, keys, args, **kw)

    monkeypatch.setattr(_common, "Snapshot", snapshot)
    monkeypatch.setattr(_common, "Idempotent", idempotent)
    b = make_backend(chunk_size=32 * 1024, spill_threshold=0)
    text = _text("default", kb * 1024)
    assert b.write("/big.txt", text).error is None
    assert [kind for kind, _ in calls] == ["stage", "commit"]
    assert calls[0][1] == 32 * 1024  # a whole chunk in the stage's HSET
    assert calls[1][1] < 1024  # the commit: the header, no chunk
    assert _content(b, "/big.txt") == text
    assert _stages(b) == []


class _LosesWriteReplies(redis.Redis):
    """Runs every write script call, then loses its reply (each retry's too)."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        reply = super().execute_command(*args, **options)
        if args[0] in ("EVALSHA", "EVAL") and args[1] in (_WRITE.sha, _WRITE.source):
            raise rexc.TimeoutError("Timeout reading from socket (reply dropped by the test)")
        return reply


def test_a_commit_of_unknown_outcome_that_did_apply_keeps_its_file(redis_url: str) -> None:
    # The removal after a failed commit must never touch what the commit made: the stage
    # was RENAMEd over the chunk hash, and removing the stage's name removes nothing.
    from deepagents_redis.core import OutcomeUnknownError

    settings = RedisSettings(url=redis_url, cluster="off", key_prefix="stg")
    ns = f"unknown-{uuid.uuid4().hex[:8]}"
    opts: dict[str, Any] = {"namespace": ns, "chunk_size": CHUNK, "spill_threshold": 0}
    client = _LosesWriteReplies.from_url(redis_url)
    ours = RedisBackend(client=client, settings=settings, **opts)
    other = RedisBackend(settings=settings, **opts)
    try:
        with pytest.raises(OutcomeUnknownError):
            ours.write("/big.txt", _text("new"))
        assert _stages(other) == []
        assert _content(other, "/big.txt") == _text("new")  # applied, and whole
        assert ours._abandoned == {}
    finally:
        other.delete("/")
        ours.close()
        other.close()
        client.close()
