"""Settings of the todos phase: keyword arguments first, then ``DEEPAGENTS_REDIS_TODOS_*``."""

from __future__ import annotations

from typing import Literal

from deepagents_redis.core import MAX_OP_TTL_MS, PhaseSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict

__all__ = [
    "ConflictPolicy",
    "TodosSettings",
]


ConflictPolicy = Literal["merge", "reject"]
"""What ``write_todos`` does when the plan moved since the agent last saw it.

``merge``: re-apply the agent's own edits (relative to the version it saw) on top of the
latest plan; outside edits to other items survive; on the same field of the same item the
agent's edit wins; the tool result says what was merged. ``reject``: apply nothing, refresh
the agent's view and tell it to write again.
"""


class TodosSettings(PhaseSettings):
    """Options of the todos phase, read from ``DEEPAGENTS_REDIS_TODOS_*`` after kwargs.

    Example:
        >>> TodosSettings(max_items=50).max_items
        50
    """

    model_config = SettingsConfigDict(env_prefix="DEEPAGENTS_REDIS_TODOS_")

    max_items: int = Field(default=100, ge=1, le=10_000)
    """Most items one plan may hold; a mutation that would exceed it changes nothing."""

    max_content_bytes: int = Field(default=4_096, ge=1, le=1_048_576)
    """Largest ``content`` of one item, in UTF-8 bytes (``PayloadTooLargeError`` above it).

    A todo is a line of a plan, not a document: 4 KiB is far above what models write, and
    ``max_items`` items of this size still fit in ``max_plan_bytes``.
    """

    max_plan_bytes: int = Field(default=524_288, ge=1_024, le=67_108_864)
    """Largest plan as stored (its items JSON), and largest request, in bytes.

    Every mutation decodes and re-encodes the whole plan inside one Lua call, during which the
    server serves no one else; this bounds that work (a 100 MB plan made every add take
    2.6 s and stalled other clients' commands for 5 s). Above it: ``PayloadTooLargeError``.
    """

    log_maxlen: int = Field(default=1_000, ge=1, le=2**63 - 1)
    """Approximate cap of each plan's change log (``XADD MAXLEN ~``; at most Redis's largest
    integer: past it every mutation failed on its XADD)."""

    op_ttl_seconds: int = Field(default=86_400, ge=1, le=MAX_OP_TTL_MS // 1000)
    """How long an operation id is remembered, so a retry within it applies once (at most
    core's ``MAX_OP_TTL_MS``, in seconds: 10**15 was accepted, and every mutation then
    failed after applying, so each retry applied it again). A record lives at least twice
    ``RedisSettings.deadline_seconds`` whatever this says: a call re-sends its mutation with the
    same op id until its deadline."""

    scope: str | None = None
    """A named plan shared by every thread; None scopes each plan to its thread id."""

    conflict_policy: ConflictPolicy = "merge"
    """See `ConflictPolicy`."""

    reuse_view_seconds: float = Field(default=0.25, ge=0, le=60)
    """Before a model call, ``RedisTodoMiddleware`` reads the plan again, unless this run
    loaded or wrote it after the previous model call and less than this long ago (then the
    agent's view is that fresh already: a read would add a round trip to learn nothing a
    model has not yet had a chance to act on). Changes made outside the run within this
    window show at the next model call instead; writes stay version-checked either way.
    0 reads before every model call."""
    subagent_tools: bool = False
    """Give subagents (``create_deep_agent`` wiring) the ``read_todos``/``update_todo`` tools."""
