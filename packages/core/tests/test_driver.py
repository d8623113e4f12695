"""The operation driver runs one generator the same way sync and async (issue 9 §2).

On a real server, standalone and Cluster: every request kind, the instrumentation the driver
reports in one place, the script error vocabulary, the deadline and closing the generator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from deepagents_redis.core import (
    ConflictError,
    DeepAgentsRedisError,
    IdempotentScript,
    InvalidInputError,
    LuaScript,
    NotFoundError,
    PayloadTooLargeError,
    RecordingInstrumentation,
    RedisConnector,
    RedisSettings,
    RedisUnavailableError,
    SerializationError,
    new_op_id,
    set_instrumentation,
)
from deepagents_redis.core._driver import (
    Call,
    Command,
    Idempotent,
    Operation,
    Pipeline,
    Script,
    Sleep,
    Snapshot,
    arun,
    run,
    script_error,
)
from deepagents_redis.testing import FaultProxy

pytestmark = pytest.mark.integration

GET_BOTH = LuaScript(
    "test_get_both",
    "-- KEYS[1] a   KEYS[2] b\n-- returns {a, b}\n"
    "return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}",
)
INCR = IdempotentScript("test_driver_incr", "return redis.call('INCRBY', keys[1], argv[1])")
REPLY = LuaScript("test_reply", "-- ARGV[1] error text\nreturn redis.error_reply(ARGV[1])")


@pytest.fixture
def recorder() -> Iterator[RecordingInstrumentation]:
    rec = RecordingInstrumentation()
    previous = set_instrumentation(rec)
    yield rec
    set_instrumentation(previous)


@pytest.fixture
def connector(redis_target: Any) -> Iterator[RedisConnector]:
    conn = RedisConnector(settings=redis_target.settings)
    yield conn
    conn.close()


@pytest.fixture
def owned_connector(owned_redis_target: Any) -> Iterator[RedisConnector]:
    """A connector on a server this session started (for tests that flush its scripts)."""
    conn = RedisConnector(settings=owned_redis_target.settings)
    yield conn
    conn.close()


def _every_request(ks: Any, calls: list[str]) -> Operation[dict[str, Any]]:
    a, b = ks.key("drv", "s", "a"), ks.key("drv", "s", "b")
    out: dict[str, Any] = {}
    out["set"] = yield Command(("SET", a, "1"))
    out["pipe"] = yield Pipeline([("SET", b, "2"), ("GET", b)])
    out["script"] = yield Script(GET_BOTH, [a, b])
    out["snapshot"] = yield Snapshot([("GET", a), ("GET", b)], fallback=Script(GET_BOTH, [a, b]))
    op_key = ks.op_key("s", new_op_id())
    out["idem"] = yield Idempotent(INCR, op_key, [a], [5], op_ttl_ms=60_000)
    out["idem_again"] = yield Idempotent(INCR, op_key, [a], [5], op_ttl_ms=60_000)
    out["call"] = yield Call(calls.append, ("called",))
    out["sleep"] = yield Sleep(0)
    yield Command(("DEL", a, b, op_key))
    return out


def _normalized(out: dict[str, Any]) -> dict[str, Any]:
    kind, replies = out["snapshot"]
    # MULTI/EXEC and the asyncio-cluster fallback script answer the same reads.
    out["snapshot"] = list(replies)
    assert kind in ("multi", "lua")
    return out


async def test_sync_and_async_answer_alike(
    connector: RedisConnector, recorder: RecordingInstrumentation
) -> None:
    ks = connector.keyspace
    calls: list[str] = []
    sync = run(connector, "test.every", _every_request(ks, calls), deadline_seconds=5.0)
    asyn = await arun(connector, "test.every", _every_request(ks, calls), deadline_seconds=5.0)
    assert _normalized(sync) == _normalized(asyn)
    assert sync["pipe"] == [True, b"2"]
    assert sync["script"] == [b"1", b"2"]
    assert sync["snapshot"] == [b"1", b"2"]
    assert sync["idem"] == sync["idem_again"] == 6  # the replay did not add 5 again
    assert calls == ["called", "called"]
    await connector.aclose()
    # One place reports: a span, an outcome and a duration per run.
    assert [s.name for s in recorder.spans] == ["test.every", "test.every"]
    assert recorder.total("test.every", outcome="ok") == 2
    assert [d[0] for d in recorder.durations] == ["test.every", "test.every"]


@pytest.mark.parametrize(
    ("reply", "error", "check"),
    [
        ("CONFLICT 7", ConflictError, lambda e: (e.expected, e.actual) == (3, 7)),
        ("NOTFOUND item-1", NotFoundError, lambda e: "item-1" in str(e)),
        ("INVALID bad status", InvalidInputError, lambda e: str(e) == "bad status"),
        ("TOOLARGE 200 100", PayloadTooLargeError, lambda e: (e.size, e.limit) == (200, 100)),
        ("CLAIMED by someone", KeyError, lambda e: e.args == ("by someone",)),
    ],
)
async def test_script_error_vocabulary(
    connector: RedisConnector,
    recorder: RecordingInstrumentation,
    reply: str,
    error: type[BaseException],
    check: Callable[[Any], bool],
) -> None:
    words = {"CLAIMED": lambda rest: _Claimed(rest)}

    def op() -> Operation[None]:
        yield Script(REPLY, [connector.keyspace.key("drv", "s", "x")], [reply])

    expected_error = _Claimed if error is KeyError else error
    with pytest.raises(expected_error) as info:
        run(connector, "test.reply", op(), deadline_seconds=5.0, expected=3, words=words)
    assert check(info.value.args[0] if error is KeyError else info.value)
    with pytest.raises(expected_error):
        await arun(connector, "test.reply", op(), deadline_seconds=5.0, expected=3, words=words)
    await connector.aclose()
    outcome = "conflict" if error is ConflictError else "error"
    assert recorder.total("test.reply", outcome=outcome) == 2


class _Claimed(DeepAgentsRedisError):
    """A phase-registered word (todos' CLAIMED, say)."""

    def __init__(self, rest: str) -> None:
        super().__init__(KeyError(rest))


def test_unknown_reply_is_a_redis_error(connector: RedisConnector) -> None:
    def op() -> Operation[None]:
        yield Script(REPLY, [connector.keyspace.key("drv", "s", "x")], ["WEIRD thing"])

    with pytest.raises(DeepAgentsRedisError) as info:
        run(connector, "test.reply", op(), deadline_seconds=5.0)
    assert "WEIRD thing" in str(info.value)
    assert script_error(ValueError("CONFLICT 1")) is None  # only replies from Redis


HGET_IN_SCRIPT = LuaScript(
    "test_hget_in_script", "-- KEYS[1] a hash\nreturn redis.call('HGET', KEYS[1], 'f')"
)
HSET = IdempotentScript("test_driver_hset", "return redis.call('HSET', keys[1], 'f', argv[1])")


async def test_a_key_of_another_type_is_a_serialization_error(
    connector: RedisConnector,
) -> None:
    # WRONGTYPE: a key we read as a hash holds a string (another writer, a restore). That is
    # foreign data, as stored bytes failing our checks are: SerializationError, not the root.
    key = connector.keyspace.key("drv", "s", "wrongtype")
    connector.client().set(key, b"not a hash")

    def ops() -> list[Operation[Any]]:
        def command() -> Operation[Any]:
            return (yield Command(("HGET", key, "f")))

        def pipeline() -> Operation[Any]:
            return (yield Pipeline([("HGET", key, "f"), ("GET", key)]))

        def script() -> Operation[Any]:
            return (yield Script(HGET_IN_SCRIPT, [key]))

        def idempotent() -> Operation[Any]:
            op_key = connector.keyspace.op_key("s", new_op_id())
            return (yield Idempotent(HSET, op_key, [key], [1]))

        return [command(), pipeline(), script(), idempotent()]

    for op in ops():
        with pytest.raises(SerializationError, match="WRONGTYPE"):
            run(connector, "test.wrongtype", op, deadline_seconds=5.0)
    for op in ops():
        with pytest.raises(SerializationError, match="WRONGTYPE"):
            await arun(connector, "test.wrongtype", op, deadline_seconds=5.0)
    await connector.aclose()
    assert connector.client().get(key) == b"not a hash"


def test_generator_is_closed_on_failure(connector: RedisConnector) -> None:
    closed: list[bool] = []

    def op() -> Operation[None]:
        try:
            yield Script(REPLY, [connector.keyspace.key("drv", "s", "x")], ["NOTFOUND x"])
            yield Sleep(0)
        finally:
            closed.append(True)

    with pytest.raises(NotFoundError):
        run(connector, "test.close", op(), deadline_seconds=5.0)
    assert closed == [True]


async def test_deadline_bounds_the_operation(
    redis_url: str, fault_proxy: Callable[[str], FaultProxy]
) -> None:
    proxy = fault_proxy(redis_url)
    connector = RedisConnector(settings=RedisSettings(url=proxy.url, cluster="off"))
    proxy.set_mode("blackhole")

    def op() -> Operation[Any]:
        return (yield Command(("GET", "k")))

    try:
        start = time.monotonic()
        with pytest.raises(RedisUnavailableError):
            run(connector, "test.slow", op(), deadline_seconds=0.5)
        with pytest.raises(RedisUnavailableError):
            await arun(connector, "test.slow", op(), deadline_seconds=0.5)
        # Defaults (2 s timeouts, 2 retries) took 18 s per call before deadlines.
        assert time.monotonic() - start < 5.0
    finally:
        await connector.aclose()


def _hold(ks: Any, n: int) -> Operation[Any]:
    # XREAD BLOCK on an empty stream keeps its connection busy for 50 ms.
    reply = yield Command(("XREAD", "BLOCK", 50, "STREAMS", ks.key("drv", f"s{n}", "empty"), "$"))
    return reply


async def test_an_asyncio_fan_out_wider_than_the_pool_waits_for_connections(
    redis_target: Any,
) -> None:
    import asyncio

    # 3 connections, 24 operations at once: redis-py alone fails the 4th ("Too many
    # connections"); the connector's gate makes the others wait their turn within the deadline.
    # The turns take ~0.4 s; the deadline is far above it because a loaded machine (a Cluster
    # client's first slot-map read, other suites beside this one) once spent 10 s here.
    conn = RedisConnector(settings=redis_target.settings.with_overrides(max_connections=3))
    try:
        ks = conn.keyspace
        results = await asyncio.gather(
            *(arun(conn, "test.hold", _hold(ks, n), deadline_seconds=120.0) for n in range(24))
        )
        assert results == [[]] * 24  # each XREAD timed out empty: none failed
        assert conn.async_gate()._value == 3  # every slot given back
    finally:
        await conn.aclose()


async def test_a_full_gate_past_the_deadline_is_a_typed_error(redis_target: Any) -> None:
    import asyncio

    conn = RedisConnector(settings=redis_target.settings.with_overrides(max_connections=1))
    try:
        ks = conn.keyspace
        # Connected first (a Cluster client's first use reads the slot map), so the short
        # deadline below is spent waiting at the gate and nowhere else.
        await arun(conn, "test.warm", _hold(ks, 2), deadline_seconds=10.0)
        outcomes = await asyncio.gather(
            arun(conn, "test.hold", _hold(ks, 0), deadline_seconds=10.0),
            arun(conn, "test.hold", _hold(ks, 1), deadline_seconds=0.01),
            return_exceptions=True,
        )
        assert outcomes[0] == []
        assert isinstance(outcomes[1], RedisUnavailableError)
        assert "no free connection" in str(outcomes[1])
    finally:
        await conn.aclose()


class _CountingClient:
    """An asyncio client stand-in that records the commands sent on it."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    async def execute_command(self, *args: Any) -> Any:
        self.sent.append(args)
        return b"PONG"


async def test_a_task_cancelled_as_the_gate_frees_sends_nothing() -> None:
    """A task waiting at a full gate and cancelled in the same loop turn as the slot it waits
    for frees ran its request anyway (Python 3.11's wait_for handed the slot back and dropped
    the cancellation): a write went out after the caller's own timeout had fired."""
    import asyncio

    from deepagents_redis.core._driver import aexecute_gated

    conn = RedisConnector(settings=RedisSettings(url="redis://127.0.0.1:1", max_connections=1))
    client = _CountingClient()
    gate = conn.async_gate()
    await gate.acquire()  # the one slot, held by "another request"
    waiting = asyncio.create_task(aexecute_gated(conn, client, Command(("SET", "k", "v"))))
    for _ in range(10):  # bounded: until it waits at the gate
        await asyncio.sleep(0)
    assert not waiting.done()
    gate.release()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert client.sent == []
    assert gate._value == 1  # the slot it was handed went back


_SET_OR_CONFLICT = LuaScript(
    "test_driver_set_or_conflict",
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.error_reply('CONFLICT 7') end\n"
    "redis.call('SET', KEYS[1], ARGV[1]) return 1",
)


def _script_in_snapshot(ks: Any, value: str) -> Operation[Any]:
    """A MULTI holding an HSET and an EVALSHA, with the script alone as the fallback."""
    a, h = ks.key("drv", "s", "snap-a"), ks.key("drv", "s", "snap-h")
    reply = yield Snapshot(
        [
            ("HSET", h, "f", value),
            ("EVALSHA", _SET_OR_CONFLICT.sha, 1, a, value),
        ],
        fallback=Script(_SET_OR_CONFLICT, [a], [value]),
    )
    return reply


async def test_a_snapshot_with_a_script_keeps_its_error_word_and_survives_a_lost_script(
    owned_connector: RedisConnector,
) -> None:
    """An error reply inside MULTI maps like a script's own (redis-py's pipeline text would
    hide the word), and NOSCRIPT runs the fallback, which loads the script (on a server this
    session started: the flush is server-wide)."""
    connector = owned_connector
    ks = connector.keyspace
    client = connector.client()
    # Scripts lost (a restart, a failover, SCRIPT FLUSH): the fallback runs it and loads it.
    client.script_flush()
    kind, reply = run(connector, "t.snap", _script_in_snapshot(ks, "1"), deadline_seconds=5.0)
    assert (kind, reply) == ("lua", 1)
    # Now loaded: one MULTI, replies in order.
    kind, replies = run(connector, "t.snap", _script_in_snapshot(ks, "2"), deadline_seconds=5.0)
    assert (kind, replies) == ("multi", [0, 1])
    # The script's error reply inside the transaction: a typed error, as for a Script.
    with pytest.raises(ConflictError) as caught:
        run(connector, "t.snap", _script_in_snapshot(ks, "2"), deadline_seconds=5.0, expected=3)
    assert (caught.value.expected, caught.value.actual) == (3, 7)
    with pytest.raises(ConflictError):
        await arun(connector, "t.snap", _script_in_snapshot(ks, "2"), deadline_seconds=5.0)
    # async: loaded scripts run in the MULTI, a lost one in the fallback
    kind, _ = await arun(connector, "t.snap", _script_in_snapshot(ks, "3"), deadline_seconds=5.0)
    assert kind == "multi"
    client.script_flush()
    kind, reply = await arun(
        connector, "t.snap", _script_in_snapshot(ks, "4"), deadline_seconds=5.0
    )
    assert (kind, reply) == ("lua", 1)
    client.delete(ks.key("drv", "s", "snap-a"), ks.key("drv", "s", "snap-h"))
    await connector.aclose()


async def test_a_sleep_never_outlasts_the_deadline(
    connector: RedisConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operation's `Sleep` ran whole past the deadline (a 30 s pause under a 0.5 s bound
    took 30 s); it is cut to the time left (a next request then fails on the spent
    deadline). A negative pause is none, sync as async (`time.sleep(-1)` raised ValueError)."""
    import asyncio

    import deepagents_redis.core._driver as driver

    asked: list[float] = []
    real_sleep = asyncio.sleep

    def fake_sleep(seconds: float) -> None:
        asked.append(seconds)

    async def fake_asleep(seconds: float, *args: Any) -> Any:
        asked.append(seconds)
        return await real_sleep(0, *args)

    monkeypatch.setattr(driver.time, "sleep", fake_sleep)
    key = connector.keyspace.key("drv", "s", "slept")

    def op(pause: float) -> Operation[Any]:
        yield Sleep(pause)
        return (yield Command(("GET", key)))

    assert run(connector, "t.sleep", op(-1.0), deadline_seconds=5.0) is None
    assert run(connector, "t.sleep", op(30.0), deadline_seconds=None) is None
    assert asked == [0.0, 30.0]  # no deadline: the pause as asked
    asked.clear()
    # (The fake pause takes no time, so the GET after it still fits in the deadline.)
    run(connector, "t.sleep", op(30.0), deadline_seconds=0.5)
    assert len(asked) == 1
    assert 0.0 <= asked[0] <= 0.5
    monkeypatch.setattr(driver.asyncio, "sleep", fake_asleep)
    asked.clear()
    assert await arun(connector, "t.sleep", op(-1.0), deadline_seconds=5.0) is None
    await arun(connector, "t.sleep", op(30.0), deadline_seconds=0.5)
    assert asked[0] == 0.0
    assert 0.0 <= asked[1] <= 0.5
    monkeypatch.undo()
    await connector.aclose()
