"""Wiring hook for the fs phase (owned by the fs helper)."""

from __future__ import annotations

from deepagents_redis.agent._build import AgentBuild


def wire(build: AgentBuild) -> None:
    """Apply the fs phase to the agent being built.

    Sets ``backend=`` to a :class:`~deepagents_redis.fs.RedisBackend` (options from
    ``DEEPAGENTS_REDIS_FS_*``, :class:`~deepagents_redis.fs.FsSettings`) unless the caller
    passed a backend, which is kept as it is.

    Args:
        build: The arguments being assembled; edited in place.

    Raises:
        ConfigurationError: The phase is on but ``deepagents-redis-fs`` is not installed.
    """
    if not build.flags.fs_enabled:
        return
    try:
        from deepagents_redis.fs import wire_agent_fs
    except ImportError as exc:
        from deepagents_redis.core import ConfigurationError

        raise ConfigurationError(
            "the fs phase is enabled but deepagents-redis-fs is not installed: "
            "pip install 'deepagents-redis[fs]'"
        ) from exc
    build.notes.extend(wire_agent_fs(build.kwargs, connection=build.connection_kwargs()))
