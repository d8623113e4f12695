"""Wiring hook for the todos phase (owned by the todos helper)."""

from __future__ import annotations

from deepagents_redis.agent._build import AgentBuild


def wire(build: AgentBuild) -> None:
    """Apply the todos phase to the agent being built.

    Adds :class:`~deepagents_redis.todos.RedisTodoMiddleware` (it takes the
    ``TodoListMiddleware`` slot, replacing a langchain one the caller passed) and, with
    ``DEEPAGENTS_REDIS_TODOS_SUBAGENT_TOOLS``, gives dict subagent specs the
    ``read_todos``/``update_todo`` tools. Options come from ``DEEPAGENTS_REDIS_TODOS_*``
    (:class:`~deepagents_redis.todos.TodosSettings`). Plans are scoped by thread id, so run
    the agent with a ``thread_id`` (or set ``DEEPAGENTS_REDIS_TODOS_SCOPE``).

    Args:
        build: The arguments being assembled; edited in place.

    Raises:
        ConfigurationError: The phase is on but ``deepagents-redis-todos`` is not installed.
    """
    if not build.flags.todos_enabled:
        return
    try:
        from deepagents_redis.todos import wire_agent_todos
    except ImportError as exc:
        from deepagents_redis.core import ConfigurationError

        raise ConfigurationError(
            "the todos phase is enabled but deepagents-redis-todos is not installed: "
            "pip install 'deepagents-redis[todos]'"
        ) from exc
    build.notes.extend(wire_agent_todos(build.kwargs, connection=build.connection_kwargs()))
