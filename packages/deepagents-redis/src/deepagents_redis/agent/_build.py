"""The object phase wiring receives while an agent is being built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deepagents_redis.agent._flags import AgentRedisSettings
from deepagents_redis.core import RedisConnector

__all__ = [
    "AgentBuild",
]


@dataclass
class AgentBuild:
    """Everything a phase's wiring may read or change before deepagents builds the graph.

    A phase's `wire(build) -> list[str]` edits `build.kwargs` in place (for example replaces
    `kwargs["model"]` with a cached copy, appends to `kwargs["middleware"]`, or sets
    `kwargs["backend"]`), builds its components on `build.connector` (the agent's ONE
    connection) and registers each with `build.own(...)` so `close_redis(agent)` closes
    it. It never mutates objects the caller passed in (a model is copied before a cache is
    attached).

    Attributes:
        kwargs: The arguments that will be passed to `deepagents.create_deep_agent`.
        flags: Which phases are on.
        connector: The one connection every phase shares (None unless a phase that talks
            to Redis is on).
        components: What the wiring built, closed by `close_redis` in reverse order.
        notes: What each phase did, one line each (for logs and tests).
        settings: Each enabled phase's settings, read before anything was built.
        undo: What to take back if the build fails after the phase ran, beyond closing
            components (process-wide changes such as observe's `instrument()`).
    """

    kwargs: dict[str, Any]
    flags: AgentRedisSettings
    connector: RedisConnector | None = None
    components: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    undo: list[Callable[[], None]] = field(default_factory=list)

    def own(self, component: Any) -> Any:
        """Remember a component the wiring built, for `close_redis`; returns it."""
        self.components.append(component)
        return component

    def shared(self) -> RedisConnector:
        """The agent's connector (`create_deep_agent` sets it before any phase runs).

        Raises:
            RuntimeError: Called outside `create_deep_agent`'s wiring.
        """
        if self.connector is None:
            raise RuntimeError("AgentBuild.connector is set by create_deep_agent")
        return self.connector
