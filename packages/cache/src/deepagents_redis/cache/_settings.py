"""Settings for the cache package (env prefix ``DEEPAGENTS_REDIS_CACHE_``)."""

from __future__ import annotations

from typing import Final, Self

from deepagents_redis.core import Codec, PhaseSettings
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

__all__ = [
    "MAX_TTL_SECONDS",
    "CacheSettings",
]

MAX_TTL_SECONDS: Final = 315_360_000
"""The longest TTL and lease (ten years): beyond that, None (no expiry) says it plainly.

They become a PX in milliseconds: ``inf`` passed a ``> 0`` check and then raised
OverflowError, and ``1e300`` made a PX Redis refuses (every write failed open)."""

_CODEC_MAX_SIZE: Final = Codec().max_size
"""The default codec's largest envelope (64 MiB): the most an entry can ever hold."""


class CacheSettings(PhaseSettings):
    """Options of `RedisLLMCache` and `RedisNodeCache`.

    Values come from keyword arguments first, then from ``DEEPAGENTS_REDIS_CACHE_*``
    environment variables (e.g. ``DEEPAGENTS_REDIS_CACHE_TTL_SECONDS=3600``). The
    connection itself (URL, timeouts, TLS) is configured by
    `deepagents_redis.core.RedisSettings`.
    """

    model_config = SettingsConfigDict(env_prefix="DEEPAGENTS_REDIS_CACHE_")

    node_cache_enabled: bool = False
    """Whether the agent wiring also passes a `RedisNodeCache` as the graph cache."""

    namespace: str = "default"
    """Entries live in a namespace; ``clear()`` empties one namespace only."""

    ttl_seconds: float | None = Field(default=86_400, gt=0, le=MAX_TTL_SECONDS)
    """How long an entry lives, at most ten years. None keeps entries until evicted or
    cleared."""

    refresh_on_hit: bool = False
    """Push an entry's expiry forward by ``ttl_seconds`` each time it is served."""

    single_flight: bool = True
    """When several callers miss the same key at once, only one calls the model."""

    lease_ttl_seconds: float = Field(default=60.0, gt=0, le=MAX_TTL_SECONDS)
    """How long a single-flight lease lives (at most ten years). Set it above your model
    call's timeout:

    a leader that dies, or whose model call raises, blocks the key for at most this long
    before one waiter takes over.
    """

    wait_timeout_seconds: float = Field(default=75.0, ge=0)
    """How long a waiter waits for the leader's result before calling the model itself."""

    poll_interval_seconds: float = Field(default=0.025, gt=0)
    """Longest pause between two checks of a waiter (pauses start at 5 ms and double)."""

    strict: bool = False
    """Raise `RedisUnavailableError` instead of failing open."""

    breaker_failure_threshold: int = Field(default=3, ge=1)
    """Consecutive connection failures that open the circuit breaker."""

    breaker_reset_seconds: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    """How long the breaker stays open before one trial call is let through (finite: the
    breaker refuses ``inf``, which every cache's constructor raised as a bare ValueError)."""

    deadline_seconds: float = Field(default=0.25, gt=0)
    """Most seconds one cache call to Redis may take, retries and reconnects included
    (clients built by our factory). Short on purpose: when Redis stalls, a miss costs one
    model call, a stall costs the agent; three such misses open the breaker, and each
    half-open trial call gets the same short bound."""

    max_entry_bytes: int = Field(default=8_388_608, ge=1_024, le=_CODEC_MAX_SIZE)
    """Largest entry the cache stores or serves, in bytes (8 MiB by default, at most 64 MiB).

    At most the codec's own limit on an envelope (`Codec.max_size`, 64 MiB): up to 512 MiB
    was accepted, and an answer between the two passed this check and was then refused by
    the codec, counted as unserialisable. A value the cache's codec refuses as too large
    (a codec with a smaller ``max_size``) is skipped as over this bound.

    A lookup checks the size inside its read script (``STRLEN``) and treats a larger entry
    as a miss without transferring it (counted ``outcome=oversize``): before this bound a
    planted 200 MiB value cost each lookup 1.3 s, and a 64 MiB one +254 MB of memory. An
    update whose encoded value is larger is skipped (``outcome=oversize``). `RedisNodeCache`
    reads with ``MGET`` (no script), so a larger entry is transferred but never served: a
    counted miss (``node_cache.get``, ``outcome=oversize``)."""

    connect_deadline_seconds: float = Field(default=1.0, gt=0)
    """The deadline of a cache object's calls until one has succeeded (per sync/async
    client): those calls also connect and, on Cluster, discover the slots, which takes more
    than ``deadline_seconds`` on a busy machine. After the first success every call gets
    ``deadline_seconds``."""

    warn_interval_seconds: float = Field(default=30.0, ge=0)
    """At most one "serving a miss" warning per this many seconds (per cache object)."""

    client_side_cache: bool = False
    """Keep hot entries in process memory, invalidated by Redis (server-assisted tracking).

    Standalone servers only (Redis >= 6); see the docs page for the consistency model.
    """

    client_side_cache_max_entries: int = Field(default=10_000, ge=1)
    """Most entries the in-process layer keeps (least recently used are dropped)."""

    client_side_cache_max_bytes: int = Field(default=33_554_432, ge=1)
    """Most bytes of entries the in-process layer keeps (32 MiB by default), per cache object.

    Each entry counts its length as stored in Redis (the encoded value the hit read; the
    decoded objects in memory take a small multiple of it). The least recently used entries
    are dropped until both this and ``client_side_cache_max_entries`` hold; an entry larger
    than this alone is served from Redis and not kept. The entry count alone bounded the
    layer's memory only by the largest entry it may keep (32 KiB each: up to ~320 MiB of
    stored bytes at the default count).
    """

    @model_validator(mode="after")
    def _check_layer(self) -> Self:
        # Pushing the expiry is a write in the read script; Redis tells the tracking layer
        # every write to a key it holds, so each hit dropped the copy it had just stored:
        # with both on, every lookup went to Redis and the layer served nothing.
        if self.client_side_cache and self.refresh_on_hit:
            raise ValueError(
                "client_side_cache and refresh_on_hit cannot both be on: the expiry push is a"
                " write, which evicts the entry from the client-side layer on every hit"
            )
        return self
