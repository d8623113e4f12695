"""EmbeddedRedis: a private redis-server (or the fakeredis fallback) owned by its PID."""

from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from deepagents_redis.core import ConfigurationError, RedisUnavailableError
from deepagents_redis.core.embedded import (
    SERVER_BINARY_ENV,
    EmbeddedRedis,
    embedded_redis,
    find_redis_server,
    free_port,
)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_start_stop_close() -> None:
    server = EmbeddedRedis()
    assert server.kind == "redis-server"
    assert not server.is_running
    with pytest.raises(ConfigurationError):
        _ = server.url
    server.start()
    try:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert server.version is not None
        assert server.version[0].isdigit()
        pid = server.pid
        assert pid is not None
        data_dir = server.data_dir
        assert data_dir.is_dir()
        with redis.Redis.from_url(server.url, protocol=2, decode_responses=True) as c:
            assert c.ping()
            assert c.config_get("save") == {"save": ""}
            assert c.config_get("appendonly") == {"appendonly": "no"}
            assert c.config_get("dir")["dir"] == os.path.realpath(data_dir)
        server.stop()
        assert _gone(pid)
        assert data_dir.is_dir()  # stop() keeps data for restart()
    finally:
        server.close()
    assert not data_dir.exists()


def test_kill_and_restart_keep_port_and_aof_data() -> None:
    config = {"appendonly": "yes", "appendfsync": "always"}
    with EmbeddedRedis(config=config) as server:
        port = server.port
        with redis.Redis.from_url(server.url, protocol=2) as c:
            c.set("k", "v")
        old_pid = server.pid
        assert old_pid is not None
        server.kill()
        assert _gone(old_pid)
        assert not server.is_running
        server.restart()
        assert server.port == port
        with redis.Redis.from_url(server.url, protocol=2) as c:
            assert c.get("k") == b"v"


def test_a_server_only_stopped_removes_the_temp_dir_it_made_when_it_goes(
    tmp_path: Path,
) -> None:
    """`stop()` keeps the data dir for `restart()`; the object's end removes the one it made
    (only stopped, never closed, servers left a `dar-redis-*` dir behind per run)."""
    server = EmbeddedRedis().start()
    made = server.data_dir
    server.stop()
    assert made.is_dir()  # still there for restart()
    server.restart()
    assert server.data_dir == made
    server.stop()
    del server
    gc.collect()
    assert not made.exists()
    # a directory the caller gave is the caller's: kept
    given = EmbeddedRedis(data_dir=tmp_path).start()
    given.stop()
    del given
    gc.collect()
    assert (tmp_path / "redis-server.log").exists()


