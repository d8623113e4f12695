"""The queue groups' consumer lists stay bounded: one consumer per worker start is deleted."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from deepagents_redis.coord import TaskClient, Worker
from deepagents_redis.coord._keys import GROUP
from deepagents_redis.core import RedisConnector

from .conftest import FAST

pytestmark = pytest.mark.integration


def _consumers(raw: Any, stream: str) -> dict[str, int]:
    return {
        (c["name"].decode() if isinstance(c["name"], bytes) else c["name"]): int(c["pending"])
        for c in raw.xinfo_consumers(stream, GROUP)
    }


def test_a_stopped_workers_consumer_and_empty_stale_ones_are_deleted(
    connector: RedisConnector, tasks: TaskClient, worker_factory: Any
) -> None:
    # Every worker start is a new consumer (host, pid, random suffix) of each queue it is
    # delivered from, and Redis keeps a consumer until it is deleted: nothing deleted them,
    # so each group's consumer list grew by one per worker start (a restart, a deploy, a
    # kill -9), for ever.
    raw = connector.client()
    queue = tasks.keys.queue("pruned")
    raw.xgroup_create(queue.stream, GROUP, id="0", mkstream=True)
    raw.xgroup_createconsumer(queue.stream, GROUP, "dead-1")  # a worker that died long ago
    assert _consumers(raw, queue.stream) == {"dead-1": 0}
    time.sleep(FAST["lease_seconds"] + 0.2)  # silent for longer than a lease
    for n in range(3):
        with worker_factory({"pruned": lambda x: x}, worker_id=f"w-{n}"):
            task_id = tasks.submit("pruned", {"n": n})
            assert tasks.result(task_id, timeout=30) == {"n": n}
            assert f"w-{n}" in _consumers(raw, queue.stream)
    assert _consumers(raw, queue.stream) == {}

    # A consumer that holds an entry is never deleted (its pending list would be lost to
    # XAUTOCLAIM); an empty one of a live worker, only when it is the caller's own.
    raw.xadd(queue.stream, {"t": "0" * 32})
    raw.xreadgroup(GROUP, "holder", {queue.stream: ">"}, count=1)
    raw.xgroup_createconsumer(queue.stream, GROUP, "empty")
    # A long lease: "empty" must not look silent for longer than a lease by the time it is
    # pruned (with FAST's 1.5 s, a loaded machine took that long and it was deleted).
    worker = Worker(
        connector=connector, agents={"pruned": lambda x: x}, **{**FAST, "lease_seconds": 600}
    )

    async def prune(own: str) -> int:
        return int(await worker._prune(queue, own))

    assert asyncio.run(prune("holder")) == 0
    assert asyncio.run(prune("")) == 0
    assert _consumers(raw, queue.stream) == {"holder": 1, "empty": 0}
    assert asyncio.run(prune("empty")) == 1
    assert _consumers(raw, queue.stream) == {"holder": 1}
