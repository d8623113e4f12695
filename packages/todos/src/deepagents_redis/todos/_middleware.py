"""``RedisTodoMiddleware``: langchain's ``TodoListMiddleware`` with the plan kept in Redis.

It subclasses langchain's middleware and reports the same ``name``
(``"TodoListMiddleware"``), so it takes that slot in any stack (deepagents'
``_apply_custom_middleware`` replaces by name; ``create_agent`` refuses two middleware of
one name). The ``write_todos`` tool keeps its name, description, argument schema, system
prompt and the one-call-per-turn check; what changes is where the plan lives:

* the run's first model call: load the plan, so a restarted or different worker resumes it
  (a thread whose checkpoint has todos but whose plan is empty in Redis seeds Redis from
  it). Inside the call, not a ``before_agent`` node: no graph step of its own;
* ``write_todos``: a versioned ``replace`` (one script call, op id derived from the tool
  call id and the LangGraph task that runs it, so re-running a tool call after a crash
  applies once while a later call that reuses the tool call id is applied);
* each model call (``wrap_model_call``, not a ``before_model`` node: no extra checkpointed
  step per call): pull changes made outside the run and tell the model what changed, in
  that call; the note is stored in the thread just before the model's answer (skipped when
  this run loaded or wrote the plan after the previous model call, less than
  ``TodosSettings.reuse_view_seconds`` ago: the view is that fresh already).

Conflict policy (``conflict_policy``), for a write based on a version that moved:
``merge`` (default) re-applies the agent's own edits on top of the latest plan (see
`deepagents_redis.todos._plan.merge`) and says so in the tool result; ``reject``
changes nothing, refreshes the agent's view and returns an error result asking it to write
again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Annotated, Any, NotRequired, Self, Unpack

from deepagents_redis.core import (
    ConfigurationError,
    ConflictError,
    Connection,
    InvalidInputError,
    PayloadTooLargeError,
    adrive_operation,
    drive_operation,
    get_instrumentation,
)
from deepagents_redis.todos._calls import RepoCall, arepo_step, repo_step
from deepagents_redis.todos._models import TodoList, new_item_id
from deepagents_redis.todos._plan import (
    Item,
    assign_ids,
    describe_changes,
    format_plan,
    merge,
    view_from_plan,
    view_from_state,
)
from deepagents_redis.todos._repository import RedisTodoRepository
from deepagents_redis.todos._scope import (
    ScopeResolver,
    _op_id,
    _ScopedRepository,
    _task_scope,
)
from deepagents_redis.todos._settings import ConflictPolicy, TodosSettings
from deepagents_redis.todos._subagent import RedisTodoSubagentMiddleware
from langchain.agents.middleware.todo import (
    WRITE_TODOS_SYSTEM_PROMPT,
    WRITE_TODOS_TOOL_DESCRIPTION,
    PlanningState,
    TodoListMiddleware,
    WriteTodosInput,
)
from langchain.agents.middleware.todo import Todo as LangchainTodo
from langchain.agents.middleware.types import (
    ExtendedModelResponse,
    ModelCallResult,
    ModelRequest,
    ModelResponse,
    PrivateStateAttr,
)
from langchain.tools import ToolRuntime
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.config import get_config
from langgraph.types import Command

__all__ = [
    "SYNC_MESSAGE_PREFIX",
    "RedisPlanningState",
    "RedisTodoMiddleware",
]


log = logging.getLogger("deepagents_redis.todos")

_EXPECTED = (ConflictError, InvalidInputError, PayloadTooLargeError)
"""Errors the write flow handles itself (they come back to it as replies)."""

SYNC_MESSAGE_PREFIX = "todo-sync-"
"""Id prefix of the messages the middleware adds to tell the model about the plan."""


class RedisPlanningState(PlanningState[Any]):
    """langchain's ``PlanningState`` plus the private bookkeeping of the Redis plan."""

    todo_ids: Annotated[NotRequired[list[str]], PrivateStateAttr]
    """Stable ids of ``todos``, position by position."""

    todos_version: Annotated[NotRequired[int], PrivateStateAttr]
    """The plan version ``todos`` reflects."""


