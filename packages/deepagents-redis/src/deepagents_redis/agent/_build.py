"""The object phase hooks receive while an agent is being wired."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepagents_redis.agent._flags import AgentRedisSettings


@dataclass
class AgentBuild:
    """Everything a phase hook may read or change before deepagents builds the graph.

    A hook is ``wire(build: AgentBuild) -> None``; it returns early when its phase is off
    (``build.flags.<phase>_enabled``) and otherwise edits ``build.kwargs`` in place (for
    example replaces ``kwargs["model"]`` with a cached copy, appends to
    ``kwargs["middleware"]``, or sets ``kwargs["backend"]``). Hooks never mutate objects the
    caller passed in (copy a model before attaching a cache).

    Attributes:
        kwargs: The arguments that will be passed to ``deepagents.create_deep_agent``.
        flags: Which phases are on.
        redis_url: The ``redis_url`` the caller gave, if any.
        redis_settings: The ``redis_settings`` the caller gave, if any.
        redis_client: A ready sync client the caller gave, if any.
        redis_async_client: A ready async client the caller gave, if any.
        notes: What each hook did, one line each (for logs and tests).
    """

    kwargs: dict[str, Any]
    flags: AgentRedisSettings
    redis_url: str | None = None
    redis_settings: Any = None
    redis_client: Any = None
    redis_async_client: Any = None
    notes: list[str] = field(default_factory=list)

    def connection_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a phase component's constructor.

        Every phase component takes ``url``, ``settings``, ``client`` and ``async_client``
        (CONTRACT), so hooks pass these straight through: ``RedisLLMCache(**build.
        connection_kwargs(), ...)``. With none given, the component reads
        ``DEEPAGENTS_REDIS_URL`` or raises ``ConfigurationError``: never a silent localhost.
        """
        return {
            "url": self.redis_url,
            "settings": self.redis_settings,
            "client": self.redis_client,
            "async_client": self.redis_async_client,
        }
