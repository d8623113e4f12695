"""A Redis Cluster none of whose startup nodes can be reached, as the caller sees it."""

from __future__ import annotations

import pytest
from deepagents_redis.core import (
    ConfigurationError,
    RedisConnector,
    RedisSettings,
    RedisUnavailableError,
)
from deepagents_redis.core.embedded import free_port


async def test_no_reachable_startup_node_is_redis_unavailable() -> None:
    """redis-py raises RedisClusterException ("Redis Cluster cannot be connected") from the
    node's ConnectionError: it was the base DeepAgentsRedisError, so a caller handling
    RedisUnavailableError (retry later, fail open) did not see an outage as one."""
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    connector = RedisConnector(settings=RedisSettings(url=url, cluster="on", retries=0))
    try:
        with pytest.raises(RedisUnavailableError, match=r"startup node.*Connection refused"):
            connector.client()
        with pytest.raises(RedisUnavailableError, match="startup node"):
            await connector.aclient()
    finally:
        await connector.aclose()


@pytest.mark.integration
async def test_a_rejected_password_at_cluster_startup_is_a_configuration_error(
    redis_cluster: object,
) -> None:
    port = redis_cluster.nodes[0].port  # type: ignore[attr-defined]
    url = f"redis://no-such-user:wrong@127.0.0.1:{port}/0"
    connector = RedisConnector(settings=RedisSettings(url=url, cluster="on"))
    try:
        with pytest.raises(ConfigurationError, match="credentials"):
            connector.client()
        with pytest.raises(ConfigurationError, match="credentials"):
            await connector.aclient()
    finally:
        await connector.aclose()