def _state_update(plan: TodoList) -> dict[str, Any]:
    return {
        "todos": plan.as_langchain(),
        "todo_ids": plan.ids,
        "todos_version": plan.version,
    }


def _run_starts(state: Any) -> bool:
    """Whether this model call is the run's first: no model answer since the user's input.

    Read from the messages, newest first: a model message before a human one (our own
    notes are not input) means the run has called the model already.
    """
    for message in reversed(state.get("messages") or []):
        if isinstance(message, AIMessage):
            return False
        if isinstance(message, HumanMessage) and not str(message.id or "").startswith(
            SYNC_MESSAGE_PREFIX
        ):
            return True
    return True


def _with_pull(
    response: ModelResponse[Any] | AIMessage, note: list[Any], update: dict[str, Any]
) -> ExtendedModelResponse[Any]:
    """The model's response with a pulled plan: the note first, the plan fields as a command."""
    if isinstance(response, AIMessage):
        response = ModelResponse(result=[response])
    if note:
        response = ModelResponse(
            result=[*note, *response.result], structured_response=response.structured_response
        )
    return ExtendedModelResponse(model_response=response, command=Command(update=update))


def _unseeded(scope: str, exc: InvalidInputError | PayloadTooLargeError) -> None:
    """Say that a thread's todos stay as they are: Redis refused them as a seed.

    langchain's ``write_todos`` takes any content and any number of items, so a thread it
    ran can hold a plan the repository refuses (empty content, over ``max_content_bytes`` or
    ``max_items``). Raised out of the model call, that failed every later run of the thread;
    now the model keeps its view, and its next ``write_todos`` gets the usual error result.
    """
    log.warning("todo plan %r: the thread's todos were not seeded into Redis: %s", scope, exc)
    get_instrumentation().count("todos.plan.unseeded")


def _make_repository(
    repository: RedisTodoRepository | None,
    connection: Connection,
    todos_settings: TodosSettings,
) -> tuple[RedisTodoRepository, bool]:
    """The middleware's repository, and whether the middleware built it (and closes it)."""
    given = [f"{name}=" for name, value in connection.items() if value is not None]
    if repository is not None:
        if given:
            raise ConfigurationError(
                f"RedisTodoMiddleware got repository= and {', '.join(given)}: the repository "
                "carries its connection; pass one or the other"
            )
        return repository, False
    return RedisTodoRepository(**connection, todos_settings=todos_settings, actor="agent"), True


