"""Settings of the coord phase: keyword arguments first, then ``DEEPAGENTS_REDIS_COORD_*``."""

from __future__ import annotations

from typing import Self

from deepagents_redis.core import Connection, PhaseSettings
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

__all__ = ["CoordOptions", "CoordSettings"]

_TEN_YEARS = 10 * 365 * 86_400
"""Longest TTL or retention in seconds. Far longer ones reached Redis as values it refuses
(``PEXPIRE`` past its range, a negative ``XTRIM MINID`` cutoff), and only after a script's
first writes or at every worker's start; ten years is longer than anyone keeps a task."""


class CoordSettings(PhaseSettings):
    """Options of remote tasks and events, read from ``DEEPAGENTS_REDIS_COORD_*`` after kwargs.

    `Worker` and `TaskClient` take these as keyword arguments too
    (`Worker(..., lease_seconds=60)`).

    Example:
        >>> CoordSettings(lease_seconds=60).heartbeat_seconds
        10.0
    """

    model_config = SettingsConfigDict(env_prefix="DEEPAGENTS_REDIS_COORD_")

    namespace: str = Field(default="default", min_length=1, max_length=200)
    """Which set of queues, tasks and events: clients and workers meet in one namespace."""

    lease_seconds: float = Field(default=30.0, gt=0, le=3_600)
    """How long a task stays a worker's after its last heartbeat.

    A task is handed to another worker only when its worker stopped heartbeating for this
    long (crash, kill -9, partition), never because it runs long. 30 s rides out a GC pause or
    a brief network blip without a duplicate run, and re-runs a dead worker's tasks within
    about half a minute.
    """

    heartbeat_seconds: float = Field(default=10.0, gt=0)
    """How often a worker renews its tasks' leases (and notices cancellations).

    A third of the lease: two heartbeats may be lost before a live worker loses a task. It also
    bounds how long a cancel takes to reach a running task. At most half of `lease_seconds`.
    """

    max_attempts: int = Field(default=3, ge=1, le=100)
    """Runs a task gets (failures and lost workers both count) before the dead letters."""

    backoff_base_seconds: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    """First retry pause, doubled per attempt with full jitter (core's `jittered_backoff`)."""

    backoff_cap_seconds: float = Field(default=60.0, ge=0)
    """Longest retry pause."""

    max_backlog: int = Field(default=10_000, ge=1)
    """Most tasks one agent's queue holds (waiting, retrying or running) before `submit`
    refuses with `BackpressureError` (or waits, given a timeout). A bounded queue turns an
    overload into an error the producer sees, not a memory alarm on the server."""

    max_input_bytes: int = Field(default=1_048_576, ge=1_024, le=67_108_864)
    """Largest encoded task input (and result); above it `PayloadTooLargeError`."""

    result_ttl_seconds: int = Field(default=86_400, ge=1, le=_TEN_YEARS)
    """How long a finished task (record, events, idempotency key) is kept: one day."""

    events_maxlen: int = Field(default=1_000, ge=10)
    """Approximate cap of each task's event stream (``XADD MAXLEN ~``)."""

    log_maxlen: int = Field(default=10_000, ge=10)
    """Approximate cap of the namespace's global event log (a live tail, not an archive)."""

    dlq_retention_seconds: int = Field(default=7 * 86_400, ge=60, le=_TEN_YEARS)
    """Dead letters older than this are trimmed (``MINID``) when a worker starts."""

    task_timeout_seconds: float | None = Field(default=None, gt=0)
    """Longest run of one attempt; past it the task ends with status ``timeout``. None: no
    limit (a submit may still set its own)."""

    block_seconds: float = Field(default=1.0, gt=0, le=30)
    """How long one blocking read waits for work before the worker looks around again
    (stop requests, delayed retries). Kept below the socket timeout by the worker."""

    @model_validator(mode="after")
    def _check_timing(self) -> Self:
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            # A worker sleeps 0.9-1.1 heartbeats between renewals (in a task of their own,
            # which no other upkeep holds up, but a slow round of renewals still delays the
            # next): with a heartbeat just under the lease (9.5 s of 10 s) a live worker's
            # lease lapsed and another worker ran its task again.
            raise ValueError(
                "heartbeat_seconds must be at most half of lease_seconds, so a late or lost "
                "heartbeat does not hand a live worker's task to another"
            )
        if self.backoff_cap_seconds < self.backoff_base_seconds:
            raise ValueError("backoff_cap_seconds must be at least backoff_base_seconds")
        return self


class CoordOptions(Connection, total=False):
    """The keyword arguments of every coord component (`TaskClient`, `Worker`, `EventBus`).

    The connection (core's `Connection`: `connector=`, or `url=`, `settings=`, `client=`,
    `async_client=`), a `coord_settings=` object, and any `CoordSettings` field as an
    override, type-checked at the call site (a test keeps this list equal to the fields).
    """

    coord_settings: CoordSettings | None
    namespace: str
    lease_seconds: float
    heartbeat_seconds: float
    max_attempts: int
    backoff_base_seconds: float
    backoff_cap_seconds: float
    max_backlog: int
    max_input_bytes: int
    result_ttl_seconds: int
    events_maxlen: int
    log_maxlen: int
    dlq_retention_seconds: int
    task_timeout_seconds: float | None
    block_seconds: float
