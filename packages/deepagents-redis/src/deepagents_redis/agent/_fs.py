"""Wiring hook for the fs phase (owned by the fs helper; replace the body)."""

from __future__ import annotations

from deepagents_redis.agent._build import AgentBuild


def wire(build: AgentBuild) -> None:
    """Apply the fs phase to the agent being built.

    Args:
        build: The arguments being assembled; edited in place.

    Raises:
        ConfigurationError: The phase is enabled but its wiring does not exist yet.
    """
    if not build.flags.fs_enabled:
        return
    from deepagents_redis.core import ConfigurationError

    raise ConfigurationError(
        "the fs phase is enabled (redis_fs=True or DEEPAGENTS_REDIS_FS_ENABLED) "
        "but this version of deepagents-redis cannot wire it into an agent yet"
    )