class RedisTodoMiddleware(TodoListMiddleware[Any, Any]):
    """``TodoListMiddleware`` whose plan lives in Redis (see the module docstring).

    Example:
        >>> from deepagents import create_deep_agent  # doctest: +SKIP
        >>> todos = RedisTodoMiddleware(url="redis://localhost:6379/0")  # doctest: +SKIP
        >>> agent = create_deep_agent(  # doctest: +SKIP
        ...     model, middleware=[todos], checkpointer=saver
        ... )
    """

    state_schema = RedisPlanningState  # type: ignore[assignment]

    def __init__(
        self,
        *,
        repository: RedisTodoRepository | None = None,
        todos_settings: TodosSettings | None = None,
        scope: str | ScopeResolver | None = None,
        conflict_policy: ConflictPolicy | None = None,
        max_merge_attempts: int = 5,
        system_prompt: str = WRITE_TODOS_SYSTEM_PROMPT,
        tool_description: str = WRITE_TODOS_TOOL_DESCRIPTION,
        **connection: Unpack[Connection],
    ) -> None:
        """Create the middleware.

        Args:
            repository: A ready repository (the caller closes it; excludes the connection
                arguments).
            todos_settings: Phase settings (default: from the environment).
            scope: A named plan shared by every thread, a function of the run's config, or
                None for the thread id (default: ``todos_settings.scope``).
            conflict_policy: ``merge`` or ``reject`` (default: ``todos_settings``).
            max_merge_attempts: Merges tried before giving up under constant contention.
            system_prompt: As langchain's ``TodoListMiddleware``.
            tool_description: As langchain's ``TodoListMiddleware``.
            **connection: How the repository built here connects (core's `Connection`):
                `connector=` (shared; the caller closes it), or the conveniences `url=`,
                `settings=`, `client=` (used by `invoke`), `async_client=` (by `ainvoke`).
        """
        super().__init__(system_prompt=system_prompt, tool_description=tool_description)
        self.todos_settings = todos_settings or TodosSettings()
        """The phase settings."""
        self.repository, self._owns_repository = _make_repository(
            repository,
            connection,
            self.todos_settings,
        )
        """The repository every read and write goes through."""
        self.conflict_policy: ConflictPolicy = (
            conflict_policy or self.todos_settings.conflict_policy
        )
        """``merge`` or ``reject``."""
        if max_merge_attempts < 1:
            raise InvalidInputError("max_merge_attempts must be >= 1")
        self.max_merge_attempts = max_merge_attempts
        """Merges tried before a write gives up with ``ConflictError``."""
        self._scoped = _ScopedRepository(self.repository, scope or self.todos_settings.scope)
        # (scope, thread id) -> (version, ids, monotonic time) of the plan this process last
        # wrote for a run; the next model call consumes it (see _fresh_view). Loads happen
        # inside a model call, after which the model acts: they leave no memo.
        self._views: dict[tuple[str, Any], tuple[int, list[str], float]] = {}
        self.tools = [_write_todos_tool(self, tool_description)]

    @property
    def name(self) -> str:
        """``"TodoListMiddleware"``: takes langchain's slot in any middleware stack."""
        return "TodoListMiddleware"

    def close(self) -> None:
        """Close the repository if this middleware built it (yours stays open)."""
        if self._owns_repository:
            self.repository.close()

    async def aclose(self) -> None:
        """Async twin of `close`."""
        if self._owns_repository:
            await self.repository.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def scope_for(self, config: RunnableConfig) -> str:
        """The plan scope of a run.

        Args:
            config: The run's config.

        Returns:
            The scope.
        """
        return self._scoped.scope(config)

    def subagent_middleware(self) -> RedisTodoSubagentMiddleware:
        """A middleware for subagent specs: ``read_todos`` and ``update_todo`` on this plan.

        deepagents keeps ``todos`` out of subagent state; these tools read the shared plan
        from Redis and update one item atomically (no whole-list version check), so a
        subagent can report progress on its own item while the parent keeps planning.

        Returns:
            The middleware (name ``"RedisTodoSubagentMiddleware"``).
        """
        return RedisTodoSubagentMiddleware(repository=self.repository, scope=self._scoped._scope)

    # -- pulling ------------------------------------------------------------------------

    @staticmethod
    def _view_key(scope: str, config: RunnableConfig) -> tuple[str, Any]:
        return scope, (config.get("configurable") or {}).get("thread_id")

    def _saw(self, scope: str, config: RunnableConfig, plan: TodoList) -> None:
        """Remember that this run's state now reflects ``plan`` (just written)."""
        if self.todos_settings.reuse_view_seconds <= 0:
            return
        if len(self._views) >= 4096:  # runs that ended before their next model call
            self._views.clear()
        self._views[self._view_key(scope, config)] = (plan.version, plan.ids, time.monotonic())

    def _fresh_view(self, state: Any, scope: str, config: RunnableConfig) -> bool:
        """Whether this run wrote the state's plan since its last model call.

        True only within ``reuse_view_seconds`` of that write. The memo is consumed:
        the model call after the next one reads again.
        """
        seen = self._views.pop(self._view_key(scope, config), None)
        if seen is None:
            return False
        version, ids, at = seen
        return (
            time.monotonic() - at < self.todos_settings.reuse_view_seconds
            and state.get("todos_version") == version
            and (state.get("todo_ids") or []) == ids
        )

    def _pull(self, state: Any, plan: TodoList, *, starting: bool) -> dict[str, Any] | None:
        known = state.get("todos_version")
        if known == plan.version and len(state.get("todo_ids") or []) == len(plan.items):
            return None
        update = _state_update(plan)
        before = view_from_state(state)
        after = view_from_plan(plan)
        if known is None:
            # A fresh thread on an empty plan, or a thread whose todos already match (it was
            # backfilled): nothing the model does not know.
            if not plan.items or (state.get("todos") or []) == plan.as_langchain():
                return update
            text = (
                f"[shared todo plan] This run continues the shared plan "
                f"{plan.scope!r} (version {plan.version}):\n{format_plan(after)}\n"
                "Keep it current with write_todos."
            )
        else:
            changes = describe_changes(before, after)
            if not changes:
                return update
            verb = "before this run resumed" if starting else "outside this run"
            text = (
                f"[shared todo plan] The plan changed {verb} "
                f"(version {known} -> {plan.version}):\n"
                + "\n".join(changes)
                + f"\nCurrent plan:\n{format_plan(after)}\n"
                "Work from the current plan; write_todos replaces it as a whole."
            )
        # The write's server time in the id too: versions repeat after Redis lost a plan and
        # the thread restored it, and a note whose id repeats an earlier one's replaces that
        # one in place (add_messages) instead of being added.
        written = "" if plan.updated_at is None else f"-{plan.updated_at.timestamp():.3f}"
        msg_id = f"{SYNC_MESSAGE_PREFIX}{plan.scope}-{plan.version}-{known}{written}"
        update["messages"] = [HumanMessage(content=text, id=msg_id)]
        return update

    def _seed_payload(self, state: Any, plan: TodoList) -> list[dict[str, str]] | None:
        """What to write to Redis instead of pulling, or None to pull.

        * The thread has todos, Redis has no plan, and the thread never saw a version: it
          ran under langchain's ``TodoListMiddleware`` (or before the plan was in Redis).
          Seed Redis from it rather than wiping the thread's plan.
        * The thread saw version N > 0 and Redis has no plan at all: Redis lost it
          (eviction, a failover without AOF, a flush). Restore it from the thread, keeping
          its ids, and say so in the log, rather than telling the model every item was
          removed and writing that loss into the checkpoint.
        """
        known = state.get("todos_version")
        if known is not None and plan.version < known:
            log.warning(
                "todo plan %r went back from version %s to %s: writes were lost%s",
                plan.scope,
                known,
                plan.version,
                "; restoring it from the thread's state" if plan.version == 0 else "",
            )
            get_instrumentation().count("todos.plan.regressed", restored=plan.version == 0)
        if plan.version != 0 or not state.get("todos"):
            return None
        if known is not None and known == 0:
            return None
        base = view_from_state(state)
        return [
            (item if item.id else Item(new_item_id(), item.content, item.status)).as_payload()
            for item in base
        ]

    def _load(self, state: Any, *, starting: bool) -> dict[str, Any] | None:
        config = get_config()
        scope = self.scope_for(config)
        # A run's first call always reads (a memo left by an earlier run is dropped).
        if self._fresh_view(state, scope, config) and not starting:
            return None
        plan = self.repository.get(scope)
        seed = self._seed_payload(state, plan)
        if seed is not None:
            try:
                seeded = self.repository.replace(
                    scope, seed, expected_version=0, actor=self._scoped.actor(config, "agent")
                )
                return _state_update(seeded)
            except (InvalidInputError, PayloadTooLargeError) as exc:
                _unseeded(scope, exc)
                return None
            except ConflictError:
                plan = self.repository.get(scope)
        return self._pull(state, plan, starting=starting)

    async def _aload(self, state: Any, *, starting: bool) -> dict[str, Any] | None:
        config = get_config()
        scope = self.scope_for(config)
        # A run's first call always reads (a memo left by an earlier run is dropped).
        if self._fresh_view(state, scope, config) and not starting:
            return None
        plan = await self.repository.aget(scope)
        seed = self._seed_payload(state, plan)
        if seed is not None:
            try:
                seeded = await self.repository.areplace(
                    scope, seed, expected_version=0, actor=self._scoped.actor(config, "agent")
                )
                return _state_update(seeded)
            except (InvalidInputError, PayloadTooLargeError) as exc:
                _unseeded(scope, exc)
                return None
            except ConflictError:
                plan = await self.repository.aget(scope)
        return self._pull(state, plan, starting=starting)

    # AgentMiddleware's hook may return an ExtendedModelResponse; TodoListMiddleware's
    # annotation narrows that away, hence the ignores.
    def wrap_model_call(  # type: ignore[override]
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelCallResult[Any]:
        """Load or pull the plan into this model call; add langchain's prompt.

        The run's first model call loads the plan (a run resumed on another worker picks
        it up; a thread that ran without Redis seeds it); later ones pull changes made
        outside the run. Inside the model call rather than ``before_agent`` and
        ``before_model`` hooks: a hook is a graph node of its own, so a checkpointed step
        (measured for ``before_model``: 17% of a scripted all-phases deep agent run). When
        the plan moved, the note telling the model what changed is appended to this call's
        messages and stored in the thread just before the model's answer, where a hook
        would have put it, and the plan fields are updated with it.

        Args:
            request: The model request (its ``state`` is the agent state).
            handler: The rest of the model call.

        Returns:
            The model's response, with the pulled plan as a state update when it moved.
        """
        update = self._load(request.state, starting=_run_starts(request.state))
        if update is None:
            return super().wrap_model_call(request, handler)
        note = update.pop("messages", [])
        if note:
            request = request.override(messages=[*request.messages, *note])
        return _with_pull(super().wrap_model_call(request, handler), note, update)

    async def awrap_model_call(  # type: ignore[override]
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelCallResult[Any]:
        """Async `wrap_model_call`.

        Args:
            request: The model request.
            handler: The rest of the model call.

        Returns:
            The model's response, with the pulled plan as a state update when it moved.
        """
        update = await self._aload(request.state, starting=_run_starts(request.state))
        if update is None:
            return await super().awrap_model_call(request, handler)
        note = update.pop("messages", [])
        if note:
            request = request.override(messages=[*request.messages, *note])
        return _with_pull(await super().awrap_model_call(request, handler), note, update)

    # -- writing ------------------------------------------------------------------------

    def _written(
        self,
        plan: TodoList,
        todos: Sequence[Any],
        call_id: str,
        *,
        merged_over: tuple[Sequence[Item], TodoList] | None = None,
    ) -> Command[Any]:
        if merged_over is None:
            text = f"Updated todo list to {list(todos)}"
        else:
            base, latest = merged_over
            changes = describe_changes(base, view_from_plan(latest))
            text = (
                f"Updated todo list to {plan.as_langchain()}\n\n"
                f"Note: the plan had changed outside this run since you last saw it "
                f"(now version {latest.version}); your edits were merged with:\n"
                + "\n".join(changes or ["- (no visible change)"])
            )
        return Command(
            update={
                **_state_update(plan),
                "messages": [ToolMessage(text, tool_call_id=call_id)],
            }
        )

    @staticmethod
    def _rejected(base: Sequence[Item], latest: TodoList, call_id: str) -> Command[Any]:
        changes = describe_changes(base, view_from_plan(latest))
        text = (
            "Error: the todo list changed outside this run since you last saw it "
            f"(now version {latest.version}); your update was NOT applied.\n"
            + "\n".join(changes or ["- (no visible change)"])
            + f"\nCurrent plan:\n{format_plan(view_from_plan(latest))}\n"
            "Call write_todos again with the full list based on the current plan."
        )
        return Command(
            update={
                **_state_update(latest),
                "messages": [ToolMessage(text, tool_call_id=call_id, status="error")],
            }
        )

    @staticmethod
    def _invalid(exc: InvalidInputError | PayloadTooLargeError, call_id: str) -> Command[Any]:
        return Command(
            update={
                "messages": [
                    ToolMessage(
                        f"Error: {exc}. The todo list was not changed.",
                        tool_call_id=call_id,
                        status="error",
                    )
                ]
            }
        )

    def write(self, runtime: ToolRuntime[Any, Any], todos: list[Any]) -> Command[Any]:
        """The sync ``write_todos`` tool body (a versioned replace).

        Args:
            runtime: The tool runtime (state, config, tool call id).
            todos: What the model wrote.

        Returns:
            The state update and the tool message.
        """
        return drive_operation(
            self._write_flow(runtime, todos), repo_step(self.repository, _EXPECTED)
        )

    async def awrite(self, runtime: ToolRuntime[Any, Any], todos: list[Any]) -> Command[Any]:
        """Async twin of :meth:`write` (the same flow on the repository's async methods)."""
        return await adrive_operation(
            self._write_flow(runtime, todos), arepo_step(self.repository, _EXPECTED)
        )

    def _write_flow(
        self, runtime: ToolRuntime[Any, Any], todos: list[Any]
    ) -> Generator[RepoCall, Any, Command[Any]]:
        """``write_todos``, written once for `write` and `awrite`.

        It yields repository calls (``replace``/``get``) that `write` runs on the sync
        methods and `awrite` on the async ones (core's `drive`/`adrive`); the errors a call
        raises that the flow handles (conflicts, bad input) come back as its reply.
        """
        config = runtime.config
        scope = self.scope_for(config)
        actor = self._scoped.actor(config, "agent")
        call_id = runtime.tool_call_id or "no-call-id"
        # The op id's call part: the tool call id alone repeats (providers number calls per
        # turn), so a later write could replay an old op record (issue 8 defect 4).
        op_call = f"{call_id}@{_task_scope(config)}"
        state = runtime.state
        base = view_from_state(state)
        base_version = state.get("todos_version")
        desired = assign_ids(base, todos)
        plan = yield (
            "replace",
            (scope, [i.as_payload() for i in desired]),
            {
                "expected_version": base_version,
                "op_id": _op_id("write_todos", op_call, base_version, todos),
                "actor": actor,
            },
        )
        if isinstance(plan, InvalidInputError | PayloadTooLargeError):
            return self._invalid(plan, call_id)
        if not isinstance(plan, ConflictError):
            self._saw(scope, config, plan)
            return self._written(plan, todos, call_id)
        if self.conflict_policy == "reject":
            return self._rejected(base, (yield ("get", (scope,), {})), call_id)
        # One op id for every merge of this call, named by the version it was based on, not
        # the one it merges over: a re-run of the call (a crash after Redis applied the merge,
        # before the checkpoint) then replays it instead of merging again over a plan that
        # already holds it (the items it added have fresh ids each run: they came back twice).
        # Only an applied merge is recorded (a conflict is an error reply), so the attempts
        # of one run can share it.
        merge_op = _op_id("write_todos:merge", op_call, base_version, todos)
        for _ in range(self.max_merge_attempts):
            latest = yield ("get", (scope,), {})
            merged = merge(base, desired, view_from_plan(latest))
            plan = yield (
                "replace",
                (scope, [i.as_payload() for i in merged]),
                {"expected_version": latest.version, "op_id": merge_op, "actor": actor},
            )
            if isinstance(plan, ConflictError):
                continue
            if isinstance(plan, InvalidInputError | PayloadTooLargeError):
                return self._invalid(plan, call_id)
            self._saw(scope, config, plan)
            return self._written(plan, todos, call_id, merged_over=(base, latest))
        # The plan kept moving under every merge: hand the model the latest plan instead.
        log.warning("write_todos on %r: the plan kept changing; gave up merging", scope)
        return self._rejected(base, (yield ("get", (scope,), {})), call_id)


def _write_todos_tool(mw: RedisTodoMiddleware, description: str) -> BaseTool:
    # Same name, description and args schema as langchain's tool, so the model sees
    # exactly what it would see with TodoListMiddleware.
    def write_todos(runtime: ToolRuntime[Any, Any], todos: list[LangchainTodo]) -> Command[Any]:
        return mw.write(runtime, list(todos))

    async def awrite_todos(
        runtime: ToolRuntime[Any, Any], todos: list[LangchainTodo]
    ) -> Command[Any]:
        return await mw.awrite(runtime, list(todos))

    return StructuredTool.from_function(
        name="write_todos",
        description=description,
        func=write_todos,
        coroutine=awrite_todos,
        args_schema=WriteTodosInput,
        infer_schema=False,
    )


# -- subagents --------------------------------------------------------------------------
