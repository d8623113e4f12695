"""Tasks through Sentinel: a worker and a client on a ``redis+sentinel://`` URL, across a
``kill -9`` of the master (the replica is promoted; both sides rediscover it)."""

from __future__ import annotations

import os
import time

import pytest
from deepagents_redis.coord import TaskClient
from deepagents_redis.core import DeepAgentsRedisError, RedisConnector, RedisSettings
from deepagents_redis.testing import SentinelFactory

from .conftest import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.fault]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DEEPAGENTS_REDIS_"):
            monkeypatch.delenv(name)


def square(x: dict[str, int]) -> int:
    return x["n"] * x["n"]


def test_tasks_through_sentinel_survive_a_master_kill(
    redis_sentinel_factory: SentinelFactory,
) -> None:
    topo = redis_sentinel_factory(
        replicas=1, sentinels=3, quorum=2, down_after_ms=1000, failover_timeout_ms=3000
    )
    settings = RedisSettings(url=topo.url, key_prefix="sentinel-coord")
    connector = RedisConnector(settings=settings)
    tasks = TaskClient(connector=connector, lease_seconds=3, heartbeat_seconds=0.5)
    try:
        with running_worker(connector, {"square": square}, lease_seconds=3, heartbeat_seconds=0.5):
            before = [tasks.submit("square", {"n": n}) for n in range(5)]
            assert [tasks.result(t, timeout=20) for t in before] == [0, 1, 4, 9, 16]
            old_master = topo.master.port
            topo.master.kill()
            # The first calls after the kill may fail with our typed errors while Sentinel
            # promotes the replica; then the same client and worker go on with the new master.
            after = None
            for _ in range(300):
                try:
                    after = tasks.submit("square", {"n": 7})
                    break
                except DeepAgentsRedisError:
                    time.sleep(0.1)
            assert after is not None, "no submit succeeded after the failover"
            assert tasks.result(after, timeout=30) == 49
            assert topo.reported_masters()[0] != old_master
    finally:
        connector.close()
