"""Liveness and readiness probes (issue 11: an HTTP health endpoint for orchestrators)."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
from deepagents_redis.core import HealthApp, RedisConnector, RedisSettings, serve_health

pytestmark = pytest.mark.integration


async def _get(app: HealthApp, path: str, root: str = "") -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": root + path, "root_path": root}
    await app(scope, receive, send)
    start, body = sent
    return start["status"], json.loads(body["body"])


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_asgi_app_answers_liveness_and_readiness(redis_server_factory: Any) -> None:
    durable = redis_server_factory(aof=True)
    connector = RedisConnector(settings=RedisSettings(url=durable.url, cluster="off"))
    app = HealthApp(connector, phases=["cache", "todos", "fs"])
    assert await _get(app, "/livez") == (200, {"status": "alive"})
    status, body = await _get(app, "/readyz")
    assert status == 200, body
    assert body["verdict"] == "ok"
    assert set(body["phases"]) == {"cache", "todos", "fs"}
    assert (await _get(app, "/nope"))[0] == 404
    assert (await _get(app, "/livez", root="/health"))[0] == 200  # mounted under a prefix
    await connector.aclose()


async def test_readiness_fails_for_an_evicting_server_and_an_unreachable_one(
    redis_server_factory: Any,
) -> None:
    lru = redis_server_factory(aof=True, config={"maxmemory-policy": "allkeys-lru"})
    connector = RedisConnector(settings=RedisSettings(url=lru.url, cluster="off"))
    assert (await _get(HealthApp(connector, phases=["cache"]), "/readyz"))[0] == 200
    status, body = await _get(HealthApp(connector, phases=["todos"]), "/readyz")
    assert (status, body["phases"]["todos"]["verdict"]) == (503, "fail")
    await connector.aclose()
    gone = RedisConnector(
        settings=RedisSettings(url=f"redis://:s3cret@127.0.0.1:{_unused_port()}/0", cluster="off")
    )
    app = HealthApp(gone, deadline_seconds=0.5)
    assert (await _get(app, "/livez"))[0] == 200  # no I/O: the process is alive
    status, body = await _get(app, "/readyz")
    assert (status, body["status"]) == (503, "unavailable")
    assert "s3cret" not in json.dumps(body)
    await gone.aclose()


def test_stdlib_server_serves_the_same_probes(redis_server_factory: Any) -> None:
    server_ref: list[Any] = []
    ready = threading.Event()
    plain = redis_server_factory()  # no AOF: a warning, ready unless strict
    connector = RedisConnector(settings=RedisSettings(url=plain.url, cluster="off"))

    def run() -> None:
        def bound(server: Any) -> None:
            server_ref.append(server)
            ready.set()

        serve_health(connector, "127.0.0.1", 0, phases=["todos"], strict=True, ready=bound)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    server = server_ref[0]
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/livez", timeout=5) as reply:
            assert reply.status == 200
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{base}/readyz", timeout=5)
        assert info.value.code == 503  # strict, and the server has no AOF
        assert json.loads(info.value.read())["verdict"] == "warnings"
    finally:
        server.shutdown()
        thread.join(10)
        connector.close()
