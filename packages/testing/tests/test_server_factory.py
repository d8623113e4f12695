"""`redis_server_factory`: custom configs, kill -9, restart on the same data dir."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

pytestmark = pytest.mark.fault
pytest_plugins = ["pytester"]

Factory = Callable[..., Any]


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=5, retry=Retry(NoBackoff(), 0), protocol=2, decode_responses=True
    )


def test_aof_always_survives_kill_9(redis_server_factory: Factory) -> None:
    server = redis_server_factory(aof=True)
    port, data_dir, pid = server.port, server.data_dir, server.pid
    with _client(server.url) as c:
        assert c.config_get("appendfsync") == {"appendfsync": "always"}
        for i in range(50):
            c.set(f"k{i}", i)
        c.rpush("list", *range(10))
    server.kill()
    assert server.pid is None
    with _client(server.url) as c, pytest.raises(redis.exceptions.ConnectionError):
        c.ping()
    server.restart()
    assert (server.port, server.data_dir) == (port, data_dir)
    assert server.pid not in (None, pid)
    with _client(server.url) as c:
        assert [c.get(f"k{i}") for i in range(50)] == [str(i) for i in range(50)]
        assert c.lrange("list", 0, -1) == [str(i) for i in range(10)]


def test_without_aof_kill_9_loses_data(redis_server_factory: Factory) -> None:
    # The counterpart that shows the previous test can fail: no AOF, no RDB => data gone.
    server = redis_server_factory()
    with _client(server.url) as c:
        c.set("k", "v")
    server.kill()
    server.restart()
    with _client(server.url) as c:
        assert c.get("k") is None


def test_debug_command_enabled_only_when_asked(redis_server_factory: Factory) -> None:
    plain = redis_server_factory()
    debug = redis_server_factory(debug=True)
    with _client(plain.url) as c, pytest.raises(redis.exceptions.ResponseError, match="DEBUG"):
        c.execute_command("DEBUG", "SLEEP", "0")
    with _client(debug.url) as c:
        assert c.execute_command("DEBUG", "SLEEP", "0")
    assert plain.port != debug.port


def test_debug_sleep_outlasts_socket_timeout(redis_server_factory: Factory) -> None:
    # The setup core's retry-safe-write tests need: DEBUG SLEEP longer than the socket timeout.
    server = redis_server_factory(debug=True)
    fast = redis.Redis.from_url(
        server.url, socket_timeout=0.2, retry=Retry(NoBackoff(), 0), protocol=2
    )
    try:
        with pytest.raises(redis.exceptions.TimeoutError):
            fast.execute_command("DEBUG", "SLEEP", "1")
    finally:
        fast.close()
    with _client(server.url) as c:
        assert c.ping()


def test_custom_config_and_stop(redis_server_factory: Factory) -> None:
    server = redis_server_factory(config={"maxmemory-policy": "allkeys-lru"})
    with _client(server.url) as c:
        assert c.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        assert c.config_get("save") == {"save": ""}
        assert c.config_get("bind")["bind"] == "127.0.0.1"
        assert c.config_get("dir")["dir"] == os.path.realpath(server.data_dir)
    pid = server.pid
    assert pid is not None
    server.stop()
    assert server.pid is None
    # The process is gone (reaped by stop()).
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_servers_are_stopped_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    pytester.makepyfile(
        """
        import os, pathlib
        PIDS = pathlib.Path("pids.txt")

        def test_start(redis_server_factory):
            a = redis_server_factory(aof=True)
            b = redis_server_factory(debug=True)
            PIDS.write_text(f"{a.pid} {b.pid} {a.data_dir}")
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    pid_a, pid_b, data_dir = (pytester.path / "pids.txt").read_text().split()
    for pid in (int(pid_a), int(pid_b)):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not os.path.exists(data_dir)
