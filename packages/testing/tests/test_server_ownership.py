"""The plugin's servers are its own: never someone else's, never left behind, never a stand-in.

Every case runs an inner pytest session in a subprocess (so that its patches, signals and
exits stay there) and judges it from outside: which server answered, what survived, which
processes and temp dirs are left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
addopts = -p no:cacheprovider -p no:randomly
    -p no:langsmith_plugin -p no:hypothesispytest -p no:codspeed -p no:benchmark
    -p no:recording -p no:syrupy -p no:anyio -p no:socket
"""

# A stand-in for an old redis-server: answers PING and INFO (Redis 6.2.6, its own PID) and
# `--version` the way redis-server does. Enough for the plugin's startup checks.
OLD_SERVER = r"""
import os, socket, sys

if "--version" in sys.argv:
    print("Redis server v=6.2.6 sha=00000000:0 malloc=libc bits=64 build=0")
    sys.exit(0)
port = int(sys.argv[sys.argv.index("--port") + 1])
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(16)
info = f"# Server\r\nredis_version:6.2.6\r\nprocess_id:{os.getpid()}\r\n".encode()
while True:
    conn, _ = listener.accept()
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        if data.endswith(b"\r\n"):
            text = data.upper()
            if b"INFO" in text:
                conn.sendall(b"$%d\r\n%s\r\n" % (len(info), info))
            elif b"PING" in text:
                conn.sendall(b"+PONG\r\n")
            else:
                conn.sendall(b"+OK\r\n")
            data = b""
    conn.close()
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for name in ("REDIS_URL", "REDIS_CLUSTER_URL", "CI", "PYTEST_XDIST_WORKER"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeini(INI)
    return pytester


def _executable(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def _leftover_dirs(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.glob("dar-redis-*"))


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _kill_orphans(temp: Path) -> None:
    """SIGKILL every process whose working directory lies under `temp` (the inner session's
    servers each run in their own data dir there, and nothing else does)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(temp)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def _process_id(url: str) -> int:
    with redis.Redis.from_url(url, socket_timeout=5, protocol=2) as client:
        return int(client.info("server")["process_id"])


# ---------------------------------------------------------------------------- foreign servers
def _patch_free_port(inner: pytest.Pytester, port: int, times: int) -> None:
    """The inner session's first `times` port picks return `port` (taken by a foreign server).

    That is the race of two sessions starting at once, made certain: the port was free when
    picked, then another session's server bound it before ours did.
    """
    inner.makeconftest(
        f"""
        import deepagents_redis.core.embedded as embedded

        _real = embedded.free_port
        _left = [{times}]

        def _taken(**kwargs):
            if _left[0] > 0:
                _left[0] -= 1
                return {port}
            return _real(**kwargs)

        embedded.free_port = _taken
        """
    )


def test_a_port_taken_by_another_server_is_not_adopted(
    inner: pytest.Pytester, redis_server_factory: Callable[..., Any]
) -> None:
    foreign = redis_server_factory()
    with redis.Redis.from_url(foreign.url, protocol=2) as client:
        client.set("theirs", "untouched")
    _patch_free_port(inner, foreign.port, times=1)
    inner.makepyfile(
        f"""
        import redis

        def test_own_server(redis_url, redis_client):
            assert redis_url != {foreign.url!r}
            redis_client.flushall()  # the session's private server: flushing it is fine
        """
    )
    result = inner.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    with redis.Redis.from_url(foreign.url, protocol=2) as client:
        assert client.get("theirs") == b"untouched"
    assert _process_id(foreign.url) == foreign.pid


