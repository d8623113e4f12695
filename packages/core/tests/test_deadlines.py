"""Deadlines and the single retry layer (issue 8, defects 1 and 7) on real sockets.

Each test points a client built by our factory at a blackholing listener (accepts, never
answers), an idle connection gone bad, a port nothing listens on, or dead Sentinels, and
checks that the call ends in about its deadline (generous bounds: before the fix these
calls took 18-75 s) and how many connections it opened (before: retries nested 3 x 3).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.exceptions as rexc
from deepagents_redis.core import (
    ConfigurationError,
    IdempotentScript,
    KeySpace,
    OutcomeUnknownError,
    RedisSettings,
    RedisUnavailableError,
    arun_idempotent,
    check_health,
    create_async_client,
    create_client,
    deadline,
    new_op_id,
    run_idempotent,
)
from deepagents_redis.core import _connections as connections
from deepagents_redis.testing import FaultProxy

INCR = IdempotentScript("test_deadline_incr", "return redis.call('INCR', keys[1])")
KS = KeySpace("dltest")
# What the defects measured with default settings (socket_timeout=2, retries=2): 18 s for a
# read, 62-75 s for a write. A call bounded by a 1 s deadline must end well before that;
# the bound below leaves room for a loaded CI machine and is no latency target.
DEADLINE = 1.0
GENEROUS = DEADLINE + 4.0


def _settings(url: str, **overrides: object) -> RedisSettings:
    # Defaults on purpose (socket_timeout=2, retries=2, health_check_interval=30): the
    # promise is about them. Only the deadline and the topology are pinned.
    return RedisSettings(url=url, cluster="off", deadline_seconds=DEADLINE, **overrides)


@pytest.fixture
def blackhole(redis_url: str, fault_proxy: Callable[[str], FaultProxy]) -> FaultProxy:
    proxy = fault_proxy(redis_url)
    proxy.set_mode("blackhole")
    return proxy


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _timed(fn: Callable[[], object]) -> tuple[BaseException, float]:
    start = time.monotonic()
    try:
        fn()
    except Exception as exc:
        return exc, time.monotonic() - start
    raise AssertionError("the call did not fail")


def test_blackholed_read_ends_at_its_deadline(blackhole: FaultProxy) -> None:
    client = create_client(_settings(blackhole.url))
    try:

        def call() -> object:
            with deadline(DEADLINE):
                return client.get("k")

        exc, took = _timed(call)
    finally:
        client.close()
    assert isinstance(exc, rexc.TimeoutError | rexc.ConnectionError)
    assert took < GENEROUS
    # One retry layer: the connect is retried only while time is left, never 3 x 3.
    assert blackhole.accepted_count <= 3


def test_blackholed_read_without_deadline_is_not_nested(blackhole: FaultProxy) -> None:
    # No deadline at all: the socket timeouts bound each attempt and the attempts are
    # `retries + 1` (3), not (retries + 1) ** 2 connects of the nested layers.
    client = create_client(
        RedisSettings(url=blackhole.url, cluster="off", socket_timeout=0.2, retries=2)
    )
    try:
        exc, _took = _timed(lambda: client.get("k"))
    finally:
        client.close()
    assert isinstance(exc, rexc.TimeoutError | rexc.ConnectionError)
    assert blackhole.accepted_count == 3


async def test_async_blackholed_read_ends_at_its_deadline(blackhole: FaultProxy) -> None:
    client = await create_async_client(_settings(blackhole.url))
    start = time.monotonic()
    try:
        with deadline(DEADLINE), pytest.raises((rexc.TimeoutError, rexc.ConnectionError)):
            await client.get("k")
    finally:
        await client.aclose()
    assert time.monotonic() - start < GENEROUS
    assert blackhole.accepted_count <= 3


def test_blackholed_write_is_unavailable_not_unknown(blackhole: FaultProxy) -> None:
    # The handshake never completed, so the script was never sent: nothing can have been
    # applied (defect 7), and the op-id retries stop at the deadline (defect 1).
    client = create_client(_settings(blackhole.url))
    try:

        def call() -> object:
            with deadline(DEADLINE):
                return run_idempotent(
                    client, INCR, op_key=KS.op_key("s", new_op_id()), keys=[KS.key("n", "s")]
                )

        exc, took = _timed(call)
    finally:
        client.close()
    assert type(exc) is RedisUnavailableError
    assert took < GENEROUS


def test_write_sent_then_blackholed_is_outcome_unknown(
    redis_url: str, fault_proxy: Callable[[str], FaultProxy]
) -> None:
    proxy = fault_proxy(redis_url)
    client = create_client(_settings(proxy.url))
    try:
        client.ping()  # connected and handshaken: the next command is really sent
        proxy.set_mode("blackhole")

        def call() -> object:
            with deadline(DEADLINE):
                return run_idempotent(
                    client, INCR, op_key=KS.op_key("s", new_op_id()), keys=[KS.key("n", "s")]
                )

        exc, took = _timed(call)
    finally:
        client.close()
    assert type(exc) is OutcomeUnknownError
    assert took < GENEROUS


def test_idle_connection_health_check_is_bounded(
    redis_url: str, fault_proxy: Callable[[str], FaultProxy]
) -> None:
    proxy = fault_proxy(redis_url)
    client = create_client(_settings(proxy.url, health_check_interval=0.05))
    try:
        client.ping()
        time.sleep(0.2)  # idle past health_check_interval: the next checkout PINGs first
        proxy.set_mode("blackhole")

        def call() -> object:
            with deadline(DEADLINE):
                return run_idempotent(
                    client, INCR, op_key=KS.op_key("s", new_op_id()), keys=[KS.key("n", "s")]
                )

        exc, took = _timed(call)
    finally:
        client.close()
    # Only the health-check PING went out; the script never did.
    assert type(exc) is RedisUnavailableError
    assert took < GENEROUS


@pytest.mark.parametrize("use_async", [False, True])
async def test_never_reachable_write_is_unavailable(use_async: bool) -> None:
    # Defect 7: todos.add / fs.write against a port nothing listens on raised
    # OutcomeUnknownError, though nothing can have been applied.
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    call_kwargs = {"op_key": KS.op_key("s", new_op_id()), "keys": [KS.key("n", "s")]}
    if use_async:
        aclient = await create_async_client(_settings(url))
        try:
            with pytest.raises(RedisUnavailableError) as info:
                await arun_idempotent(aclient, INCR, **call_kwargs)  # type: ignore[arg-type]
        finally:
            await aclient.aclose()
    else:
        client = create_client(_settings(url))
        try:
            with pytest.raises(RedisUnavailableError) as info:
                run_idempotent(client, INCR, **call_kwargs)  # type: ignore[arg-type]
        finally:
            client.close()
    assert type(info.value) is RedisUnavailableError


def test_foreign_client_refused_is_unavailable() -> None:
    # A client we did not build: classified by exception type (ConnectionRefusedError in
    # the cause chain), not by redis-py's message text.
    client = redis.Redis(port=_closed_port(), retry=None)
    try:
        with pytest.raises(RedisUnavailableError):
            run_idempotent(client, INCR, op_key=KS.op_key("s", "x"), keys=[KS.key("n", "s")])
    finally:
        client.close()


def test_health_check_of_blackholed_server_is_bounded(blackhole: FaultProxy) -> None:
    client = create_client(_settings(blackhole.url))
    try:
        exc, took = _timed(lambda: check_health(client, deadline_seconds=DEADLINE))
    finally:
        client.close()
    assert isinstance(exc, RedisUnavailableError)
    assert took < GENEROUS


def test_cluster_auto_probe_is_bounded(blackhole: FaultProxy) -> None:
    # `cluster="auto"` asks the server at creation: that round trip has the deadline too.
    settings = RedisSettings(url=blackhole.url, deadline_seconds=DEADLINE)
    exc, took = _timed(lambda: create_client(settings))
    assert isinstance(exc, RedisUnavailableError)
    assert took < GENEROUS


@pytest.mark.parametrize("sentinels", ["refused", "blackholed"])
def test_dead_sentinels_are_bounded(
    sentinels: str, redis_url: str, fault_proxy: Callable[[str], FaultProxy]
) -> None:
    # Every Sentinel refusing connections used to block one call 24.9 s (redis-py's
    # default discovery backoff), 6.6 s even with fail-fast settings.
    if sentinels == "refused":
        hosts = [f"127.0.0.1:{_closed_port()}", f"127.0.0.1:{_closed_port()}"]
    else:
        proxies = [fault_proxy(redis_url), fault_proxy(redis_url)]
        for proxy in proxies:
            proxy.set_mode("blackhole")
        hosts = [f"127.0.0.1:{proxy.port}" for proxy in proxies]
    url = f"redis+sentinel://{','.join(hosts)}/mymaster"
    client = create_client(_settings(url))
    try:

        def call() -> object:
            with deadline(DEADLINE):
                return client.get("k")

        exc, took = _timed(call)
    finally:
        client.close()
    assert isinstance(exc, rexc.ConnectionError | rexc.TimeoutError)
    assert took < GENEROUS


@pytest.mark.parametrize("use_async", [False, True])
async def test_reply_cut_by_deadline_never_answers_the_next_command(
    use_async: bool, redis_url: str, fault_proxy: Callable[[str], FaultProxy]
) -> None:
    # A read cut short by the deadline must drop its connection: a late reply left on it
    # would be read as the answer to the next command (redis-py's asyncio read returns
    # None and keeps the connection when given an explicit timeout).
    proxy = fault_proxy(redis_url)
    settings = _settings(proxy.url)
    if use_async:
        aclient = await create_async_client(settings)
        try:
            await aclient.set("dl:k1", "v1")
            await aclient.set("dl:k2", "v2")
            proxy.set_mode("delay", delay=0.5)
            with deadline(0.2), pytest.raises((rexc.TimeoutError, rexc.ConnectionError)):
                await aclient.get("dl:k1")
            proxy.set_mode("pass")
            assert await aclient.get("dl:k2") == b"v2"
        finally:
            await aclient.aclose()
    else:
        client = create_client(settings)
        try:
            client.set("dl:k1", "v1")
            client.set("dl:k2", "v2")
            proxy.set_mode("delay", delay=0.5)
            with deadline(0.2), pytest.raises((rexc.TimeoutError, rexc.ConnectionError)):
                client.get("dl:k1")
            proxy.set_mode("pass")
            assert client.get("dl:k2") == b"v2"
        finally:
            client.close()


# -- the bound a call leaves on a sync socket ----------------------------------------------
#
# A sync connection keeps the bound of the last call on its socket and sets a new one only
# when the next call needs another (`_SyncDeadline._bound_socket`): the next call never
# inherits a shorter bound, and a write is bounded by the deadline as a read is.


def _socket(client: redis.Redis) -> socket.socket:
    pool = client.connection_pool
    conns = [c for c in (*pool._available_connections, *pool._in_use_connections) if c._sock]
    assert len(conns) == 1, conns
    return conns[0]._sock


def test_short_deadline_does_not_cut_a_later_call_short(redis_url: str) -> None:
    # A 0.2 s bound left on the socket must not end a later 1 s BLPOP: without a deadline
    # it runs under socket_timeout (3 s), under a 3 s deadline under that deadline. No
    # retries, and the same socket throughout: a retry on a new connection (which starts
    # with socket_timeout) would hide a read cut short.
    client = create_client(
        RedisSettings(url=redis_url, cluster="off", socket_timeout=3.0, retries=0)
    )
    try:
        with deadline(0.2):
            client.get("dl:bound")
        sock = _socket(client)
        assert sock.gettimeout() <= 0.2
        assert client.blpop(["dl:bound:list"], timeout=1) is None
        assert _socket(client) is sock
        assert sock.gettimeout() == 3.0
        with deadline(0.2):
            client.get("dl:bound")
        with deadline(3.0):
            assert client.blpop(["dl:bound:list"], timeout=1) is None
        assert _socket(client) is sock
    finally:
        client.close()


def test_same_bound_is_not_set_again(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Calls that need the same bound (within `_SLACK`) leave the socket's as it is: no
    # settimeout syscall per call. The time left is pinned so the test does not depend on how
    # fast this machine runs the calls.
    left = {"now": 0.9}
    real = connections.remaining
    monkeypatch.setattr(connections, "remaining", lambda: None if real() is None else left["now"])
    client = create_client(RedisSettings(url=redis_url, cluster="off", socket_timeout=3.0))
    try:
        client.ping()
        assert _socket(client).gettimeout() == 3.0
        with deadline(1.0):
            client.get("dl:bound")
        assert _socket(client).gettimeout() == 0.9
        left["now"] = 0.899  # 1 ms less: within the slack, kept
        with deadline(1.0):
            client.get("dl:bound")
        assert _socket(client).gettimeout() == 0.9
        left["now"] = 0.8  # 100 ms less: set
        with deadline(1.0):
            client.get("dl:bound")
        assert _socket(client).gettimeout() == 0.8
        client.get("dl:bound")  # no deadline: socket_timeout again
        assert _socket(client).gettimeout() == 3.0
    finally:
        client.close()


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_stalled_write_fails_while_the_server_still_sleeps(
    redis_server_factory: Any, use_async: bool
) -> None:
    """The asyncio connection bounded its writes by socket_timeout alone: a big SET to a
    server that had stopped reading held a 0.5 s deadline until the server read again (4 s
    seen), then failed anyway. Judged by order, not by a clock: the write must fail while
    the server still sleeps (socket_timeout outlasts the sleep, so only the deadline can
    end it first)."""
    import asyncio

    server = redis_server_factory(debug=True)
    settings = RedisSettings(url=server.url, cluster="off", socket_timeout=30.0, retries=0)
    sleeper = redis.Redis.from_url(server.url)

    def sleep() -> None:
        with contextlib.suppress(redis.RedisError):  # killed below, mid-sleep
            sleeper.execute_command("DEBUG", "SLEEP", 10)

    thread = threading.Thread(target=sleep)
    value = b"x" * (64 << 20)  # far more than the socket buffers hold
    try:
        if use_async:
            aclient = await create_async_client(settings)
            try:
                await aclient.ping()
                thread.start()
                await asyncio.sleep(0.3)
                with pytest.raises((rexc.TimeoutError, rexc.ConnectionError)), deadline(0.5):
                    await aclient.set("dl:big", value)
                asleep = thread.is_alive()
            finally:
                await aclient.aclose()
        else:
            client = create_client(settings)
            try:
                client.ping()
                thread.start()
                await asyncio.sleep(0.3)
                with pytest.raises((rexc.TimeoutError, rexc.ConnectionError)), deadline(0.5):
                    client.set("dl:big", value)
                asleep = thread.is_alive()
            finally:
                client.close()
        assert asleep, "the write outlived its deadline: it ended only when the server woke"
    finally:
        if thread.is_alive():
            server.kill()  # no need to wait out the sleep
        thread.join()
        sleeper.close()


@pytest.mark.integration
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_wrong_password_is_not_retried(redis_url: str, use_async: bool) -> None:
    """redis-py's AuthenticationError is a ConnectionError, so our retry layer retried a wrong
    password (3 connections for one GET, with backoff), and an op-id write retried it 4
    times and then reported OutcomeUnknownError, which tells the caller its write may have
    been applied. A rejected password is an answer: one connection, `ConfigurationError`."""
    admin = redis.Redis.from_url(redis_url)
    port = admin.connection_pool.connection_kwargs["port"]
    # No such ACL user: the server answers AUTH with WRONGPASS, as for a wrong password.
    settings = RedisSettings(
        url=f"redis://no-such-user:wrong-password@127.0.0.1:{port}/0", cluster="off", retries=2
    )

    def accepted() -> int:
        return int(admin.info("stats")["total_connections_received"])

    try:
        before = accepted()
        if use_async:
            aclient = await create_async_client(settings)
            try:
                with pytest.raises(rexc.AuthenticationError):
                    await aclient.get("k")
                after_get = accepted()
                with pytest.raises(ConfigurationError):
                    await arun_idempotent(aclient, INCR, op_key="{s}op", keys=["{s}k"])
            finally:
                await aclient.aclose()
        else:
            client = create_client(settings)
            try:
                with pytest.raises(rexc.AuthenticationError):
                    client.get("k")
                after_get = accepted()
                with pytest.raises(ConfigurationError):
                    run_idempotent(client, INCR, op_key="{s}op", keys=["{s}k"])
            finally:
                client.close()
        assert after_get - before == 1
        assert accepted() - after_get == 1
    finally:
        admin.close()
