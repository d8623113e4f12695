"""Liveness and readiness for orchestrators: an ASGI app to mount, and a tiny HTTP server.

* ``GET /livez``: 200 while the process runs (no I/O: a sick Redis must not get a healthy
  worker restarted).
* ``GET /readyz``: runs `check_health` (bounded by a deadline) and judges the server for the
  phases you run (`phase_verdicts`): 200 when ready, 503 when the server cannot serve every
  key, a phase fails on it, it is unreachable, or (``strict``) anything warns. The body is
  JSON: ``{"status", "verdict", "phases", "report"}`` (never a password).

`HealthApp` is a plain ASGI callable (mount it in any ASGI server: uvicorn, hypercorn,
Starlette's ``Mount``); `serve_health` runs the same probes on the standard library's HTTP
server (``deepagents-redis health --serve``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from deepagents_redis.core._connector import RedisConnector
from deepagents_redis.core._deadline import deadline
from deepagents_redis.core._errors import DeepAgentsRedisError
from deepagents_redis.core._eviction import phase_verdicts
from deepagents_redis.core._health import HealthReport, acheck_health, check_health

__all__ = ["HealthApp", "readiness", "serve_health"]

log = logging.getLogger("deepagents_redis.core")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def readiness(
    report: HealthReport | None, phases: Iterable[str], *, strict: bool = False, error: str = ""
) -> tuple[bool, dict[str, Any]]:
    """The readiness verdict of a health report (or of a failed check).

    Args:
        report: The report, or None when the check failed (`error` says why).
        phases: The phases this process runs.
        strict: Count warnings as not ready.
        error: Why the check failed, when `report` is None.

    Returns:
        `(ready, body)`: the JSON body the probes answer with.
    """
    if report is None:
        return False, {"status": "unavailable", "verdict": "failed", "error": error}
    verdicts = phase_verdicts(report, phases)
    failing = [v.phase for v in verdicts if v.verdict == "fail"]
    warned = bool(report.warnings) or any(v.verdict == "warn" for v in verdicts)
    if not report.ok or failing:
        verdict = "failed"
    elif warned:
        verdict = "warnings"
    else:
        verdict = "ok"
    ready = verdict == "ok" or (verdict == "warnings" and not strict)
    body = {
        "status": "ready" if ready else "not-ready",
        "verdict": verdict,
        "phases": {v.phase: {"verdict": v.verdict, "reason": v.reason} for v in verdicts},
        "report": report.to_dict(),
    }
    return ready, body


class HealthApp:
    """An ASGI app answering ``/livez`` and ``/readyz`` (see the module docstring).

    Args:
        connector: The connection to check (the app never closes it).
        phases: The phases this process runs (default: all three).
        strict: Warnings make ``/readyz`` answer 503.
        deadline_seconds: Bound of one readiness check, connecting included.

    Example:
        >>> app = HealthApp(RedisConnector(url=url), phases=["todos"])  # doctest: +SKIP
        >>> uvicorn.run(app, port=8080)  # doctest: +SKIP
    """

    def __init__(
        self,
        connector: RedisConnector,
        *,
        phases: Iterable[str] = ("cache", "todos", "fs"),
        strict: bool = False,
        deadline_seconds: float = 2.0,
    ) -> None:
        self.connector = connector
        self.phases = tuple(phases)
        self.strict = strict
        self.deadline_seconds = deadline_seconds
        phase_verdicts(HealthReport(ok=True, latency_ms=0.0), self.phases)  # names checked now

    async def _ready(self) -> tuple[bool, dict[str, Any]]:
        try:
            with deadline(self.deadline_seconds):
                client = await self.connector.aclient()
                report = await acheck_health(client, deadline_seconds=None)
        except DeepAgentsRedisError as exc:
            return readiness(None, self.phases, error=f"{type(exc).__name__}: {exc}")
        return readiness(report, self.phases, strict=self.strict)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = str(scope.get("path", ""))
        root = str(scope.get("root_path", ""))
        if root and path.startswith(root):
            path = path[len(root) :]  # mounted under a prefix (e.g. Starlette's Mount)
        if path == "/livez":
            status, body = 200, {"status": "alive"}
        elif path == "/readyz":
            ready, body = await self._ready()
            status = 200 if ready else 503
        else:
            status, body = 404, {"error": "not found: use /livez or /readyz"}
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def serve_health(
    connector: RedisConnector,
    host: str,
    port: int,
    *,
    phases: Iterable[str] = ("cache", "todos", "fs"),
    strict: bool = False,
    deadline_seconds: float = 2.0,
    ready: Callable[[ThreadingHTTPServer], None] | None = None,
) -> None:
    """Serve ``/livez`` and ``/readyz`` on the standard library's HTTP server until stopped.

    Args:
        connector: The connection to check (sync client).
        host: Address to bind (e.g. ``127.0.0.1``).
        port: Port to bind (0: any free port; `ready` receives the server to read it).
        phases: The phases this process runs.
        strict: Warnings make ``/readyz`` answer 503.
        deadline_seconds: Bound of one readiness check.
        ready: Called with the bound server before serving (tests stop it with
            ``server.shutdown()`` from another thread).
    """
    names = tuple(phases)
    phase_verdicts(HealthReport(ok=True, latency_ms=0.0), names)  # names checked now

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/livez":
                status, body = 200, {"status": "alive"}
            elif self.path == "/readyz":
                try:
                    with deadline(deadline_seconds):
                        report = check_health(connector.client(), deadline_seconds=None)
                    is_ready, body = readiness(report, names, strict=strict)
                except DeepAgentsRedisError as exc:
                    is_ready, body = readiness(None, names, error=f"{type(exc).__name__}: {exc}")
                status = 200 if is_ready else 503
            else:
                status, body = 404, {"error": "not found: use /livez or /readyz"}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("health probe: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    try:
        if ready is not None:
            ready(server)
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
