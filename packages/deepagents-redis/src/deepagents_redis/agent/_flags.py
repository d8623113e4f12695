"""Which phases the agent wiring turns on."""

from __future__ import annotations

from deepagents_redis.core import PhaseSettings
from pydantic_settings import SettingsConfigDict

__all__ = [
    "AgentRedisSettings",
]


class AgentRedisSettings(PhaseSettings):
    """Phase switches for `deepagents_redis.agent.create_deep_agent`.

    Read from keyword arguments first, then from ``DEEPAGENTS_REDIS_<PHASE>_ENABLED``
    environment variables (``1``/``true``/``yes`` enable). Every phase is off by default:
    turning one on is a decision you make, not something an installed extra does to you.
    Phase-specific options (TTL, namespace, ...) live in each phase's own settings class
    (``CacheSettings`` with prefix ``DEEPAGENTS_REDIS_CACHE_``, ...).
    """

    model_config = SettingsConfigDict(env_prefix="DEEPAGENTS_REDIS_")

    cache_enabled: bool = False
    """Put the Redis LLM cache on the model (``DEEPAGENTS_REDIS_CACHE_ENABLED``)."""

    todos_enabled: bool = False
    """Keep the todo plan in Redis (``DEEPAGENTS_REDIS_TODOS_ENABLED``)."""

    fs_enabled: bool = False
    """Use the Redis filesystem backend (``DEEPAGENTS_REDIS_FS_ENABLED``)."""

    coord_enabled: bool = False
    """Publish subagent lifecycle events to Redis Streams (``DEEPAGENTS_REDIS_COORD_ENABLED``)."""

    checkpoint_enabled: bool = False
    """Keep the conversation (LangGraph checkpoints) in Redis with `RedisSaver`
    (``DEEPAGENTS_REDIS_CHECKPOINT_ENABLED``)."""

    observe_enabled: bool = False
    """Report every phase's operations to OpenTelemetry (`deepagents_redis.observe.instrument`
    with the global providers; ``DEEPAGENTS_REDIS_OBSERVE_ENABLED``)."""

    def enabled_phases(self) -> list[str]:
        """Names of the enabled phases, in wiring order."""
        return [
            name
            for name, on in (
                ("cache", self.cache_enabled),
                ("todos", self.todos_enabled),
                ("fs", self.fs_enabled),
                ("coord", self.coord_enabled),
                ("checkpoint", self.checkpoint_enabled),
                ("observe", self.observe_enabled),
            )
            if on
        ]
