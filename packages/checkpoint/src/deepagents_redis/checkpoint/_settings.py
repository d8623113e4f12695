"""Settings of the checkpoint phase: keyword arguments, then ``DEEPAGENTS_REDIS_CHECKPOINT_*``."""

from __future__ import annotations

from typing import Literal

from deepagents_redis.core import Connection, PhaseSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict

__all__ = ["CheckpointOptions", "CheckpointSettings"]


class CheckpointSettings(PhaseSettings):
    """Options of `RedisSaver`, read from ``DEEPAGENTS_REDIS_CHECKPOINT_*`` after kwargs.

    `RedisSaver` takes these as keyword arguments too (`RedisSaver(url=..., ttl_seconds=3600)`).

    Example:
        >>> CheckpointSettings(ttl_seconds=3600).refresh_on_read
        False
    """

    model_config = SettingsConfigDict(env_prefix="DEEPAGENTS_REDIS_CHECKPOINT_")

    namespace: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    """Which set of threads: savers meet in one namespace (an operator's name, not user input;
    ``[A-Za-z0-9_.-]``, so ``<namespace>/<thread id>`` names one thread unambiguously)."""

    ttl_seconds: int | None = Field(default=None, ge=1, le=3_153_600_000)
    """How long a checkpoint lives after it was written (or read, with `refresh_on_read`).

    None keeps threads until they are deleted. With a TTL, every write sets it on all of the
    thread's keys at once, so a thread in use never loses state and keeps all its checkpoints
    (`prune` keeps only the newest); a thread idle for longer than the TTL is gone, whole, and
    resuming it starts from empty state. A run's cross-thread index (`delete_for_runs`)
    expires twice the TTL after the run's last write.

    At most 100 years (``3_153_600_000``): Redis refuses an expiry past its range, and a put
    then failed after it had written.
    """

    refresh_on_read: bool = False
    """Whether `get_tuple`/`list` renew the TTL of what they read (a thread that is only read,
    e.g. a finished conversation a UI shows, stays alive)."""

    scan_batch: int = Field(default=256, ge=1, le=10_000)
    """Index entries one `list` script call looks at (bounded work per call: a filter that
    matches rarely is served in several calls instead of one long script)."""

    delete_batch: int = Field(default=500, ge=1, le=10_000)
    """Checkpoints (or run entries) one script call of `delete_thread`, `delete_for_runs` or
    `prune` looks at, and blob fields one call of `prune(strategy="keep_latest")` sweeps
    (a huge thread is deleted or pruned in several bounded calls)."""

    eviction_check: Literal["warn", "refuse", "off"] = "warn"
    """What the first write does if the server may evict keys (``maxmemory-policy
    allkeys-*``): a checkpoint evicted from under a thread loses the conversation. ``warn``
    logs once, ``refuse`` raises `ConfigurationError`, ``off`` skips the check."""

    deadline_seconds: float | None = Field(default=None, gt=0)
    """Time bound of one saver call (of one page for `list`, `copy_thread` and
    `sweep_threads`; of one thread for `delete_for_runs` and `prune(strategy="delete")`; of
    one script call of `delete_batch` for `prune(strategy="keep_latest")`; so a batch of any
    size completes); None uses the connection's `deadline_seconds`."""

    script_blob_bytes: int = Field(default=32_768, ge=0)
    """Channel bytes one script call carries: above it, a put's blobs, a `put_writes`'
    values and a read's blobs go around the script, as plain ``HSET``/``HSETNX``/``HMGET``
    (a write: in one ``MULTI`` with its script; a read, and `get_delta_channel_history`'s
    walk: a second round trip, for the values the script gave the sizes of).

    Why: every kilobyte a Lua script receives or reads costs Redis ~1.2 µs, and a read copies
    it again into its reply, while ``HSET``/``HMGET`` only copy it. Measured on Redis 7.0 for
    a 268 KB conversation: a put cost 478 µs of server time through the script and 149 µs
    around it, a `get_tuple` 748 µs and 49 µs; the server serves no one else meanwhile, so
    this is what many workers on one Redis feel. Below ~32 KB one script call is as cheap
    for the caller (a read's second round trip costs more than the Lua copy saves). ``0``
    sends every blob around the scripts.
    """


class CheckpointOptions(Connection, total=False):
    """The keyword arguments of `RedisSaver` after `checkpoint_settings=` and `serde=`.

    The connection (core's `Connection`: `connector=`, or `url=`, `settings=`, `client=`,
    `async_client=`) and any `CheckpointSettings` field as an override, type-checked at the
    call site (a test keeps this list equal to the fields).
    """

    namespace: str
    ttl_seconds: int | None
    refresh_on_read: bool
    scan_batch: int
    delete_batch: int
    eviction_check: Literal["warn", "refuse", "off"]
    deadline_seconds: float | None
    script_blob_bytes: int
