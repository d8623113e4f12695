"""Build a deep agent with Redis-backed phases.

``deepagents_redis.agent.create_deep_agent`` takes deepagents' arguments plus keyword-only
Redis options; phases are off unless turned on by keyword or ``DEEPAGENTS_REDIS_*_ENABLED``.
"""

from deepagents_redis.agent._build import AgentBuild
from deepagents_redis.agent._flags import AgentRedisSettings
from deepagents_redis.agent._wiring import PHASE_HOOKS, create_deep_agent, resolve_flags

__all__ = [
    "PHASE_HOOKS",
    "AgentBuild",
    "AgentRedisSettings",
    "create_deep_agent",
    "resolve_flags",
]
