"""The command lane of our sync standalone client (`_lane`): same replies, clean sockets.

The lane skips redis-py's checkout poll for stray data, so these tests are about the one
thing that poll protects: a reply meant for one command must never be read by the next.
"""

import asyncio
import multiprocessing
import threading
import uuid

import pytest
import redis
import redis.asyncio
import redis.exceptions as rexc
from deepagents_redis.core import (
    LuaScript,
    Pipeline,
    _lane,
    aexecute_request,
    create_async_client,
    create_client,
    execute_request,
)
from deepagents_redis.core._alane import AsyncLaneRedis
from deepagents_redis.core._lane import LaneRedis, enable_lane
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.client import EMPTY_RESPONSE, NEVER_DECODE

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url):
    c = create_client(url=redis_url)
    yield c
    c.close()


def _key() -> str:
    return f"lane-test:{uuid.uuid4().hex}"


def _refuse_pool(monkeypatch, client):
    """Make redis-py's own checkout fail, so a passing call proves it took the lane."""

    def refuse(*a, **k):
        raise AssertionError("redis-py's pool path was used")

    monkeypatch.setattr(client.connection_pool, "get_connection", refuse)


def test_plain_commands_take_the_lane_with_redis_py_replies(client, monkeypatch):
    assert isinstance(client, LaneRedis)
    assert client._dar_lane is not None
    k = _key()
    _refuse_pool(monkeypatch, client)
    assert client.set(k, "v") is True  # SET's reply callback: True, not b"OK"
    assert client.get(k) == b"v"  # GET passes keys=...: dropped, as redis-py's parser does
    client.hset(k + ":h", mapping={"a": "1", "b": "2"})
    assert client.hgetall(k + ":h") == {b"a": b"1", b"b": b"2"}  # callback: a dict
    script = LuaScript("lane_echo", "return {KEYS[1], ARGV[1]}", register=False)
    assert script(client, keys=[k], args=["x"]) == [k.encode(), b"x"]
    # One connection served all of it, one after the other.
    ids = {client.client_id() for _ in range(5)}
    assert len(ids) == 1
    client.delete(k, k + ":h")


def _two_keys_and_the_lane_connection(client):
    """Keys holding "first" and "second", and the lane's one connection with its reader."""
    k1, k2 = _key(), _key()
    client.set(k1, "first")
    client.set(k2, "second")
    lane = client._dar_lane
    conn = lane.checkout()
    lane.checkin(conn)
    return k1, k2, conn, conn.read_response


def test_an_interrupt_between_send_and_read_never_leaks_its_reply(client):
    k1, k2, conn, real = _two_keys_and_the_lane_connection(client)

    def interrupted(*a, **k):
        conn.read_response = real
        raise KeyboardInterrupt  # the GET went out; its reply is still on the socket

    conn.read_response = interrupted
    with pytest.raises(KeyboardInterrupt):
        client.get(k1)
    # Without the lane closing that socket, this GET would read b"first".
    assert client.get(k2) == b"second"
    client.delete(k1, k2)


def test_an_error_reply_keeps_the_connection(client):
    before = client.client_id()
    with pytest.raises(rexc.ResponseError):
        client.execute_command("NO-SUCH-COMMAND")
    script = LuaScript("lane_boom", "return redis.error_reply('BOOM nope')", register=False)
    with pytest.raises(rexc.ResponseError):
        script.run_raw(client)
    assert client.client_id() == before


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        pytest.param(lambda c, k: c.get(k), b"v", id="command"),
        pytest.param(
            lambda c, k: execute_request(c, Pipeline([("GET", k), ("STRLEN", k)])),
            [b"v", 1],
            id="pipeline",
        ),
    ],
)
def test_a_killed_connection_is_replaced_by_the_retry(client, redis_url, call, expected):
    k = _key()
    client.set(k, "v")
    victim = client.client_id()
    admin = redis.Redis.from_url(redis_url)
    try:
        admin.client_kill_filter(_id=victim)
    finally:
        admin.close()
    assert call(client, k) == expected  # the retry reconnects (one retry layer, our default)
    assert client.client_id() != victim
    client.delete(k)


