"""``create_deep_agent`` with Redis-backed phases.

The signature is deepagents' own (0.7.x, ``deepagents/graph.py``) plus keyword-only Redis
options, so swapping ``from deepagents import create_deep_agent`` for
``from deepagents_redis.agent import create_deep_agent`` changes nothing until a phase is
turned on.

Extension point for phase helpers: each phase owns ``agent/_<phase>.py`` with
``wire(build: AgentBuild) -> None`` (see :class:`~deepagents_redis.agent.AgentBuild`), listed
in :data:`PHASE_HOOKS`. Hooks run in list order (cache, todos, fs) after the flags are
resolved and before deepagents builds the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from deepagents_redis.agent import _cache, _fs, _todos
from deepagents_redis.agent._build import AgentBuild
from deepagents_redis.agent._flags import AgentRedisSettings

PHASE_HOOKS: list[Callable[[AgentBuild], None]] = [_cache.wire, _todos.wire, _fs.wire]
"""Phase hooks, in the order they run."""


def resolve_flags(
    *,
    redis_flags: AgentRedisSettings | None = None,
    redis_cache: bool | None = None,
    redis_todos: bool | None = None,
    redis_fs: bool | None = None,
) -> AgentRedisSettings:
    """Resolve phase switches: explicit keyword arguments, then ``redis_flags``, then env.

    Args:
        redis_flags: A prepared settings object (env is not read again when given).
        redis_cache: Turn the cache phase on or off; None defers.
        redis_todos: Turn the todos phase on or off; None defers.
        redis_fs: Turn the fs phase on or off; None defers.

    Returns:
        The resolved flags.
    """
    overrides = {
        name: value
        for name, value in (
            ("cache_enabled", redis_cache),
            ("todos_enabled", redis_todos),
            ("fs_enabled", redis_fs),
        )
        if value is not None
    }
    if redis_flags is not None:
        return redis_flags.model_copy(update=overrides)
    return AgentRedisSettings(**overrides)


def create_deep_agent(
    model: Any = None,
    tools: Sequence[Any] | None = None,
    *,
    system_prompt: Any = None,
    middleware: Sequence[Any] = (),
    subagents: Sequence[Any] | None = None,
    skills: list[str] | None = None,
    memory: list[str] | None = None,
    permissions: list[Any] | None = None,
    backend: Any = None,
    interrupt_on: dict[str, Any] | None = None,
    response_format: Any = None,
    state_schema: Any = None,
    context_schema: Any = None,
    checkpointer: Any = None,
    store: Any = None,
    debug: bool = False,
    name: str | None = None,
    cache: Any = None,
    redis_url: str | None = None,
    redis_settings: Any = None,
    redis_client: Any = None,
    redis_async_client: Any = None,
    redis_flags: AgentRedisSettings | None = None,
    redis_cache: bool | None = None,
    redis_todos: bool | None = None,
    redis_fs: bool | None = None,
) -> Any:
    """Create a deep agent, with the Redis phases you turn on.

    Every argument up to ``cache`` is deepagents' ``create_deep_agent`` argument of the same
    name and is passed through unchanged (note deepagents' ``cache`` is the LangGraph *node*
    cache; it does not cache model calls). The rest are ours.

    Args:
        model: The chat model or ``"provider:model"`` string.
        tools: Extra tools.
        system_prompt: Extra system prompt.
        middleware: Extra middleware.
        subagents: Subagent specs.
        skills: Skill source paths.
        memory: Memory file paths.
        permissions: Filesystem permission rules.
        backend: The filesystem backend.
        interrupt_on: Human-in-the-loop interrupt configuration.
        response_format: Structured output format.
        state_schema: Custom state schema.
        context_schema: Runtime context schema.
        checkpointer: LangGraph checkpointer.
        store: LangGraph store.
        debug: LangGraph debug mode.
        name: Graph name.
        cache: LangGraph node cache.
        redis_url: Redis URL for every enabled phase (else ``DEEPAGENTS_REDIS_URL``).
        redis_settings: A :class:`~deepagents_redis.core.RedisSettings` for every phase.
        redis_client: A ready sync Redis client to share (you close it).
        redis_async_client: A ready async Redis client to share (you close it).
        redis_flags: Phase switches; read from ``DEEPAGENTS_REDIS_*_ENABLED`` when None.
        redis_cache: Turn the Redis LLM cache on/off (beats ``redis_flags`` and env).
        redis_todos: Turn durable todos on/off (beats ``redis_flags`` and env).
        redis_fs: Turn the Redis filesystem on/off (beats ``redis_flags`` and env).

    Returns:
        The compiled deep agent graph, as deepagents returns it.

    Raises:
        ConfigurationError: A phase is on but cannot be wired (missing package or URL).
    """
    from deepagents import create_deep_agent as _upstream

    flags = resolve_flags(
        redis_flags=redis_flags,
        redis_cache=redis_cache,
        redis_todos=redis_todos,
        redis_fs=redis_fs,
    )
    build = AgentBuild(
        kwargs={
            "model": model,
            "tools": tools,
            "system_prompt": system_prompt,
            "middleware": list(middleware),
            "subagents": subagents,
            "skills": skills,
            "memory": memory,
            "permissions": permissions,
            "backend": backend,
            "interrupt_on": interrupt_on,
            "response_format": response_format,
            "state_schema": state_schema,
            "context_schema": context_schema,
            "checkpointer": checkpointer,
            "store": store,
            "debug": debug,
            "name": name,
            "cache": cache,
        },
        flags=flags,
        redis_url=redis_url,
        redis_settings=redis_settings,
        redis_client=redis_client,
        redis_async_client=redis_async_client,
    )
    for hook in PHASE_HOOKS:
        hook(build)
    return _upstream(**build.kwargs)
