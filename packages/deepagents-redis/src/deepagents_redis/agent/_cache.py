"""Wiring hook for the cache phase (owned by the cache helper)."""

from __future__ import annotations

from deepagents_redis.agent._build import AgentBuild


def wire(build: AgentBuild) -> None:
    """Apply the cache phase to the agent being built.

    Puts a :class:`~deepagents_redis.cache.RedisLLMCache` on the model (a string goes
    through ``init_chat_model(..., cache=...)``; an instance is copied, never mutated) and,
    with ``DEEPAGENTS_REDIS_CACHE_NODE_CACHE_ENABLED``, a
    :class:`~deepagents_redis.cache.RedisNodeCache` as the graph cache. Options (namespace,
    TTL, single-flight...) come from ``DEEPAGENTS_REDIS_CACHE_*``.

    Args:
        build: The arguments being assembled; edited in place.

    Raises:
        ConfigurationError: The phase is on but ``deepagents-redis-cache`` is not installed.
    """
    if not build.flags.cache_enabled:
        return
    try:
        from deepagents_redis.cache import wire_agent_cache
    except ImportError as exc:
        from deepagents_redis.core import ConfigurationError

        raise ConfigurationError(
            "the cache phase is enabled but deepagents-redis-cache is not installed: "
            "pip install 'deepagents-redis[cache]'"
        ) from exc
    build.notes.extend(wire_agent_cache(build.kwargs, connection=build.connection_kwargs()))
