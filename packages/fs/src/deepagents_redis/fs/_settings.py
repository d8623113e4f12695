"""Settings of the fs phase (`DEEPAGENTS_REDIS_FS_*`)."""

from __future__ import annotations

import math

from deepagents_redis.core import EvictionCheck, PhaseSettings
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

__all__ = [
    "KIB",
    "MAX_LIFETIME_SECONDS",
    "MIB",
    "FsSettings",
    "lifetime_error",
]


KIB = 1024
MIB = 1024 * KIB

MAX_LIFETIME_SECONDS = 10**10
"""Longest file lifetime or chunk grace, in seconds (about 317 years; None never expires).

The write and edit scripts add a lifetime to the server's clock as a Lua number and hand
the sum to PEXPIREAT; from ~1e14 s on it is no longer an integer Redis accepts, and the
script failed after its first writes (a write with `ttl=1e15` stored the file but left it
out of the index: readable, invisible to `ls` and `glob`)."""


def lifetime_error(value: object, what: str, *, zero: bool = False) -> str | None:
    """Why `value` cannot be a lifetime in seconds, or None when it can.

    Args:
        value: The caller's value.
        what: Its name, for the message.
        zero: Whether 0 is allowed (a grace period may be 0; a lifetime may not).

    Returns:
        A human readable reason, or None.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{what} must be a number of seconds, got {type(value).__name__}"
    if not math.isfinite(value):
        return f"{what} must be a finite number of seconds (None for no expiry)"
    if value < 0 or (value == 0 and not zero):
        least = "0 or more" if zero else "positive (None for no expiry)"
        return f"{what} must be {least}"
    if value > MAX_LIFETIME_SECONDS:
        return f"{what} must be at most {MAX_LIFETIME_SECONDS} seconds (None for no expiry)"
    return None


class FsSettings(PhaseSettings):
    """Options of `RedisBackend`, read from keyword arguments first, then the environment.

    Environment variables use the prefix `DEEPAGENTS_REDIS_FS_` (for example
    `DEEPAGENTS_REDIS_FS_TTL_SECONDS=3600`). The Redis connection itself comes from
    `deepagents_redis.core.RedisSettings` (`DEEPAGENTS_REDIS_URL`, ...).
    """

    model_config = SettingsConfigDict(env_prefix="DEEPAGENTS_REDIS_FS_")

    namespace: str = "default"
    """Namespace (one isolated file tree) used when no namespace factory is given."""

    ttl_seconds: float | None = Field(
        default=None, gt=0, le=MAX_LIFETIME_SECONDS, allow_inf_nan=False
    )
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

    deadline_seconds: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    """Most seconds one call may take (retries, reconnects and health checks included).
    Longer than todos' 5 s because one call may move a file of up to `max_file_size`."""

    @field_validator("ttl_rules")
    @classmethod
    def _rules_are_lifetimes(cls, rules: dict[str, float | None]) -> dict[str, float | None]:
        # A rule of 0 (or less) made every file under its prefix expire 1 ms after its
        # write, and NaN or infinity failed every such write; None is the way to say forever.
        for seconds in rules.values():
            reason = None if seconds is None else lifetime_error(seconds, "a ttl_rules value")
            if reason is not None:
                raise ValueError(reason)
        return rules