def test_a_port_always_taken_fails_the_session_clearly(
    inner: pytest.Pytester,
    redis_server_factory: Callable[..., Any],
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    temp = tmp_path_factory.mktemp("tmpdir")
    monkeypatch.setenv("TMPDIR", str(temp))
    foreign = redis_server_factory()
    with redis.Redis.from_url(foreign.url, protocol=2) as client:
        client.set("theirs", "untouched")
    _patch_free_port(inner, foreign.port, times=1000)
    inner.makepyfile(
        """
        def test_own_server(redis_client):
            redis_client.flushall()
        """
    )
    result = inner.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    # Core's EmbeddedRedis takes only a server whose INFO names its child as started, so ours
    # is seen exiting ("address already in use") on the port every attempt was given.
    result.stdout.fnmatch_lines(
        [
            "*could not start the session's private redis-server: redis-server exited during "
            f"startup on port {foreign.port}*"
        ]
    )
    with redis.Redis.from_url(foreign.url, protocol=2) as client:
        assert client.get("theirs") == b"untouched"
    assert _leftover_dirs(temp) == []


# ---------------------------------------------------------------------------- bad binaries
def test_a_server_that_exits_at_startup_leaves_no_temp_dir(
    inner: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    temp = tmp_path_factory.mktemp("tmpdir")
    bin_dir = tmp_path_factory.mktemp("bin")
    broken = _executable(bin_dir, "redis-server", "import sys\nprint('broken')\nsys.exit(1)\n")
    monkeypatch.setenv("REDIS_SERVER_BIN", str(broken))
    monkeypatch.setenv("TMPDIR", str(temp))
    inner.makepyfile("def test_url(redis_url):\n    pass\n")
    result = inner.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*could not start the session's private redis-server: *exited during startup*"]
    )
    assert _leftover_dirs(temp) == []


def test_a_too_old_server_is_refused_with_a_clear_message(
    inner: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    temp = tmp_path_factory.mktemp("tmpdir")
    old = _executable(tmp_path_factory.mktemp("bin"), "redis-server", OLD_SERVER)
    monkeypatch.setenv("REDIS_SERVER_BIN", str(old))
    monkeypatch.setenv("TMPDIR", str(temp))
    inner.makepyfile(
        """
        def test_url(redis_url):
            pass

        def test_factory(redis_server_factory):
            redis_server_factory()
        """
    )
    result = inner.runpytest_subprocess()
    result.assert_outcomes(errors=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*redis-server 6.2.6 is too old: deepagents-redis needs Redis 7.0 or newer*",
            "*redis-server 6.2.6 is too old: deepagents-redis needs Redis 7.0 or newer*",
        ]
    )
    assert _leftover_dirs(temp) == []


def test_a_named_server_binary_that_is_missing_fails_with_no_stand_in(
    inner: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = tmp_path_factory.mktemp("bin") / "valkey-server"
    monkeypatch.setenv("REDIS_SERVER_BIN", str(missing))
    inner.makepyfile(
        """
        import pytest

        def test_standalone(redis_client):
            assert redis_client.ping()

        def test_factory(redis_server_factory):
            redis_server_factory()

        @pytest.mark.cluster
        def test_cluster(redis_cluster):
            pass
        """
    )
    result = inner.runpytest_subprocess("-rs")
    result.assert_outcomes(errors=2, failed=1)
    result.stdout.fnmatch_lines([f"deepagents-redis: REDIS_SERVER_BIN='{missing}' names no *"])
    assert "fakeredis TCP server" not in result.stdout.str()


# ---------------------------------------------------------------------------- killed sessions
HANGING_SESSION = """
import json, os, time
import pytest
import redis

def _where(url):
    with redis.Redis.from_url(url, protocol=2) as c:
        pid = int(c.info("server")["process_id"])
    return {{"pid": pid, "dir": os.readlink(f"/proc/{{pid}}/cwd")}}

@pytest.fixture(scope="session")
def users_own_teardown():
    yield
    open({ready!r} + ".torn-down", "w").close()

def test_hangs(users_own_teardown, redis_url, redis_server_factory, redis_sentinel_factory):
    topo = redis_sentinel_factory()
    sentinel = f"redis://127.0.0.1:{{topo.sentinel_ports[0]}}"
    servers = [_where(url) for url in (redis_url, redis_server_factory().url, sentinel)]
    with open({ready!r} + ".tmp", "w") as f:
        json.dump(servers, f)
    os.replace({ready!r} + ".tmp", {ready!r})
    while True:  # a hung test: CI's job timeout sends SIGTERM, then SIGKILL
        time.sleep(0.05)
"""


@pytest.mark.skipif(
    not Path("/proc/self/cwd").exists(), reason="the watchdog and this test read /proc (Linux)"
)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_killed_session_leaves_no_server_and_no_temp_dir(
    inner: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory, signum: int
) -> None:
    # SIGTERM: Python's default handler ended the session with no teardown and no atexit.
    # SIGKILL: nothing in the process can react; the plugin's watchdog process does.
    temp = tmp_path_factory.mktemp("tmpdir")
    ready = tmp_path_factory.mktemp("ready") / "servers.json"
    inner.makepyfile(HANGING_SESSION.format(ready=str(ready)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=inner.path,
        env={**os.environ, "TMPDIR": str(temp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    servers: list[dict[str, Any]] = []
    try:
        for _ in range(1200):  # the inner session starts its servers first
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists(), proc.communicate()[0].decode(errors="replace")
        servers = json.loads(ready.read_text())
        assert len(servers) == 3
        assert all(_alive(s["pid"]) for s in servers)
        proc.send_signal(signum)
        output = proc.communicate(timeout=120)[0].decode(errors="replace")
        for _ in range(600):  # the watchdog works after the session is gone
            if not any(_alive(s["pid"]) for s in servers) and _leftover_dirs(temp) == []:
                break
            time.sleep(0.05)
        assert [s for s in servers if _alive(s["pid"])] == [], output
        assert _leftover_dirs(temp) == [], output
        # SIGTERM ends the session like Ctrl-C: with every fixture's teardown, the user's too
        torn_down = Path(str(ready) + ".torn-down").exists()
        assert torn_down == (signum == signal.SIGTERM), output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_orphans(temp)  # the inner session's servers: the failure this test catches
