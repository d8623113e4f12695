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


def handed_back(
    connector: RedisConnector, agent: str, before_stop: Callable[[], None] | None = None
) -> tuple[TaskClient, str]:
    """Run a task that waits until a stop (grace 0) hands it back; the client and its id.

    `before_stop` runs while the task runs, just before the worker stops (to arm a fault).
    """
    import time

    tasks = TaskClient(connector=connector, check_agents=False)
    started = threading.Event()

    async def waits(_x: Any) -> str:
        started.set()
        await asyncio.sleep(30)  # cancelled by the stop
        return "done"

    with running_worker(connector, {agent: waits}, stop_grace_seconds=0) as worker:
        task_id = tasks.submit(agent, {})
        assert started.wait(30)
        deadline = time.monotonic() + 30
        while tasks.get(task_id).status != "running" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tasks.get(task_id).status == "running"
        if before_stop is not None:
            before_stop()
        worker.stop()
    return tasks, task_id


@pytest.fixture
def hand_back(connector: RedisConnector) -> Callable[..., tuple[TaskClient, str]]:
    """`handed_back` on the test's connector: ``hand_back(agent, before_stop=None)``."""
    return lambda agent, before_stop=None: handed_back(connector, agent, before_stop)
