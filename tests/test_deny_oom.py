"""A full server (maxmemory, noeviction) refuses each phase's write before it changes anything.

Found by the chaos suite: Redis refuses a script's deny-oom commands only until the script
has written something, so fs writes and checkpoint puts, whose first write is a cleanup
(DEL/HDEL), went on writing past maxmemory. Their scripts now start with core's `deny_oom`
probe.
"""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.core import DeepAgentsRedisError, RedisConnector, RedisSettings
from deepagents_redis.fs import RedisBackend
from langgraph.checkpoint.base import empty_checkpoint

pytestmark = pytest.mark.integration


def _keys(client: Any) -> int:
    return int(client.dbsize())


def test_writes_are_refused_whole_on_a_full_server(redis_server_factory: Any) -> None:
    server = redis_server_factory(config={"maxmemory-policy": "noeviction"})
    connector = RedisConnector(settings=RedisSettings(url=server.url, cluster="off"))
    client = connector.client()
    backend = RedisBackend(connector=connector, namespace="full")
    saver = RedisSaver(connector=connector, eviction_check="off")
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    assert backend.write("/before.txt", "x").error is None
    saver.put(config, empty_checkpoint(), {}, {})
    before = _keys(client)
    client.config_set("maxmemory", "1")
    try:
        with pytest.raises(DeepAgentsRedisError, match="maxmemory"):
            backend.write("/after.txt", "y" * 1000)
        with pytest.raises(DeepAgentsRedisError, match="maxmemory"):
            saver.put(config, empty_checkpoint(), {}, {})
        assert _keys(client) == before  # nothing half-written
    finally:
        client.config_set("maxmemory", "0")
    assert backend.write("/after.txt", "y").error is None
    saver.put(config, empty_checkpoint(), {}, {})
    connector.close()
