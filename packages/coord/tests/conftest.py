from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import pytest_asyncio
from deepagents_redis.coord import TaskClient, Worker
from deepagents_redis.core import RedisConnector

# Fast timings for tests: a lease of 1.5 s renewed every 0.25 s, quick retries.
FAST: dict[str, Any] = {
    "lease_seconds": 1.5,
    "heartbeat_seconds": 0.25,
    "backoff_base_seconds": 0.01,
    "backoff_cap_seconds": 0.05,
    "block_seconds": 0.2,
}


@pytest_asyncio.fixture
async def connector(redis_target: Any) -> AsyncIterator[RedisConnector]:
    conn = RedisConnector(settings=redis_target.settings)
    yield conn
    await conn.aclose()


@pytest.fixture
def tasks(connector: RedisConnector) -> TaskClient:
    return TaskClient(connector=connector, **FAST)


@contextmanager
def running_worker(
    connector: RedisConnector, agents: dict[str, Any], **options: Any
) -> Iterator[Worker]:
    """A worker running in its own thread and loop (with its own connector), stopped after."""
    merged = {**FAST, **options}
    conn = RedisConnector(settings=connector.settings)
    worker = Worker(connector=conn, agents=agents, **merged)
    errors: list[BaseException] = []

    async def serve() -> None:
        try:
            await worker.arun()
        finally:
            logging.getLogger("deepagents_redis.coord").debug("test worker: closing its connector")
            await conn.aclose()
            logging.getLogger("deepagents_redis.coord").debug("test worker: closed")

    def main() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # surfaced by the test below
            errors.append(exc)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    deadline = 50
    while worker._stopping is None and deadline:  # wait for the loop to start
        threading.Event().wait(0.05)
        deadline -= 1
    _wait_announced(connector, list(agents), merged.get("namespace", "default"))
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "worker did not stop"
        assert not errors, errors


def _wait_announced(connector: RedisConnector, agents: list[str], namespace: str) -> None:
    client = TaskClient(connector=connector, namespace=namespace)
    for _ in range(100):
        if set(agents) <= set(client.agents()):
            return
        threading.Event().wait(0.05)
    raise AssertionError("worker never announced its agents")


@pytest.fixture
def worker_factory(connector: RedisConnector) -> Callable[..., Any]:
    return lambda agents, **options: running_worker(connector, agents, **options)