def test_a_process_that_only_stopped_its_server_leaves_no_temp_dir(tmp_path: Path) -> None:
    """A script that stops its server and exits (no `close()`) leaves the temp dir empty,
    and what was there before stays."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    (temp / "dar-redis-not-ours").mkdir()  # made by someone else: never removed
    script = (
        "from deepagents_redis.core.embedded import EmbeddedRedis\n"
        "server = EmbeddedRedis(allow_fallback=False).start()\n"
        "server.stop()\n"
    )
    env = {**os.environ, "TMPDIR": str(temp)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert sorted(p.name for p in temp.iterdir()) == ["dar-redis-not-ours"]


def test_explicit_data_dir_is_kept(tmp_path: os.PathLike[str]) -> None:
    with EmbeddedRedis(data_dir=tmp_path) as server:
        assert server.data_dir == tmp_path
    assert os.path.isdir(tmp_path)
    assert (tmp_path / "redis-server.log").exists()  # type: ignore[operator]


def test_bad_option_fails_with_the_server_log() -> None:
    server = EmbeddedRedis(config={"no-such-option": "1"})
    try:
        with pytest.raises(RedisUnavailableError, match="no-such-option"):
            server.start()
        assert not server.is_running
    finally:
        server.close()


def test_port_taken_by_someone_else() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = EmbeddedRedis(port=port)
        try:
            with pytest.raises(RedisUnavailableError, match="exited during startup"):
                server.start()
        finally:
            server.close()


def test_free_port_for_cluster_nodes_leaves_bus_port_free() -> None:
    for _ in range(5):
        port = free_port(cluster_bus=True)
        assert port <= 55535
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port + 10000))


def test_fakeredis_preferred_keeps_data_over_restart_but_not_kill() -> None:
    with EmbeddedRedis(prefer="fakeredis") as server:
        assert server.kind == "fakeredis"
        assert server.pid is None
        with redis.Redis.from_url(server.url, protocol=2) as c:
            c.set("k", "v")
        server.restart()
        with redis.Redis.from_url(server.url, protocol=2) as c:
            assert c.get("k") == b"v"
        server.kill()
        server.start()
        with redis.Redis.from_url(server.url, protocol=2) as c:
            assert c.get("k") is None


def test_fallback_to_fakeredis_without_binary_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str], caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with caplog.at_level(logging.WARNING), embedded_redis() as server:
        assert server.kind == "fakeredis"
        assert server.fallback_reason == "no redis-server binary on PATH"
        with redis.Redis.from_url(server.url, protocol=2) as c:
            assert c.ping()
    assert "using fakeredis instead of redis-server" in caplog.text


def test_no_fallback_when_forbidden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigurationError, match="no redis-server binary"):
        EmbeddedRedis(allow_fallback=False)


def test_embedded_redis_context_manager_stops_process() -> None:
    with embedded_redis(config={"maxmemory-policy": "noeviction"}) as server:
        pid = server.pid
        assert pid is not None
        with redis.Redis.from_url(server.url, protocol=2, decode_responses=True) as c:
            assert c.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert _gone(pid)


def test_invalid_prefer() -> None:
    with pytest.raises(ConfigurationError, match="prefer"):
        EmbeddedRedis(prefer="memcached")  # type: ignore[arg-type]


def test_interpreter_exit_stops_forgotten_servers(tmp_path: os.PathLike[str]) -> None:
    import subprocess
    import sys

    pid_file = os.path.join(tmp_path, "pid")
    code = (
        "from deepagents_redis.core.embedded import EmbeddedRedis\n"
        "s = EmbeddedRedis().start()\n"
        f"open({pid_file!r}, 'w').write(str(s.pid))\n"
        "globals()['keep'] = s  # never stopped by the script itself\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    with open(pid_file) as f:
        pid = int(f.read())
    orphaned = not _gone(pid)
    if orphaned:
        os.kill(pid, signal.SIGKILL)  # don't leave it behind when the assertion fails
    assert not orphaned


def test_server_binary_is_the_one_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # REDIS_SERVER_BIN names the binary (a path or a name on PATH); one named but missing is
    # missing: no silent fall back to redis-server (CI then fails instead of testing Redis
    # while it says Valkey).
    default = shutil.which("redis-server")
    assert default is not None
    monkeypatch.setenv(SERVER_BINARY_ENV, default)
    assert find_redis_server() == default
    monkeypatch.setenv(SERVER_BINARY_ENV, "no-such-server-binary")
    assert find_redis_server() is None
    with pytest.raises(ConfigurationError):
        EmbeddedRedis(allow_fallback=False)
    monkeypatch.delenv(SERVER_BINARY_ENV)
    assert find_redis_server() == default


def test_a_port_another_server_holds_is_never_adopted(
    redis_server_factory: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another server bound the port first: it answers PING, and the embedded server used to
    # take it as its own (the demo and the benchmarks then wrote to it and stopped it). Only
    # a server whose INFO names our child process counts; ours exits "address in use".
    other = redis_server_factory()  # type: ignore[operator]
    with redis.Redis.from_url(other.url) as admin:
        admin.set("theirs", b"1")
        their_pid = admin.info("server")["process_id"]
    made: list[str] = []
    real_mkdtemp = __import__("tempfile").mkdtemp

    def recording_mkdtemp(*args: object, **kwargs: object) -> str:
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr("deepagents_redis.core.embedded.tempfile.mkdtemp", recording_mkdtemp)
    server = EmbeddedRedis(port=other.port, startup_timeout=10)
    with pytest.raises(RedisUnavailableError, match="exited during startup"):
        server.start()
    assert not server.is_running
    # A failed first start leaves no temporary directory behind.
    assert made
    assert not any(os.path.exists(path) for path in made)
    with redis.Redis.from_url(other.url) as admin:
        assert admin.info("server")["process_id"] == their_pid
        assert admin.get("theirs") == b"1"