def test_reply_options_behave_as_on_redis_py_path(redis_url, monkeypatch):
    c = create_client(url=redis_url, decode_responses=True)
    k = _key()
    try:
        c.set(k, "v")
        _refuse_pool(monkeypatch, c)
        assert c.get(k) == "v"
        assert c.execute_command("GET", k, **{NEVER_DECODE: True}) == b"v"
        # EMPTY_RESPONSE: an error reply answered by the given value (as redis-py does).
        assert c.execute_command("NO-SUCH-COMMAND", **{EMPTY_RESPONSE: []}) == []
    finally:
        monkeypatch.undo()
        c.delete(k)
        c.close()


def test_the_lane_steps_aside(client, monkeypatch):
    k = _key()
    client.set(k, "v")
    calls = []
    real = client.connection_pool.get_connection

    def counted(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(client.connection_pool, "get_connection", counted)
    # redis-py's OpenTelemetry metrics on: its own path, so they count every command.
    monkeypatch.setattr(_lane._recorder, "_metrics_collector", object())
    assert client.get(k) == b"v"
    assert len(calls) == 1
    monkeypatch.setattr(_lane._recorder, "_metrics_collector", None)
    # A tracer wrapping redis-py's execute_command (as OpenTelemetry's instrumentation
    # does): every command goes through it.
    traced: list[tuple] = []
    shipped = redis.Redis.__dict__["execute_command"]

    def wrapper(self, *args, **options):
        traced.append(args)
        return shipped(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", wrapper)
    assert client.get(k) == b"v"
    assert traced == [("GET", k)]
    monkeypatch.setattr(redis.Redis, "execute_command", shipped)
    calls.clear()
    assert client.get(k) == b"v"
    assert calls == []  # back on the lane
    client.delete(k)


def test_pool_counts_show_idle_lane_connections_as_idle(client):
    client.ping()
    counts = {
        attrs["db.client.connection.state"]: n
        for n, attrs in client.connection_pool.get_connection_count()
    }
    assert counts == {"idle": 1, "used": 0}
    lane = client._dar_lane
    conn = lane.checkout()  # lent to a command
    try:
        counts = {
            attrs["db.client.connection.state"]: n
            for n, attrs in client.connection_pool.get_connection_count()
        }
        assert counts == {"idle": 0, "used": 1}
    finally:
        lane.checkin(conn)


def test_clients_the_lane_cannot_serve_have_none(redis_url):
    single = LaneRedis.from_url(redis_url, single_connection_client=True)
    blocking = LaneRedis(connection_pool=redis.BlockingConnectionPool.from_url(redis_url))
    try:
        for c in (single, blocking):
            enable_lane(c)
            assert c._dar_lane is None
            assert c.ping() is True
    finally:
        single.close()
        blocking.close()


def test_a_full_pool_takes_idle_lane_connections_back(redis_url):
    c = create_client(url=redis_url, max_connections=2)
    k = _key()
    try:
        lane = c._dar_lane
        a, b = lane.checkout(), lane.checkout()  # as two threads on the lane at once would
        assert lane.checkout() is None  # the bound holds for the lane too
        lane.checkin(a)
        lane.checkin(b)
        # Every connection the pool may open sits idle in the lane: a pipeline still runs.
        pipe = c.pipeline(transaction=True)
        pipe.set(k, "1").incr(k)
        assert pipe.execute() == [True, 2]
        assert c.get(k) == b"2"
    finally:
        c.delete(k)
        c.close()


def test_threads_share_the_lane_without_crossed_replies(client):
    prefix = _key()
    errors: list[str] = []

    def worker(n: int) -> None:
        for i in range(300):
            key = f"{prefix}:{n}:{i}"
            client.set(key, f"{n}-{i}")
            got = client.get(key)
            if got != f"{n}-{i}".encode():
                errors.append(f"{key}: {got!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert 1 <= len(client._dar_lane._idle) <= 8
    for cursor_keys in client.scan_iter(match=f"{prefix}:*", count=500):
        client.delete(cursor_keys)


def _child(url_and_parent_id, queue) -> None:  # runs in a forked child
    client, parent_id = url_and_parent_id
    try:
        fresh = client.client_id() != parent_id
        # The pool forgot the parent's connections: only the child's own is counted.
        queue.put((fresh, client.ping(), len(client.connection_pool._in_use_connections)))
    except Exception as exc:  # pragma: no cover - reported to the parent
        queue.put(repr(exc))


def test_a_forked_child_opens_its_own_connection(client):
    parent_id = client.client_id()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=((client, parent_id), queue))
    proc.start()
    result = queue.get(timeout=30)
    proc.join(30)
    assert result == (True, True, 1)
    # The parent's socket was left alone by the child.
    assert client.client_id() == parent_id


def test_plain_pipelines_take_the_lane_with_redis_py_replies(client, monkeypatch):
    k = _key()
    client.xadd(k + ":s", {"f": "v"}, id="1-0")
    _refuse_pool(monkeypatch, client)
    before = client.client_id()
    replies = execute_request(
        client,
        Pipeline(
            [
                ("SET", k, "v"),
                ("HSET", k + ":h", "a", "1"),
                ("HGETALL", k + ":h"),
                ("XRANGE", k + ":s", "-", "+"),
                ("GET", k),
            ]
        ),
    )
    # redis-py's reply callbacks: True for SET, a dict for HGETALL, (id, fields) for XRANGE
    assert replies == [True, 1, {b"a": b"1"}, [(b"1-0", {b"f": b"v"})], b"v"]
    # The first error reply is raised after every reply was read, annotated as redis-py
    # does, and the connection stays (nothing is left unread on it).
    with pytest.raises(rexc.ResponseError, match=r"Command # 2 \(LPUSH .*\) of pipeline"):
        execute_request(client, Pipeline([("INCR", k + ":n"), ("LPUSH", k, "x"), ("GET", k)]))
    assert client.get(k + ":n") == b"1"  # the commands around the error ran
    assert client.client_id() == before
    client.delete(k, k + ":h", k + ":s", k + ":n")


def test_an_interrupted_pipeline_never_leaks_its_replies(client):
    k1, k2, conn, real = _two_keys_and_the_lane_connection(client)
    calls = []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:  # one reply read, the other still on the socket
            conn.read_response = real
            raise KeyboardInterrupt
        return real(*a, **k)

    conn.read_response = interrupted
    with pytest.raises(KeyboardInterrupt):
        execute_request(client, Pipeline([("GET", k1), ("GET", k1)]))
    assert execute_request(client, Pipeline([("GET", k2), ("GET", k2)])) == [b"second"] * 2
    client.delete(k1, k2)


def test_transactions_and_scripted_pipelines_keep_redis_pys_path(client):
    k = _key()
    with client.pipeline(transaction=True) as pipe:
        pipe.set(k, "v")
        assert client.lane_pipeline(pipe) is None
    with client.pipeline(transaction=False) as pipe:
        assert client.lane_pipeline(pipe) is None  # empty: execute() answers []
        pipe.watch(k)
        pipe.multi()
        pipe.get(k)
        assert client.lane_pipeline(pipe) is None
    script = client.register_script("return 1")
    with client.pipeline(transaction=False) as pipe:
        script(keys=[k], client=pipe)
        assert client.lane_pipeline(pipe) is None  # redis-py loads the script first
        assert pipe.execute() == [1]


def test_a_traced_pipeline_keeps_redis_pys_path(client, monkeypatch):
    """A tracer wrapping redis-py's Pipeline.execute (as OpenTelemetry's does) sees every
    pipeline: the lane steps aside."""
    k = _key()
    traced: list[int] = []
    shipped = redis.client.Pipeline.__dict__["execute"]

    def wrapper(self, *args, **kwargs):
        traced.append(len(self.command_stack))
        return shipped(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", wrapper)
    assert execute_request(client, Pipeline([("SET", k, "v"), ("GET", k)])) == [True, b"v"]
    assert traced == [2]
    monkeypatch.undo()
    client.delete(k)


def test_close_closes_lane_connections(client):
    before = client.client_id()
    conn = client._dar_lane._idle[-1]
    client.close()
    assert conn._sock is None
    assert client.client_id() != before  # used again: a new socket


# --------------------------------------------------------------------------- asyncio lane
@pytest.fixture
async def aclient(redis_url):
    c = await create_async_client(url=redis_url)
    yield c
    await c.aclose()


def _refuse_apool(monkeypatch, client):
    async def refuse(*a, **k):
        raise AssertionError("redis-py's pool path was used")

    monkeypatch.setattr(client.connection_pool, "get_connection", refuse)


async def test_async_plain_commands_take_the_lane(aclient, monkeypatch):
    assert isinstance(aclient, AsyncLaneRedis)
    assert aclient._dar_lane is not None
    k = _key()
    _refuse_apool(monkeypatch, aclient)
    assert await aclient.set(k, "v") is True
    assert await aclient.get(k) == b"v"
    await aclient.hset(k + ":h", mapping={"a": "1"})
    assert await aclient.hgetall(k + ":h") == {b"a": b"1"}
    script = LuaScript("lane_aecho", "return {KEYS[1], ARGV[1]}", register=False)
    assert await script.acall(aclient, keys=[k], args=["x"]) == [k.encode(), b"x"]
    assert len({await aclient.client_id() for _ in range(5)}) == 1
    await aclient.delete(k, k + ":h")


async def test_async_plain_pipelines_take_the_lane(aclient, monkeypatch):
    k = _key()
    await aclient.xadd(k + ":s", {"f": "v"}, id="1-0")
    _refuse_apool(monkeypatch, aclient)
    replies = await aexecute_request(
        aclient,
        Pipeline([("SET", k, "v"), ("XRANGE", k + ":s", "-", "+"), ("GET", k)]),
    )
    assert replies == [True, [(b"1-0", {b"f": b"v"})], b"v"]
    with pytest.raises(rexc.ResponseError, match=r"Command # 2 \(LPUSH .*\) of pipeline"):
        await aexecute_request(aclient, Pipeline([("INCR", k + ":n"), ("LPUSH", k, "x")]))
    assert await aclient.get(k + ":n") == b"1"
    monkeypatch.undo()
    await aclient.delete(k, k + ":s", k + ":n")


async def test_async_a_cancelled_pipeline_never_leaks_its_replies(aclient):
    k1, k2 = _key(), _key()
    await aclient.set(k1, "first")
    await aclient.set(k2, "second")
    slow = asyncio.ensure_future(
        aexecute_request(aclient, Pipeline([("BLPOP", k1 + ":none", 5), ("GET", k1)]))
    )
    await asyncio.sleep(0.1)  # sent; its replies are not there yet
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    await aclient.rpush(k1 + ":none", "late")  # the BLPOP's reply would now arrive
    got = await aexecute_request(aclient, Pipeline([("GET", k2), ("GET", k2)]))
    assert got == [b"second", b"second"]
    await aclient.delete(k1, k2, k1 + ":none")


async def test_async_a_traced_pipeline_keeps_redis_pys_path(aclient, monkeypatch):
    k = _key()
    traced: list[int] = []
    shipped = redis.asyncio.client.Pipeline.__dict__["execute"]

    async def wrapper(self, *args, **kwargs):
        traced.append(len(self.command_stack))
        return await shipped(self, *args, **kwargs)

    monkeypatch.setattr(redis.asyncio.client.Pipeline, "execute", wrapper)
    got = await aexecute_request(aclient, Pipeline([("SET", k, "v"), ("GET", k)]))
    assert got == [True, b"v"]
    assert traced == [2]
    monkeypatch.undo()
    await aclient.delete(k)


async def test_async_a_cancelled_read_never_leaks_its_reply(aclient):
    k = _key()
    await aclient.set(k, "mine")
    waiter = asyncio.create_task(aclient.blpop([_key()], timeout=1))
    await asyncio.sleep(0.05)  # BLPOP sent; its reply (nil) comes in about a second
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.sleep(1.2)  # the BLPOP's reply has arrived by now, on its socket if kept
    assert await aclient.get(k) == b"mine"
    await aclient.delete(k)


async def test_async_an_interrupt_between_send_and_read_never_leaks_its_reply(aclient):
    k1, k2 = _key(), _key()
    await aclient.set(k1, "first")
    await aclient.set(k2, "second")
    conn = aclient._dar_lane._idle[-1]
    real = conn.read_response

    async def interrupted(*a, **k):
        conn.read_response = real
        raise asyncio.CancelledError  # the GET went out; its reply is still on the socket

    conn.read_response = interrupted
    with pytest.raises(asyncio.CancelledError):
        await aclient.get(k1)
    assert await aclient.get(k2) == b"second"
    await aclient.delete(k1, k2)


async def test_async_an_error_reply_keeps_the_connection(aclient):
    before = await aclient.client_id()
    with pytest.raises(rexc.ResponseError):
        await aclient.execute_command("NO-SUCH-COMMAND")
    assert await aclient.client_id() == before


async def test_async_a_full_pool_takes_idle_lane_connections_back(redis_url):
    c = await create_async_client(url=redis_url, max_connections=2)
    k = _key()
    try:
        lane = c._dar_lane
        a, b = lane.checkout(), lane.checkout()
        assert lane.checkout() is None
        lane._idle.extend([a, b])
        pipe = c.pipeline(transaction=True)
        pipe.set(k, "1").incr(k)
        assert await pipe.execute() == [True, 2]
        assert await c.get(k) == b"2"
        counts = {
            attrs["db.client.connection.state"]: n
            for n, attrs in c.connection_pool.get_connection_count()
        }
        assert counts == {"idle": 2, "used": 0}
    finally:
        await c.delete(k)
        await c.aclose()


async def test_async_lane_steps_aside_for_a_tracer(aclient, monkeypatch):
    k = _key()
    await aclient.set(k, "v")
    shipped = redis.asyncio.Redis.__dict__["execute_command"]
    traced: list[tuple] = []

    async def wrapper(self, *args, **options):
        traced.append(args)
        return await shipped(self, *args, **options)

    monkeypatch.setattr(redis.asyncio.Redis, "execute_command", wrapper)
    assert await aclient.get(k) == b"v"
    assert traced == [("GET", k)]
    monkeypatch.setattr(redis.asyncio.Redis, "execute_command", shipped)
    _refuse_apool(monkeypatch, aclient)
    assert await aclient.get(k) == b"v"
    await aclient.delete(k)


async def test_async_tasks_share_the_lane_without_crossed_replies(aclient):
    prefix = _key()

    async def worker(n: int) -> list[str]:
        bad = []
        for i in range(200):
            key = f"{prefix}:{n}:{i}"
            await aclient.set(key, f"{n}-{i}")
            got = await aclient.get(key)
            if got != f"{n}-{i}".encode():
                bad.append(f"{key}: {got!r}")
        return bad

    results = await asyncio.gather(*(worker(n) for n in range(8)))
    assert [b for r in results for b in r] == []
    assert 1 <= len(aclient._dar_lane._idle) <= 8
    async for key in aclient.scan_iter(match=f"{prefix}:*", count=500):
        await aclient.delete(key)


async def test_async_write_timeout_is_a_redis_timeout(redis_url, monkeypatch):
    """The write runs under an asyncio.timeout scope: a stalled drain is a redis-py
    TimeoutError and the socket is closed (as redis-py's wait_for branch does)."""
    c = await create_async_client(url=redis_url, socket_timeout=0.2, retries=0)
    try:
        await c.ping()
        conn = c._dar_lane._idle[-1]

        async def stalled():
            await asyncio.sleep(5)

        monkeypatch.setattr(conn._writer, "drain", stalled)
        with pytest.raises(rexc.TimeoutError, match="writing"):
            await c.ping()
        assert not conn.is_connected
        monkeypatch.undo()
        assert await c.ping() is True
    finally:
        await c.aclose()


# --------------------------------------------------------------------------- differential
_FIELDS = st.sampled_from(["a", "b", "c"])
_VALUES = st.one_of(st.binary(max_size=40), st.integers(-(10**6), 10**6), st.text(max_size=20))
_COMMANDS = st.one_of(
    st.tuples(st.just("SET"), _VALUES),
    st.tuples(st.just("GET")),
    st.tuples(st.just("INCR")),
    st.tuples(st.just("HSET"), _FIELDS, _VALUES),
    st.tuples(st.just("HGETALL")),
    st.tuples(st.just("HMGET"), _FIELDS, _FIELDS),
    st.tuples(st.just("EXPIRE"), st.integers(1, 1000)),
    st.tuples(st.just("TTL")),
    st.tuples(st.just("DEL")),
    st.tuples(st.just("EXISTS")),
    st.tuples(st.just("TYPE")),
    st.tuples(st.just("LPUSH"), _VALUES),
    st.tuples(st.just("LRANGE")),
    st.tuples(st.just("SCRIPT-ERROR")),
)


def _apply(client, key, cmd):
    name, *args = cmd
    if name == "SCRIPT-ERROR":
        name, args = "EVAL", ["return redis.error_reply('NOPE ' .. KEYS[1])", 1]
    elif name == "LRANGE":
        args = [0, -1]
    try:
        return ("ok", client.execute_command(name, key, *args))
    except rexc.ResponseError as exc:
        return ("error", type(exc).__name__, str(exc).replace(key, "<key>"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_COMMANDS, min_size=1, max_size=25))
def test_the_lane_answers_what_redis_pys_own_path_answers(redis_url, commands):
    """Random command sequences on the lane and on redis-py's pool path, each on its own key:
    the same replies, reply callbacks and error replies included."""
    lane_client = create_client(url=redis_url)
    plain = create_client(url=redis_url)
    plain._dar_lane = None  # redis-py's own path, same connection class and retry
    ours, theirs = _key(), _key()
    try:
        for cmd in commands:
            assert _apply(lane_client, ours, cmd) == _apply(plain, theirs, cmd), cmd
    finally:
        lane_client.delete(ours, theirs)
        lane_client.close()
        plain.close()


def _pipeline_cmds(commands, key):
    cmds = []
    for cmd in commands:
        name, *args = cmd
        if name == "SCRIPT-ERROR":
            name, args = "EVAL", ["return redis.error_reply('NOPE')", 1]
        elif name == "LRANGE":
            args = [0, -1]
        cmds.append((name, key, *args))
    return cmds


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_COMMANDS, min_size=1, max_size=12))
def test_a_lane_pipeline_answers_what_redis_pys_pipeline_answers(redis_url, commands):
    """Random commands as one pipeline on the lane and on redis-py's pool path, each on its
    own key: the same replies, or the same annotated first error after the same effects."""
    lane_client = create_client(url=redis_url)
    plain = create_client(url=redis_url)
    plain._dar_lane = None
    ours, theirs = _key(), _key()

    def run(client, key):
        try:
            out = ("ok", execute_request(client, Pipeline(_pipeline_cmds(commands, key))))
        except rexc.ResponseError as exc:
            out = ("error", type(exc).__name__, str(exc).replace(key, "<key>"))
        return out, client.dump(key)

    try:
        assert run(lane_client, ours) == run(plain, theirs)
    finally:
        lane_client.delete(ours, theirs)
        lane_client.close()
        plain.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_COMMANDS, min_size=1, max_size=12))
