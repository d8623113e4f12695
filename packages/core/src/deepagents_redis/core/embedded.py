"""A private, throw-away Redis server for demos and tests (`deepagents_redis.core.embedded`).

Not part of the runtime API (`deepagents_redis.core` does not import it): the CLI's `demo`
and the testing plugin import this module, production code never needs it.

`EmbeddedRedis` starts `redis-server` as a child process bound to 127.0.0.1 on a free port, with
its own temporary data directory, and stops it by its own PID (never by name, never a server it
did not start). When no `redis-server` binary exists it falls back to fakeredis's in-process TCP
server and says so (a log line and `.kind == "fakeredis"`), unless the caller forbids the
fallback.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ._component import Closing
from ._errors import ConfigurationError, RedisUnavailableError

__all__ = [
    "SERVER_BINARY_ENV",
    "EmbeddedRedis",
    "embedded_redis",
    "find_redis_server",
    "free_port",
]

log = logging.getLogger("deepagents_redis.core.embedded")

ServerKind = Literal["redis-server", "fakeredis"]

# Each cluster node also listens on port + 10000 (the cluster bus), and ports stop at 65535.
_CLUSTER_BUS_OFFSET = 10_000
_MAX_CLUSTER_PORT = 65_535 - _CLUSTER_BUS_OFFSET
_PORT_ATTEMPTS = 200
# A port picked by binding to port 0 can be taken by someone else before redis-server binds it;
# retrying a handful of times turns that rare race into a non-event.
_START_ATTEMPTS = 3


# Servers this process started and has not stopped yet. A safety net for interpreter exits
# that skip teardown (an exception in a `with` body is handled; a crash in pytest's own
# machinery may not be): never leave an orphaned redis-server behind.
_LIVE: weakref.WeakSet[EmbeddedRedis] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, cluster_bus: bool = False) -> int:
    """Return a currently free TCP port on 127.0.0.1.

    Args:
        cluster_bus: Also require `port + 10000` to be free and the port to be below 55536, as a
            Redis Cluster node listens on both.

    Returns:
        A port number that was free at the time of the call.

    Raises:
        ConfigurationError: No suitable port was found after a bounded number of attempts.
    """
    for _ in range(_PORT_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not cluster_bus:
            return port
        if port <= _MAX_CLUSTER_PORT and _port_is_free(port + _CLUSTER_BUS_OFFSET):
            return port
    raise ConfigurationError("could not find a free loopback port")


SERVER_BINARY_ENV = "REDIS_SERVER_BIN"
"""Environment variable naming the server binary to start instead of `redis-server` (a path, or
a name on PATH such as ``valkey-server``): the test plugin's private servers, clusters and
Sentinels, the demo's and the benchmarks' embedded server all start it."""


def find_redis_server() -> str | None:
    """Return the path of the server binary, or None when it is missing.

    That is ``$REDIS_SERVER_BIN`` (`SERVER_BINARY_ENV`) when set, else `redis-server`, looked
    up on PATH. A binary named but not found is missing too: nothing falls back to another
    server than the one asked for.
    """
    return shutil.which(os.environ.get(SERVER_BINARY_ENV) or "redis-server")


class EmbeddedRedis(Closing):
    """A private Redis server on 127.0.0.1, owned and stopped by this object.

    `redis-server` runs with `--save ""` (no RDB snapshots), `--appendonly no` unless `config`
    says otherwise, `--daemonize no`, and `--dir` set to its own data directory. `config` entries
    become `--name value` arguments, e.g. `{"appendonly": "yes", "appendfsync": "always"}` or
    `{"enable-debug-command": "local"}`.

    Example:
        ```python
        with EmbeddedRedis() as server:
            client = redis.Redis.from_url(server.url)
        ```

    `stop()` and `kill()` keep the data directory so that `restart()` comes back on the same port
    with the same data (with AOF on, data written with `appendfsync always` survives `kill()`).
    `close()` (and leaving the `with` block) stops the server and removes a data directory that
    this object created.

    The fakeredis fallback keeps data in memory: `kill()` loses it, `stop()` and `restart()` keep
    it; `config` is ignored there (logged).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        config: Mapping[str, str] | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        prefer: ServerKind = "redis-server",
        allow_fallback: bool = True,
        redis_server: str | None = None,
        cluster_bus: bool = False,
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
    ) -> None:
        """Configure (but do not start) the server.

        Args:
            port: Port to listen on; a free one is picked when None.
            config: Extra `redis-server` options, name to value (no leading dashes).
            data_dir: Data directory; a fresh temporary one (removed by `close()`) when None.
            prefer: `"redis-server"` (fall back to fakeredis if the binary is missing) or
                `"fakeredis"` (always the in-process fake).
            allow_fallback: When False, a missing binary raises `ConfigurationError` instead of
                falling back to fakeredis.
            redis_server: Path of the binary; found on PATH when None.
            cluster_bus: Pick a port whose cluster bus port (+10000) is free too.
            startup_timeout: Seconds to wait for the server to answer PING.
            stop_timeout: Seconds to wait after SIGTERM before sending SIGKILL.
        """
        if prefer not in ("redis-server", "fakeredis"):
            raise ConfigurationError(
                f"prefer must be 'redis-server' or 'fakeredis', not {prefer!r}"
            )
        self._requested_port = port
        self._port: int | None = port
        self._config = dict(config or {})
        self._own_dir = data_dir is None
        self._data_dir: Path | None = None if data_dir is None else Path(data_dir)
        # Removes the temporary data directory this object made when the object goes (or the
        # interpreter exits) without `close()`: `stop()` keeps it for `restart()`, and
        # servers only ever stopped left a `dar-redis-*` directory per run in the temp dir.
        self._dir_reaper: weakref.finalize[Any, Any] | None = None
        self._cluster_bus = cluster_bus
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._fake: Any = None
        self._fake_thread: threading.Thread | None = None
        self._fake_backend: Any = None
        self._version: str | None = None
        self._server_name: str | None = None
        self.fallback_reason: str | None = None
        """Why fakeredis is used instead of redis-server (None when it is not)."""

        binary = redis_server or find_redis_server()
        self._binary = binary
        if prefer == "fakeredis":
            self._kind: ServerKind = "fakeredis"
            self.fallback_reason = "fakeredis requested"
        elif binary is None:
            if not allow_fallback:
                raise ConfigurationError(
                    "no redis-server binary on PATH (install Redis, e.g. apt-get install "
                    "redis-server) and the fakeredis fallback is disabled"
                )
            self._kind = "fakeredis"
            self.fallback_reason = "no redis-server binary on PATH"
        else:
            self._kind = "redis-server"

    # ------------------------------------------------------------------ properties
    @property
    def kind(self) -> ServerKind:
        """`"redis-server"` (a real child process) or `"fakeredis"` (in-process fake)."""
        return self._kind

    @property
    def host(self) -> str:
        """Always `127.0.0.1`."""
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """The TCP port (picked on first `start()` when none was given)."""
        if self._port is None:
            raise ConfigurationError("the server has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def data_dir(self) -> Path:
        """The server's data directory (`--dir`)."""
        if self._data_dir is None:
            raise ConfigurationError("the server has not been started yet")
        return self._data_dir

    @property
    def pid(self) -> int | None:
        """PID of the redis-server child process (None for fakeredis or when not running)."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def version(self) -> str | None:
        """Server version from `INFO server` (known once started).

        The Redis version the server is compatible with: Valkey reports one too
        (``redis_version``), so version checks read the same on both.
        """
        return self._version

    @property
    def server_name(self) -> str | None:
        """Which server runs, from `INFO server`: ``"redis"``, or e.g. ``"valkey 8.0.1"``.

        None before the first start, and for the fakeredis fallback.
        """
        return self._server_name

    @property
    def is_running(self) -> bool:
        """Whether the server process (or fake TCP server) is up."""
        if self._kind == "fakeredis":
            return self._fake is not None
        return self._proc is not None and self._proc.poll() is None

    @property
    def config(self) -> dict[str, str]:
        """The extra `redis-server` options this server runs with."""
        return dict(self._config)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Start the server and wait (bounded) until it answers PING.

        Returns:
            This object, for chaining.

        Raises:
            RedisUnavailableError: The server did not come up within `startup_timeout`.
        """
        if self.is_running:
            return self
        made_dir = self._data_dir is None
        if made_dir:
            self._data_dir = Path(tempfile.mkdtemp(prefix="dar-redis-"))
            # Holds the path only (never self): it names just the directory made here.
            self._dir_reaper = weakref.finalize(self, _remove_tree, self._data_dir)
        try:
            if self._kind == "fakeredis":
                self._start_fake()
            else:
                self._start_process()
        except BaseException:
            if made_dir and self._data_dir is not None:
                # A first start that failed leaves nothing behind (it left its temp dir).
                self._close_log()
                self._remove_own_dir()
            raise
        _LIVE.add(self)
        return self

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after `stop_timeout`. Keeps the data dir."""
        _LIVE.discard(self)
        if self._kind == "fakeredis":
            self._stop_fake()
            return
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=self._stop_timeout)
        else:
            proc.wait()
        self._proc = None
        self._close_log()

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL, like a crash). Keeps the data dir."""
        _LIVE.discard(self)
        if self._kind == "fakeredis":
            self._stop_fake()
            # A crash loses the in-memory data of the fake.
            self._fake_backend = None
            return
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=self._stop_timeout)
        self._proc = None
        self._close_log()

    def restart(self) -> Self:
        """Stop the server if it runs, then start it again on the same port and data dir.

        Returns:
            This object.
        """
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove the data directory if this object created it."""
        self.stop()
        if self._own_dir:
            self._remove_own_dir()

    def _remove_own_dir(self) -> None:
        """Remove the temporary data directory made by `start()` (nothing else), once."""
        reaper, self._dir_reaper = self._dir_reaper, None
        if reaper is not None:
            reaper()  # removes it now; a finalizer runs at most once
        self._data_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __repr__(self) -> str:
        port = self._port if self._port is not None else "?"
        state = "running" if self.is_running else "stopped"
        return f"EmbeddedRedis(kind={self._kind!r}, port={port}, {state})"

    # ------------------------------------------------------------------ redis-server
    def _command(self, port: int) -> list[str]:
        assert self._binary is not None
        assert self._data_dir is not None
        options: dict[str, str] = {
            "port": str(port),
            "bind": "127.0.0.1",
            "dir": str(self._data_dir),
            "save": "",
            "appendonly": "no",
            "daemonize": "no",
            "protected-mode": "yes",
            "logfile": "",
        }
        options.update(self._config)
        command = [self._binary]
        for name, value in options.items():
            command += [f"--{name}", value]
        return command

    def _start_process(self) -> None:
        last_error: Exception | None = None
        attempts = 1 if self._requested_port is not None else _START_ATTEMPTS
        for _ in range(attempts):
            if self._port is None:
                self._port = free_port(cluster_bus=self._cluster_bus)
            try:
                self._spawn_and_wait(self._port)
                return
            except RedisUnavailableError as exc:
                last_error = exc
                if self._requested_port is None and not self._restarting_same_port():
                    self._port = None
        assert last_error is not None
        raise last_error

    def _restarting_same_port(self) -> bool:
        # After the first successful start the port is fixed: restart() must reuse it.
        return self._version is not None

    def _spawn_and_wait(self, port: int) -> None:
        assert self._data_dir is not None
        log_path = self._data_dir / "redis-server.log"
        self._log_file = log_path.open("ab")
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            self._command(port),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self._data_dir,
        )
        deadline = time.monotonic() + self._startup_timeout
        # No client-side retries: this loop is the retry, and it must notice a dead process.
        client = redis.Redis(
            host="127.0.0.1",
            port=port,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            protocol=2,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            while True:
                if self._proc.poll() is not None:
                    self._proc.wait()
                    self._proc = None
                    self._close_log()
                    raise RedisUnavailableError(
                        f"redis-server exited during startup on port {port}: "
                        f"{self._log_tail(log_path)}"
                    )
                try:
                    info: dict[str, Any] = client.info("server") if client.ping() else {}
                    # Only our own child counts: another server that bound the port first
                    # (a port picked free and taken before ours bound it) answers PING too,
                    # and was used, written to and stopped as ours. Ours then exits
                    # ("address already in use"), which the poll above reports.
                    if info and str(info.get("process_id")) == str(self._proc.pid):
                        self._version = str(info.get("redis_version", "unknown"))
                        # Valkey says so (and its own version); Redis has no server_name.
                        name = info.get("server_name")
                        own = info.get(f"{name}_version") if name else None
                        self._server_name = f"{name} {own}" if name and own else "redis"
                        return
                except redis.exceptions.BusyLoadingError:
                    pass  # replaying the AOF after a restart; keep waiting
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    pass  # not listening yet (or someone else's socket holds the port)
                if time.monotonic() > deadline:
                    self.kill()
                    raise RedisUnavailableError(
                        f"redis-server did not answer PING on port {port} within "
                        f"{self._startup_timeout:.0f}s: {self._log_tail(log_path)}"
                    )
                time.sleep(0.02)
        finally:
            client.close()

    @staticmethod
    def _log_tail(path: Path, lines: int = 5) -> str:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # ------------------------------------------------------------------ fakeredis
    def _start_fake(self) -> None:
        try:
            import fakeredis
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "no redis-server binary and fakeredis is not installed: install Redis, or "
                "pip install 'deepagents-redis-core[fake]'"
            ) from exc
        if self._config:
            log.info("fakeredis ignores redis-server options: %s", sorted(self._config))
        log.warning("using fakeredis instead of redis-server (%s)", self.fallback_reason)
        if self._port is None:
            self._port = free_port()
        server = fakeredis.TcpFakeServer(("127.0.0.1", self._port), server_type="redis")
        if self._fake_backend is not None:
            # stop()/restart() keep the data: reuse the in-memory backend.
            server.fake_server = self._fake_backend
        self._fake_backend = server.fake_server
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fakeredis-{self._port}",
            daemon=True,
        )
        thread.start()
        self._fake = server
        self._fake_thread = thread
        version = getattr(server.fake_server, "version", None)
        self._version = ".".join(map(str, version)) if isinstance(version, tuple) else "unknown"

    def _stop_fake(self) -> None:
        server, thread = self._fake, self._fake_thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=self._stop_timeout)
        self._fake = None
        self._fake_thread = None


@contextlib.contextmanager
def embedded_redis(
    *,
    config: Mapping[str, str] | None = None,
    prefer: ServerKind = "redis-server",
    allow_fallback: bool = True,
) -> Iterator[EmbeddedRedis]:
    """Run a private Redis server for the duration of a `with` block.

    Args:
        config: Extra `redis-server` options (name to value).
        prefer: `"redis-server"` (fakeredis only when the binary is missing) or `"fakeredis"`.
        allow_fallback: When False, a missing binary raises `ConfigurationError`.

    Yields:
        The started server; `.url` is ready to connect to.
    """
    server = EmbeddedRedis(config=config, prefer=prefer, allow_fallback=allow_fallback)
    server.start()
    try:
        yield server
    finally:
        server.close()
