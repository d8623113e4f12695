"""Settings of the fs phase (`DEEPAGENTS_REDIS_FS_*`)."""

from __future__ import annotations

from deepagents_redis.core import EvictionCheck, PhaseSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict

__all__ = [
    "KIB",
    "MIB",
    "FsSettings",
]


KIB = 1024
MIB = 1024 * KIB


class FsSettings(PhaseSettings):
    """Options of `RedisBackend`, read from keyword arguments first, then the environment.

    Environment variables use the prefix `DEEPAGENTS_REDIS_FS_` (for example
    `DEEPAGENTS_REDIS_FS_TTL_SECONDS=3600`). The Redis connection itself comes from
    `deepagents_redis.core.RedisSettings` (`DEEPAGENTS_REDIS_URL`, ...).
    """

    model_config = SettingsConfigDict(env_prefix="DEEPAGENTS_REDIS_FS_")

    namespace: str = "default"
    """Namespace (one isolated file tree) used when no namespace factory is given."""

    ttl_seconds: float | None = Field(default=None, gt=0)
    """Default lifetime of a file, refreshed by each write. None keeps files forever."""

    ttl_rules: dict[str, float | None] = Field(default_factory=dict)
    """Per-path-prefix lifetimes (seconds, None = forever); the longest matching prefix wins."""

    refresh_ttl_on_read: bool = False
    """Whether reading a file with a lifetime starts its lifetime again."""

    chunk_size: int = Field(default=256 * KIB, ge=4 * KIB)
    """Content above this many bytes is stored as chunks of this size."""

    spill_threshold: int = Field(default=32 * MIB, ge=0)
    """Content above this many bytes goes to the blob store; 0 disables spilling."""

    max_file_size: int = Field(default=256 * MIB, gt=0)
    """Writes above this many bytes are refused and nothing is written."""

    blob_dir: str | None = None
    """Directory of the default local blob store (a temp-dir folder when unset)."""

    edit_retries: int = Field(default=64, ge=1, le=10_000)
    """How many times an edit re-reads and re-applies after losing a version race."""

    eviction_check: EvictionCheck = "warn"
    """Before the first write: ``warn`` (log), ``refuse`` (``ConfigurationError``) or ``off``
    when the server's ``maxmemory-policy`` can evict files (``allkeys-*``)."""

    deadline_seconds: float = Field(default=30.0, gt=0)
    """Most seconds one call may take (retries, reconnects and health checks included).
    Longer than todos' 5 s because one call may move a file of up to `max_file_size`."""
