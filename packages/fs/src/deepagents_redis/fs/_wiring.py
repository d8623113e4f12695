"""How `deepagents_redis.agent.create_deep_agent` puts agent files on Redis."""

from __future__ import annotations

from typing import Any

from deepagents_redis.fs._backend import RedisBackend
from deepagents_redis.fs._settings import FsSettings


def wire_agent_fs(
    kwargs: dict[str, Any],
    *,
    connection: dict[str, Any],
    settings: FsSettings | None = None,
) -> list[str]:
    """Set `kwargs["backend"]` to a `RedisBackend` unless the caller chose a backend.

    A backend the caller passed (for example a `CompositeBackend` that already routes a
    path to a `RedisBackend`) is kept as it is: enabling the phase never overrides an
    explicit choice.

    Args:
        kwargs: The arguments for `deepagents.create_deep_agent`, edited in place.
        connection: `url`, `settings`, `client`, `async_client` for the backend.
        settings: The fs options (default: `FsSettings()` from `DEEPAGENTS_REDIS_FS_*`).

    Returns:
        One note per decision, for logs.
    """
    if kwargs.get("backend") is not None:
        kind = type(kwargs["backend"]).__name__
        return [f"fs: kept the caller's backend ({kind})"]
    fs_settings = settings or FsSettings()
    backend = RedisBackend.from_settings(fs_settings, **connection)
    kwargs["backend"] = backend
    return [f"fs: RedisBackend, namespace {fs_settings.namespace!r}"]