def test_an_async_lane_pipeline_answers_what_redis_pys_pipeline_answers(redis_url, commands):
    """The asyncio twin: a Pipeline request on the async lane (no redis-py Pipeline object)
    and on redis-py's asyncio pool path give the same replies or the same annotated error."""

    async def both():
        lane_client = await create_async_client(url=redis_url)
        plain = await create_async_client(url=redis_url)
        plain._dar_lane = None
        ours, theirs = _key(), _key()

        async def run(client, key):
            try:
                out = (
                    "ok",
                    await aexecute_request(client, Pipeline(_pipeline_cmds(commands, key))),
                )
            except rexc.ResponseError as exc:
                out = ("error", type(exc).__name__, str(exc).replace(key, "<key>"))
            return out, await client.dump(key)

        try:
            return await run(lane_client, ours), await run(plain, theirs)
        finally:
            await lane_client.delete(ours, theirs)
            await lane_client.aclose()
            await plain.aclose()

    ours, theirs = asyncio.run(both())
    assert ours == theirs


def test_a_pipeline_request_on_the_lane_builds_no_redis_py_pipeline(client, monkeypatch):
    # A redis-py Pipeline object (build, queue, reset) cost more than the round trip's own
    # packing and parsing: a plain Pipeline request is sent without one.
    k = _key()

    def no_pipeline(*a, **kw):
        raise AssertionError("a redis-py Pipeline was built")

    monkeypatch.setattr(client, "pipeline", no_pipeline)
    _refuse_pool(monkeypatch, client)
    assert execute_request(client, Pipeline([("SET", k, "v"), ("GETRANGE", k, 0, 0)])) == [
        True,
        b"v",
    ]
    with pytest.raises(rexc.ResponseError, match=r"Command # 2 \(LPUSH .*\) of pipeline"):
        execute_request(client, Pipeline([("INCR", k + ":n"), ("LPUSH", k, "x")]))
    monkeypatch.undo()
    client.delete(k, k + ":n")


