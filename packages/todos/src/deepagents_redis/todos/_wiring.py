"""How ``deepagents_redis.agent.create_deep_agent`` plugs the todos phase in."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from deepagents_redis.todos._middleware import RedisTodoMiddleware
from deepagents_redis.todos._settings import TodosSettings
from langchain.agents.middleware.todo import TodoListMiddleware


def wire_agent_todos(
    kwargs: MutableMapping[str, Any],
    *,
    connection: Mapping[str, Any],
    todos_settings: TodosSettings | None = None,
) -> list[str]:
    """Add :class:`RedisTodoMiddleware` to the arguments of ``create_deep_agent``.

    A langchain ``TodoListMiddleware`` the caller passed is replaced (its prompt and tool
    description are kept); a ``RedisTodoMiddleware`` the caller passed is left alone. With
    ``todos_settings.subagent_tools``, every dict subagent spec gets
    :meth:`RedisTodoMiddleware.subagent_middleware` (specs are copied, never mutated).

    Args:
        kwargs: The ``create_deep_agent`` arguments (``middleware`` must be a list).
        connection: ``url``/``settings``/``client``/``async_client`` for the repository.
        todos_settings: Phase settings (default: from ``DEEPAGENTS_REDIS_TODOS_*``).

    Returns:
        One line per change made (for logs).
    """
    settings = todos_settings or TodosSettings()
    middleware: list[Any] = list(kwargs.get("middleware") or [])
    notes: list[str] = []
    existing = next(
        (i for i, m in enumerate(middleware) if getattr(m, "name", None) == "TodoListMiddleware"),
        None,
    )
    if existing is not None and isinstance(middleware[existing], RedisTodoMiddleware):
        mw = middleware[existing]
        notes.append("todos: kept the caller's RedisTodoMiddleware")
    else:
        options: dict[str, Any] = {}
        if existing is not None and isinstance(middleware[existing], TodoListMiddleware):
            options = {
                "system_prompt": middleware[existing].system_prompt,
                "tool_description": middleware[existing].tool_description,
            }
        mw = RedisTodoMiddleware(**dict(connection), todos_settings=settings, **options)
        if existing is None:
            middleware.append(mw)
            notes.append("todos: added RedisTodoMiddleware (plan kept in Redis)")
        else:
            middleware[existing] = mw
            notes.append("todos: replaced TodoListMiddleware with RedisTodoMiddleware")
    kwargs["middleware"] = middleware
    if settings.subagent_tools and kwargs.get("subagents"):
        specs = []
        for spec in kwargs["subagents"]:
            if isinstance(spec, Mapping) and "runnable" not in spec and "graph_id" not in spec:
                spec = {
                    **spec,
                    "middleware": [*spec.get("middleware", []), mw.subagent_middleware()],
                }
                notes.append(f"todos: gave subagent {spec.get('name')!r} read_todos/update_todo")
            specs.append(spec)
        kwargs["subagents"] = specs
    return notes
