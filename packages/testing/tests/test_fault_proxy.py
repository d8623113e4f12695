"""The fault proxy, driven by real redis-py clients through the private server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from deepagents_redis.testing import FaultProxy
from redis.backoff import NoBackoff
from redis.retry import Retry

pytestmark = pytest.mark.fault

ProxyFactory = Callable[[str], FaultProxy]


def _client(url: str, *, timeout: float = 5.0) -> redis.Redis:
    # No retries: each fault must surface as an exception on the first attempt.
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
    )


@pytest.fixture
def proxy(redis_url: str, fault_proxy: ProxyFactory) -> FaultProxy:
    return fault_proxy(redis_url)


@pytest.fixture
def client(proxy: FaultProxy) -> Iterator[redis.Redis]:
    c = _client(proxy.url, timeout=0.3)
    yield c
    c.close()


def test_pass_forwards_commands(proxy: FaultProxy, key_prefix: str, redis_url: str) -> None:
    c = _client(proxy.url)
    try:
        assert c.set(f"{key_prefix}:k", b"v" * 100_000)
        assert c.get(f"{key_prefix}:k") == b"v" * 100_000
    finally:
        c.close()
    assert proxy.mode == "pass"
    assert proxy.url == f"redis://127.0.0.1:{proxy.port}/0"
    assert proxy.url != redis_url


def test_blackhole_times_out_then_recovers(proxy: FaultProxy, client: redis.Redis) -> None:
    assert client.ping()
    proxy.set_mode("blackhole")
    with pytest.raises(redis.exceptions.TimeoutError):
        client.ping()
    proxy.set_mode("pass")
    # The timed-out connection is dropped by redis-py; a new one goes through.
    assert client.ping()


def test_blackhole_on_new_connection(proxy: FaultProxy) -> None:
    proxy.set_mode("blackhole")
    c = _client(proxy.url, timeout=0.3)
    try:
        with pytest.raises(redis.exceptions.TimeoutError):
            c.ping()
    finally:
        c.close()


def test_delay_longer_than_timeout_times_out(proxy: FaultProxy, client: redis.Redis) -> None:
    assert client.ping()
    proxy.set_mode("delay", delay=5.0)
    assert proxy.delay == 5.0
    with pytest.raises(redis.exceptions.TimeoutError):
        client.ping()


def test_small_delay_still_answers(proxy: FaultProxy, key_prefix: str) -> None:
    proxy.set_mode("delay", delay=0.01)
    c = _client(proxy.url)
    try:
        assert c.set(f"{key_prefix}:d", "1")
        assert c.get(f"{key_prefix}:d") == b"1"
    finally:
        c.close()


def test_reset_breaks_open_connections(proxy: FaultProxy, client: redis.Redis) -> None:
    assert client.ping()
    assert proxy.connection_count == 1
    proxy.set_mode("reset")
    # An RST (not a graceful FIN, which redis-py reports as "closed by server").
    with pytest.raises(redis.exceptions.ConnectionError, match="reset by peer"):
        client.ping()


def test_reset_refuses_new_connections_until_pass(proxy: FaultProxy) -> None:
    proxy.set_mode("reset")
    c = _client(proxy.url, timeout=1.0)
    try:
        with pytest.raises(redis.exceptions.ConnectionError, match="reset by peer"):
            c.ping()
        proxy.set_mode("pass")
        assert c.ping()
    finally:
        c.close()


async def test_async_client_through_proxy(proxy: FaultProxy) -> None:
    import redis.asyncio as aioredis

    c = aioredis.Redis.from_url(
        proxy.url, socket_timeout=0.3, retry=Retry(NoBackoff(), 0), protocol=2
    )
    try:
        assert await c.ping()
        proxy.set_mode("blackhole")
        with pytest.raises(redis.exceptions.TimeoutError):
            await c.ping()
        proxy.set_mode("pass")
        assert await c.ping()
    finally:
        await c.aclose()


def test_invalid_mode_and_delay(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="unknown fault mode"):
        proxy.set_mode("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delay"):
        proxy.set_mode("delay", delay=-1)


def test_close_is_idempotent_and_stops_listening(redis_url: str) -> None:
    proxy = FaultProxy(redis_url)
    url = proxy.url
    c = _client(url, timeout=1.0)
    try:
        assert c.ping()
        proxy.close()
        proxy.close()
        with pytest.raises(redis.exceptions.ConnectionError):
            c.ping()
    finally:
        c.close()


def test_target_needs_host_and_port() -> None:
    with pytest.raises(ValueError, match="host and port"):
        FaultProxy("unix:///tmp/redis.sock")


def test_url_keeps_credentials_and_db() -> None:
    proxy = FaultProxy("redis://user:secret@127.0.0.1:1/3")
    try:
        assert proxy.url == f"redis://user:secret@127.0.0.1:{proxy.port}/3"
    finally:
        proxy.close()


def test_blackhole_hides_the_server_going_away(
    redis_server_factory: Callable[..., Any], fault_proxy: ProxyFactory
) -> None:
    # A partition: nothing of the server reaches the client, not even that it closed the
    # connection or is gone. The proxy forwarded the server's FIN (an open connection saw
    # "Connection closed by server") and reset a new connection it could not take upstream
    # (a connection error): the client learnt what a partition hides.
    server = redis_server_factory()
    proxy = fault_proxy(server.url)
    with _client(proxy.url, timeout=0.3) as open_conn:
        assert open_conn.ping()
        proxy.set_mode("blackhole")
        server.kill()
        with pytest.raises(redis.exceptions.TimeoutError):
            open_conn.ping()
    with _client(proxy.url, timeout=0.3) as new_conn, pytest.raises(redis.exceptions.TimeoutError):
        new_conn.ping()