async def test_an_async_pipeline_request_on_the_lane_builds_no_redis_py_pipeline(
    aclient, monkeypatch
):
    k = _key()

    def no_pipeline(*a, **kw):
        raise AssertionError("a redis-py Pipeline was built")

    monkeypatch.setattr(aclient, "pipeline", no_pipeline)
    _refuse_apool(monkeypatch, aclient)
    got = await aexecute_request(aclient, Pipeline([("SET", k, "v"), ("GETRANGE", k, 0, 0)]))
    assert got == [True, b"v"]
    monkeypatch.undo()
    await aclient.delete(k)


@pytest.mark.parametrize(
    "cmds",
    [
        [],
        [("WATCH", "k"), ("GET", "k")],
        [("GET", "k"), ("multi",)],
        [("EXEC",)],
        [("HIMPORT", "SET", "x")],
        [(b"GET", "k")],
    ],
    ids=["empty", "watch", "multi", "exec", "himport", "bytes-name"],
)
def test_commands_a_pipeline_treats_specially_keep_redis_pys_pipeline(cmds):
    assert not _lane.plain_commands(cmds)
    assert _lane.plain_commands([("GET", "k"), ("getrange", "k", 0, 1)])


def test_a_connection_whose_close_fails_goes_back_to_the_lane(client, monkeypatch):
    # A connection asked to reconnect (a maintenance notification) whose close raised never
    # went back to the lane: the pool lists lane connections as in use, so each such failure
    # lost one slot for good.
    client.ping()
    lane = client._dar_lane
    (conn,) = lane._idle
    calls = []

    def failing_disconnect(*args, **kwargs):
        calls.append(kwargs)
        raise OSError("close failed")

    monkeypatch.setattr(conn, "should_reconnect", lambda: True, raising=False)
    monkeypatch.setattr(conn, "disconnect", failing_disconnect)
    with pytest.raises(OSError, match="close failed"):
        client.ping()
    assert calls
    assert list(lane._idle) == [conn]
    # and a failed close on the error path gives it back too, raising the call's own error
    monkeypatch.setattr(conn, "should_reconnect", lambda: False, raising=False)

    def failing_send(*args, **kwargs):
        raise RuntimeError("a bug in a callback")

    monkeypatch.setattr(client, "_send_command_parse_response", failing_send)
    with pytest.raises(RuntimeError, match="a bug in a callback"):
        client.ping()
    assert list(lane._idle) == [conn]


async def test_async_a_connection_whose_close_fails_goes_back_to_the_lane(aclient, monkeypatch):
    await aclient.ping()
    lane = aclient._dar_lane
    (conn,) = lane._idle
    calls = []

    async def failing_disconnect(*args, **kwargs):
        calls.append(kwargs)
        raise TimeoutError("Timed out closing connection after 2.0")

    monkeypatch.setattr(conn, "should_reconnect", lambda: True, raising=False)
    monkeypatch.setattr(conn, "disconnect", failing_disconnect)
    with pytest.raises(TimeoutError):
        await aclient.ping()
    assert calls
    assert list(lane._idle) == [conn]
    # and a failed close on the error path (a cancelled call) gives it back too
    monkeypatch.setattr(conn, "should_reconnect", lambda: False, raising=False)

    async def failing_send(*args, **kwargs):
        raise asyncio.CancelledError

    monkeypatch.setattr(aclient, "_send_command_parse_response", failing_send)
    with pytest.raises(asyncio.CancelledError):
        await aclient.ping()
    assert list(lane._idle) == [conn]
