"""`RedisTodoSubagentMiddleware`: subagents read the shared plan and update their items."""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any, cast

from deepagents_redis.core import (
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    adrive_operation,
    drive_operation,
)
from deepagents_redis.todos._calls import RepoCall, arepo_step, repo_step
from deepagents_redis.todos._models import TodoList, TodoStatus
from deepagents_redis.todos._plan import one_line
from deepagents_redis.todos._repository import RedisTodoRepository
from deepagents_redis.todos._scope import (
    ScopeResolver,
    _op_id,
    _ScopedRepository,
    _task_scope,
)
from langchain.agents.middleware.types import AgentMiddleware
from langchain.tools import ToolRuntime
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.config import get_config
from pydantic import BaseModel, Field

__all__ = [
    "SUBAGENT_PROMPT",
    "ReadTodosInput",
    "RedisTodoSubagentMiddleware",
    "UpdateTodoInput",
]


log = logging.getLogger("deepagents_redis.todos")

SUBAGENT_PROMPT = """## Shared plan

The agent that delegated this task keeps a shared todo plan. Use `read_todos` to see it
(with item ids) and `update_todo` to report progress on the item you are working on
(for example mark it `in_progress`, then `completed`). Do not change other items."""
"""System prompt section added by `RedisTodoSubagentMiddleware`."""


class UpdateTodoInput(BaseModel):
    """Arguments of the subagent ``update_todo`` tool."""

    item_id: str = Field(description="The id of the item, as shown by read_todos.")
    """The item's id."""
    status: TodoStatus | None = Field(default=None, description="The new status.")
    """The new status (None: unchanged)."""
    content: str | None = Field(default=None, description="New wording (optional).")
    """The new content (None: unchanged)."""


class ReadTodosInput(BaseModel):
    """Arguments of the subagent ``read_todos`` tool (none)."""


def _format_for_subagent(plan: TodoList) -> str:
    if not plan.items:
        return f"The shared plan {plan.scope!r} is empty (version {plan.version})."
    lines = [f"Shared plan {plan.scope!r} (version {plan.version}):"]
    # One line per item whatever its content, id or owner holds (`one_line`): a newline in
    # any of them forged further items for the subagent.
    for item in plan.items:
        owner = f" (owner: {one_line(item.owner)})" if item.owner else ""
        lines.append(f"- id={one_line(item.id)} [{item.status}] {one_line(item.content)}{owner}")
    return "\n".join(lines)


class RedisTodoSubagentMiddleware(AgentMiddleware[Any, Any, Any]):
    """Gives a subagent ``read_todos`` and ``update_todo`` on the parent's shared plan.

    Get one from `RedisTodoMiddleware.subagent_middleware` and put it in a subagent
    spec's ``middleware``. The subagent resolves the same scope as the parent (the thread
    id reaches subagents through the inherited config, or the named scope).
    """

    def __init__(
        self,
        *,
        repository: RedisTodoRepository,
        scope: str | ScopeResolver | None = None,
        system_prompt: str = SUBAGENT_PROMPT,
    ) -> None:
        """Create the middleware.

        Args:
            repository: The repository of the parent's plan.
            scope: As `RedisTodoMiddleware` (None: the thread id).
            system_prompt: Appended to the subagent's system prompt.
        """
        super().__init__()
        self._scoped = _ScopedRepository(repository, scope)
        self.system_prompt = system_prompt
        """Appended to the subagent's system prompt."""
        self.tools = _subagent_tools(self._scoped)

    @property
    def name(self) -> str:
        """``"RedisTodoSubagentMiddleware"``."""
        return "RedisTodoSubagentMiddleware"

    def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        """Add the shared-plan section to the system prompt.

        Args:
            request: The model request.
            handler: The next handler.

        Returns:
            The model response.
        """
        return handler(self._with_prompt(request))

    async def awrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        """Async `wrap_model_call`.

        Args:
            request: The model request.
            handler: The next handler.

        Returns:
            The model response.
        """
        return await handler(self._with_prompt(request))

    def _with_prompt(self, request: Any) -> Any:
        from langchain_core.messages import SystemMessage

        if request.system_message is not None:
            content = [
                *request.system_message.content_blocks,
                {"type": "text", "text": f"\n\n{self.system_prompt}"},
            ]
        else:
            content = [{"type": "text", "text": self.system_prompt}]
        return request.override(
            system_message=SystemMessage(content=cast("list[str | dict[str, str]]", content))
        )


_TOOL_ERRORS = (InvalidInputError, PayloadTooLargeError, NotFoundError)
"""What `update_todo` tells the model instead of raising."""


def _subagent_tools(scoped: _ScopedRepository) -> list[BaseTool]:
    repo = scoped.repository

    # No runtime parameter here: langchain drops every argument, injected ones included,
    # when a tool's args schema has no fields; the run's config comes from the context.
    def read_todos() -> str:
        return _format_for_subagent(repo.get(scoped.scope(get_config())))

    async def aread_todos() -> str:
        return _format_for_subagent(await repo.aget(scoped.scope(get_config())))

    def _done(plan: TodoList, item_id: str) -> str:
        item = plan.get(item_id)
        if item is None:
            # A replay whose plan moved on: the update was applied once, then someone removed
            # the item.
            return (
                f"Updated {one_line(item_id)}; it has since been removed from the plan "
                f"(plan version {plan.version})"
            )
        return (
            f"Updated {one_line(item_id)}: [{item.status}] {one_line(item.content)} "
            f"(plan version {plan.version})"
        )

    def update_flow(
        runtime: ToolRuntime[Any, Any],
        item_id: str,
        status: TodoStatus | None,
        content: str | None,
    ) -> Generator[RepoCall, Any, str]:
        # The tool, written once: run on the repository's sync or async methods.
        config = runtime.config
        reply = yield (
            "update",
            (scoped.scope(config), item_id),
            {
                "status": status,
                "content": content,
                "op_id": _op_id(
                    "update_todo",
                    f"{runtime.tool_call_id}@{_task_scope(config)}",
                    None,
                    [item_id, status, content],
                ),
                "actor": scoped.actor(config, "subagent"),
            },
        )
        if isinstance(reply, NotFoundError):
            return f"Error: {reply}; call read_todos for the current ids"
        if isinstance(reply, BaseException):
            return f"Error: {reply}"
        return _done(reply, item_id)

    def update_todo(
        runtime: ToolRuntime[Any, Any],
        item_id: str,
        status: TodoStatus | None = None,
        content: str | None = None,
    ) -> str:
        return drive_operation(
            update_flow(runtime, item_id, status, content), repo_step(repo, _TOOL_ERRORS)
        )

    async def aupdate_todo(
        runtime: ToolRuntime[Any, Any],
        item_id: str,
        status: TodoStatus | None = None,
        content: str | None = None,
    ) -> str:
        return await adrive_operation(
            update_flow(runtime, item_id, status, content), arepo_step(repo, _TOOL_ERRORS)
        )

    return [
        StructuredTool.from_function(
            name="read_todos",
            description="Read the shared todo plan of the agent that delegated this task.",
            func=read_todos,
            coroutine=aread_todos,
            args_schema=ReadTodosInput,
            infer_schema=False,
        ),
        StructuredTool.from_function(
            name="update_todo",
            description=(
                "Update one item of the shared todo plan (its status and/or wording). "
                "Use the item id shown by read_todos."
            ),
            func=update_todo,
            coroutine=aupdate_todo,
            args_schema=UpdateTodoInput,
            infer_schema=False,
        ),
    ]
