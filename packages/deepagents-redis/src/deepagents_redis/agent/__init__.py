"""Build a deep agent with Redis-backed phases.

`deepagents_redis.agent.create_deep_agent` takes deepagents' arguments plus keyword-only
Redis options; phases are off unless turned on by keyword or `DEEPAGENTS_REDIS_*_ENABLED`.
Every phase shares one connection; `close_redis(agent)` or `with redis_agent(...) as agent:`
closes it.
"""

from deepagents_redis.agent._build import AgentBuild
from deepagents_redis.agent._flags import AgentRedisSettings
from deepagents_redis.agent._phases import PHASES, Phase
from deepagents_redis.agent._wiring import (
    RedisAgent,
    aclose_redis,
    close_redis,
    create_deep_agent,
    redis_agent,
    resolve_flags,
)

__all__ = [
    "PHASES",
    "AgentBuild",
    "AgentRedisSettings",
    "Phase",
    "RedisAgent",
    "aclose_redis",
    "close_redis",
    "create_deep_agent",
    "redis_agent",
    "resolve_flags",
]
