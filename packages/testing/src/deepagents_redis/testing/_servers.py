"""Which servers a test session uses, and what it reports about them."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

from deepagents_redis.core import redact_url as _core_redact_url

__all__ = [
    "ServerHandle",
    "SessionReport",
    "in_ci",
    "parse_version",
    "redact_url",
    "redis_server_version",
    "served_by",
    "server_binary",
]


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
