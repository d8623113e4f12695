"""Which servers a test session uses, and what it reports about them."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self

from deepagents_redis.core import redact_url as _core_redact_url

from . import _reaper

if TYPE_CHECKING:
    from deepagents_redis.core.embedded import EmbeddedRedis

__all__ = [
    "MIN_SERVER_VERSION",
    "ServerHandle",
    "SessionReport",
    "in_ci",
    "parse_version",
    "redact_url",
    "redis_server_version",
    "served_by",
    "server_binary",
    "start_owned",
]

MIN_SERVER_VERSION = "7.0"
"""The oldest Redis (``redis_version``, as Valkey reports it too) the project supports."""
_START_ATTEMPTS = 3


class ServerHandle(Protocol):
    """A private server the fixtures started (core's `EmbeddedRedis` satisfies this)."""

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`."""

    @property
    def port(self) -> int:
        """The server's port on 127.0.0.1."""

    @property
    def data_dir(self) -> Path:
        """The server's data directory (kept across `kill()` and `restart()`)."""

    @property
    def pid(self) -> int | None:
        """PID of the server process while it runs."""

    @property
    def version(self) -> str | None:
        """Server version reported by `INFO server`."""

    def kill(self) -> None:
        """SIGKILL the server (a crash); the data dir stays."""

    def stop(self) -> None:
        """SIGTERM (then SIGKILL after a bounded wait); the data dir stays."""

    def restart(self) -> Self:
        """Start again on the same port and data dir."""


def in_ci() -> bool:
    """Whether the `CI` environment variable says we run in continuous integration."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def parse_version(text: str) -> tuple[int, ...]:
    """Turn `"7.0.15"` (or `"7.2"`) into `(7, 0, 15)`; non-numeric parts end the tuple.

    Args:
        text: A dotted version string.

    Returns:
        The numeric components.
    """
    parts: list[int] = []
    for piece in text.strip().split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def redis_server_version(binary: str | None = None) -> tuple[str | None, str | None]:
    """Return `(path, version)` of the server binary, `(None, None)` when missing.

    The binary is `binary`, else core's `find_redis_server` (``$REDIS_SERVER_BIN``, e.g.
    ``valkey-server``, or `redis-server` on PATH).
    """
    path, _name, version = server_binary(binary)
    return path, version


def server_binary(binary: str | None = None) -> tuple[str | None, str | None, str | None]:
    """Return `(path, name, version)` of the server binary, as its ``--version`` says.

    `name` is the product, lower case: ``"redis"`` (``Redis server v=7.0.15 ...``) or
    ``"valkey"`` (``Valkey server v=8.0.1 ...``); `version` is the product's own version.
    All None when the binary is missing; name and version None when it does not answer.
    """
    from deepagents_redis.core.embedded import find_redis_server

    path = binary or find_redis_server()
    if path is None:
        return None, None, None
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [path, "--version"], capture_output=True, timeout=10, check=False
        ).stdout.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return path, None, None
    match = re.match(r"\s*(\w+) server v=(\S+)", out)
    if match is None:
        return path, None, None
    return path, match.group(1).lower(), match.group(2)


def served_by(server: Any) -> str:
    """What a started `EmbeddedRedis` runs, for reports.

    ``"redis-server 7.0.15"``, or for Valkey ``"valkey 8.0.1 (redis_version 7.2.4)"``: the
    version every check in the suite reads is the Redis version the server reports.
    """
    name = getattr(server, "server_name", None) or "redis"
    if name == "redis":
        return f"redis-server {server.version}"
    return f"{name} (redis_version {server.version})"


def start_owned(
    build: Callable[[], EmbeddedRedis], *, attempts: int = _START_ATTEMPTS
) -> EmbeddedRedis:
    """Start a server from `build`, and make sure the server answering is the one started.

    A port picked free can be taken by another process (a second test session starting at
    the same moment) before our `redis-server` binds it. Ours then exits on "address
    already in use", but the startup PING may already have been answered by the other
    server, and the session would have run (and flushed) someone else's database. So the
    answering server's ``INFO server`` ``process_id`` must be our child's PID; when it is
    not, our server is closed (its own process and temp dir; the other server is only
    read from) and a fresh one is started on another port. A server older than
    `MIN_SERVER_VERSION` is refused with a clear message instead of odd failures later.
    Whatever fails, the started server and its temp dir are cleaned up.

    Args:
        build: Makes an unstarted `EmbeddedRedis` (called once per attempt).
        attempts: How many servers to try before giving up.

    Returns:
        The started server, ours.

    Raises:
        RuntimeError: Every attempt was answered by a foreign server, or the server is too
            old.
    """
    problem = ""
    for _ in range(attempts):
        server = build()
        try:
            server.start()
            problem = _foreign(server)
            if not problem:
                _check_version(server)
                if server.kind == "redis-server":
                    # servers of a pytest session: stopped even if the session is SIGKILLed
                    _reaper.register(server.data_dir, remove=True)
                return server
        except BaseException:
            server.close()
            raise
        server.close()
    raise RuntimeError(f"could not start a private server of our own: {problem}")


def _foreign(server: EmbeddedRedis) -> str:
    """Why the server answering on `server.port` is not `server`'s process ("" if it is)."""
    if server.kind != "redis-server":
        return ""  # fakeredis runs in this process: binding a taken port fails loudly
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(
        host="127.0.0.1",
        port=server.port,
        socket_timeout=5,
        socket_connect_timeout=5,
        protocol=2,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        answering = client.info("server").get("process_id")
    except redis.exceptions.RedisError as exc:
        return f"port {server.port}: {type(exc).__name__} right after startup"
    finally:
        client.close()
    own = server.pid
    if own is None or str(answering) != str(own):
        return (
            f"port {server.port} is answered by another process's server (pid {answering}), "
            f"not by the one started (pid {own})"
        )
    return ""


def _check_version(server: EmbeddedRedis) -> None:
    if server.kind != "redis-server":
        return
    if parse_version(server.version or "0") < parse_version(MIN_SERVER_VERSION):
        raise RuntimeError(
            f"{served_by(server)} is too old: deepagents-redis needs "
            f"Redis {MIN_SERVER_VERSION} or newer (or Valkey); install a newer one or point "
            f"REDIS_SERVER_BIN at it"
        )


def redact_url(url: str) -> str:
    """Hide the password in a URL (`redis://user:***@host`): core's one redaction function."""
    return _core_redact_url(url)


@dataclass
class SessionReport:
    """What one test session (or xdist worker) actually used, for the terminal summary."""

    standalone: str | None = None
    """Description of the standalone server, once started."""
    cluster: str | None = None
    """Description of the cluster, once started."""
    factory_servers: int = 0
    """How many servers `redis_server_factory` started."""
    proxies: int = 0
    """How many fault proxies were opened."""
    notes: list[str] = field(default_factory=list)
    """Anything else worth telling (e.g. the fakeredis fallback)."""

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        nothing_used = not (self.standalone or self.cluster or self.factory_servers)
        if nothing_used and not self.proxies and not self.notes:
            return ["no Redis server started"]
        out = [
            f"standalone: {self.standalone or 'not used'}",
            f"cluster: {self.cluster or 'not started (no cluster test ran)'}",
        ]
        if self.factory_servers:
            out.append(f"redis_server_factory servers: {self.factory_servers}")
        if self.proxies:
            out.append(f"fault proxies: {self.proxies}")
        out += self.notes
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data (sent from xdist workers to the controller)."""
        return {
            "standalone": self.standalone,
            "cluster": self.cluster,
            "factory_servers": self.factory_servers,
            "proxies": self.proxies,
            "notes": list(self.notes),
        }
