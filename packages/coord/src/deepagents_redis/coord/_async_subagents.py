"""`RedisAsyncSubAgentMiddleware`: deepagents' async subagent tools, run on our workers.

deepagents' `AsyncSubAgentMiddleware` starts background subagents on a LangGraph Agent
Server. This middleware gives the model the same five tools (`start_async_task`,
`check_async_task`, `update_async_task`, `cancel_async_task`, `list_async_tasks`), with the
same names, argument schemas, descriptions, ``async_tasks`` state and statuses, and the same
task notifications before the next model call, but each task is a `TaskClient` task that our
`Worker` processes run: no Agent Server, Redis Cluster welcome.

Formatting (tool descriptions, check output, list output, update confirmations,
notifications) and the fork snapshot reuse deepagents' own helpers, so the model and the
subagent read exactly what they would read with upstream; deepagents is pinned to 0.7.x, and
``tests/test_async_subagents.py`` fails if a helper moves.

As upstream, each subagent has an ``update_strategy`` (default ``interrupt``: the follow-up
stops the current run and starts at once with the conversation so far plus the message;
``enqueue``: it waits for the current run) and a ``mode`` (default ``isolated``: the subagent
gets the task description; ``fork``: a snapshot of the parent's conversation, then the task).
A follow-up to a finished task starts a new run with its conversation plus the message,
tracked under the same task id (`run_id` changes, as upstream).

After a final answer the tasks are looked at once more, and a task that ended meanwhile gives
the model another turn with its notification (upstream's ``aafter_model``).

Difference: notifications come on both paths, `before_model`/`after_model` (sync `invoke`)
and `abefore_model`/`aafter_model` (upstream: async only); there is no ``waiting`` status (a
worker's run does not pause for a human).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict

from deepagents.middleware.async_subagents import (
    _UNFINISHED_STATUSES,
    AsyncSubAgentState,
    AsyncTask,
    CancelAsyncTaskSchema,
    CheckAsyncTaskSchema,
    ListAsyncTasksSchema,
    StartAsyncTaskSchema,
    UpdateAsyncTaskSchema,
    _astart_task_messages,
    _build_async_subagent_tools,
    _build_check_command,
    _build_check_result,
    _build_list_command,
    _describe_async_subagent,
    _event,
    _filter_tasks,
    _notification_message,
    _observed,
    _parallel_update_error,
    _resolve_tracked_task,
    _start_task_messages,
    _update_message,
    _validate_agent_type,
)
from deepagents_redis.coord._client import TaskClient
from deepagents_redis.coord._common import TaskInfo
from deepagents_redis.core import (
    DeepAgentsRedisError,
    InvalidInputError,
    adrive_operation,
    drive_operation,
)
from langchain.agents.middleware import AgentMiddleware, hook_config
from langchain.tools import ToolRuntime
from langchain_core.messages import ToolMessage
from langchain_core.tools import StructuredTool
from langgraph.types import Command

__all__ = ["RedisAsyncSubAgent", "RedisAsyncSubAgentMiddleware"]


@dataclass(frozen=True, slots=True)
class _Ask:
    """One `TaskClient` call a tool flow needs: the sync method's name and its arguments."""

    method: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)


_Flow = Generator[_Ask, Any, Any]

log = logging.getLogger("deepagents_redis.coord")


class RedisAsyncSubAgent(TypedDict):
    """One async subagent a `Worker` serves."""

    name: str
    """The name the model passes as `subagent_type`."""
    description: str
    """What it does (the model reads it to decide when to delegate)."""
    agent: NotRequired[str]
    """The worker-side agent name (default: `name`)."""
    update_strategy: NotRequired[Literal["interrupt", "enqueue"]]
    """How `update_async_task` reaches a running task (deepagents' field; default
    ``interrupt``): ``interrupt`` stops the current run (within about a worker heartbeat)
    and starts the follow-up with the conversation so far; ``enqueue`` runs it after."""
    mode: NotRequired[Literal["isolated", "fork"]]
    """deepagents' field: ``isolated`` (default) sends the task description only; ``fork``
    sends a snapshot of the parent's conversation at launch, then the task."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_result(task: AsyncTask, info: TaskInfo) -> dict[str, Any]:
    """The `check_async_task` result dict for our task record, built by deepagents itself.

    Our record is handed to deepagents' builder as the LangGraph run (status, error) and
    thread (the result as its values) it stands for, so the model reads upstream's dict to
    the byte: its notes, and its keys per status (no ``error`` on a ``timeout``).
    """
    run: dict[str, Any] = {"run_id": task["run_id"], "status": info.status, "error": info.error}
    thread = None
    if info.status == "success":
        values = (
            info.result if isinstance(info.result, Mapping) else {"messages": [str(info.result)]}
        )
        thread = {"status": "idle", "values": values}
    return _build_check_result(run, task["thread_id"], thread)  # type: ignore[arg-type]


def _notification(task: AsyncTask, info: TaskInfo) -> dict[str, Any] | None:
    if info.status not in ("success", "error", "timeout", "cancelled"):
        return None
    details: dict[str, object] = {}
    if info.status == "success":
        details["result"] = _check_result(task, info)["result"]
    if info.status == "error":
        details["error"] = "The subagent failed."
    update = _event(task["task_id"], task["agent_name"], info.status, task["run_id"], **details)
    return _notification_message(update)


class RedisAsyncSubAgentMiddleware(AgentMiddleware):  # type: ignore[type-arg]
    """deepagents' async subagent tools, with the work on `Worker` processes.

    Args:
        subagents: The async subagents (`name`, `description`, optional worker `agent`).
        system_prompt: Appended to the system prompt, followed by the list of subagents
            (None: nothing appended; the tool description lists them too).
        client: A ready `TaskClient` (its connection and namespace are used).
        **kwargs: Otherwise, connection (`connector=` or `url=`...) and `CoordSettings`
            options for the `TaskClient` built here.

    Raises:
        ValueError: No subagents, or two with one name.
    """

    state_schema = AsyncSubAgentState
    name = "RedisAsyncSubAgentMiddleware"

    def __init__(
        self,
        *,
        subagents: Sequence[RedisAsyncSubAgent],
        system_prompt: str | None = None,
        client: TaskClient | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if not subagents:
            raise ValueError("At least one async subagent must be specified")
        names = [s["name"] for s in subagents]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"Duplicate async subagent names: {dupes}")
        for spec in subagents:  # deepagents' checks and messages
            strategy = spec.get("update_strategy", "interrupt")
            if strategy not in ("interrupt", "enqueue"):
                raise ValueError(
                    f"AsyncSubAgent '{spec['name']}' has invalid update_strategy "
                    f"'{strategy}'; expected 'interrupt' or 'enqueue'"
                )
            mode = spec.get("mode", "isolated")
            if mode not in ("isolated", "fork"):
                raise ValueError(
                    f"AsyncSubAgent '{spec['name']}' has invalid mode '{mode}'; "
                    "expected 'isolated' or 'fork'"
                )
        if any(spec.get("mode") == "fork" for spec in subagents):
            from langchain_core._api.beta_decorator import warn_beta

            warn_beta(name="forked subagents", obj_type="feature")
        self._specs: dict[str, RedisAsyncSubAgent] = {s["name"]: s for s in subagents}
        # deepagents' validator reads only the names
        self._agent_map: dict[str, Any] = dict(self._specs)
        self._owns_client = client is None
        self.tasks: TaskClient = client or TaskClient(check_agents=False, **kwargs)
        """The client the tools submit through."""
        listing = "\n".join(_describe_async_subagent(_upstream_spec(s)) for s in subagents)
        self.system_prompt = (
            None
            if not system_prompt
            else f"{system_prompt}\n\nAvailable async subagent types:\n\n{listing}"
        )
        self.tools = self._build_tools(_upstream_descriptions(subagents))

    def close(self) -> None:
        """Close the client this middleware built (a client you passed stays open)."""
        if self._owns_client:
            self.tasks.close()

    async def aclose(self) -> None:
        """Async twin of `close`."""
        if self._owns_client:
            await self.tasks.aclose()

    def _worker_agent(self, name: str) -> str:
        return self._specs[name].get("agent") or name

    @staticmethod
    def _tracked(task_id: str, agent_name: str, run_id: str) -> AsyncTask:
        now = _now()
        return {
            "task_id": task_id,
            "agent_name": agent_name,
            "thread_id": task_id,
            "run_id": run_id,
            "status": "running",
            "created_at": now,
            "last_checked_at": now,
            "last_updated_at": now,
        }

    @staticmethod
    def _launched(task: AsyncTask, tool_call_id: str | None) -> Command[Any]:
        msg = f"Launched async subagent. task_id: {task['task_id']}"
        return Command(
            update={
                "messages": [ToolMessage(msg, tool_call_id=tool_call_id)],
                "async_tasks": {task["task_id"]: task},
            }
        )

    @staticmethod
    def _cancelled(task: AsyncTask, tool_call_id: str | None) -> Command[Any]:
        now = _now()
        updated: AsyncTask = {
            **task,
            "status": "cancelled",
            "last_checked_at": now,
            "last_updated_at": now,
        }
        return Command(
            update={
                "messages": [
                    ToolMessage(
                        f"Cancelled async subagent task: {task['task_id']}",
                        tool_call_id=tool_call_id,
                    )
                ],
                "async_tasks": {task["task_id"]: updated},
            }
        )

    @staticmethod
    def _updated(
        task: AsyncTask, run_id: str, strategy: str, tool_call_id: str | None
    ) -> Command[Any]:
        updated: AsyncTask = {
            **task,
            "run_id": run_id,
            "status": "running",
            "last_updated_at": _now(),
        }
        return Command(
            update={
                "messages": [
                    ToolMessage(_update_message(task, strategy), tool_call_id=tool_call_id)  # type: ignore[arg-type]
                ],
                "async_tasks": {task["task_id"]: updated},
            }
        )

    @staticmethod
    def _conversation(value: Any) -> list[Any]:
        return list(value.get("messages") or []) if isinstance(value, Mapping) else []

    # ------------------------------------------------------------------ tools
    # Each tool is written once, as a flow that yields `_Ask` requests (a `TaskClient`
    # method and its arguments); `_run` drives it with the sync methods, `_arun` with the
    # async ones (core's generic driver), so the sync and async tools cannot drift apart.

    def _run(self, flow: _Flow) -> Any:
        def step(ask: _Ask) -> Any:
            try:
                return getattr(self.tasks, ask.method)(*ask.args, **ask.kwargs)
            except DeepAgentsRedisError as exc:  # handed to the flow, which decides
                return exc

        return drive_operation(flow, step)

    async def _arun(self, flow: _Flow) -> Any:
        async def step(ask: _Ask) -> Any:
            try:
                return await getattr(self.tasks, f"a{ask.method}")(*ask.args, **ask.kwargs)
            except DeepAgentsRedisError as exc:
                return exc

        return await adrive_operation(flow, step)

    def _start(self, subagent_type: str, messages: list[Any], runtime: ToolRuntime) -> _Flow:
        task_id = yield _Ask("submit", (self._worker_agent(subagent_type), {"messages": messages}))
        if isinstance(task_id, DeepAgentsRedisError):
            log.warning("Failed to launch async subagent '%s': %s", subagent_type, task_id)
            return f"Failed to launch async subagent '{subagent_type}': {task_id}"
        return self._launched(self._tracked(task_id, subagent_type, task_id), runtime.tool_call_id)

    def _check(self, task_id: str, runtime: ToolRuntime) -> _Flow:
        task = _resolve_tracked_task(task_id, runtime)
        if isinstance(task, str):
            return task
        info = yield _Ask("get", (task["run_id"],))
        if isinstance(info, DeepAgentsRedisError):
            return f"Failed to get run status: {info}"
        return _build_check_command(
            _check_result(task, info), task, task["run_id"], runtime.tool_call_id
        )

    def _update(self, task_id: str, message: str, runtime: ToolRuntime) -> _Flow:
        task = _resolve_tracked_task(task_id, runtime)
        if isinstance(task, str):
            return task
        strategy = self._specs[task["agent_name"]].get("update_strategy", "interrupt")
        if strategy == "enqueue" and (error := _parallel_update_error(task["task_id"], runtime)):
            return error
        sent = yield _Ask(
            "send", (task["run_id"], {"role": "user", "content": message}), {"strategy": strategy}
        )
        if not isinstance(sent, DeepAgentsRedisError):
            return self._updated(task, task["run_id"], strategy, runtime.tool_call_id)
        failure: DeepAgentsRedisError = sent
        if isinstance(sent, InvalidInputError):  # it ended: a new run with its conversation
            info = yield _Ask("get", (task["run_id"],))
            if not isinstance(info, DeepAgentsRedisError):
                earlier = self._conversation(info.result)
                if not earlier:
                    # It ended without a conversation (error, timeout, cancelled): upstream's
                    # next run on the thread still sees the task it was given; ours gets the
                    # task's input, or the follow-up would arrive without its task.
                    given = yield _Ask("task_input", (task["run_id"],))
                    if isinstance(given, DeepAgentsRedisError):
                        log.warning("Input of task %s not read: %s", task["run_id"], given)
                    else:
                        earlier = self._conversation(given)
                follow_up = {"messages": [*earlier, {"role": "user", "content": message}]}
                run_id = yield _Ask("submit", (self._worker_agent(task["agent_name"]), follow_up))
                if not isinstance(run_id, DeepAgentsRedisError):
                    # it had ended: a new run, confirmed as upstream confirms one
                    ended: AsyncTask = {**task, "status": info.status}
                    return self._updated(ended, run_id, strategy, runtime.tool_call_id)
                failure = run_id
            else:
                failure = info
        log.warning("Failed to update async subagent '%s': %s", task["agent_name"], failure)
        return f"Failed to update async subagent: {failure}"

    def _cancel(self, task_id: str, runtime: ToolRuntime) -> _Flow:
        task = _resolve_tracked_task(task_id, runtime)
        if isinstance(task, str):
            return task
        reply = yield _Ask("cancel", (task["run_id"],))
        if isinstance(reply, DeepAgentsRedisError):
            return f"Failed to cancel run: {reply}"
        return self._cancelled(task, runtime.tool_call_id)

    def _list(self, runtime: ToolRuntime, status_filter: str | None) -> _Flow:
        filtered = _filter_tasks(runtime.state.get("async_tasks") or {}, status_filter)
        if not filtered:
            return "No async subagent tasks tracked."
        live = []
        for task in filtered:
            if task["status"] not in _UNFINISHED_STATUSES:
                live.append((task["status"], task["run_id"]))
                continue
            info = yield _Ask("get", (task["run_id"],))
            if isinstance(info, DeepAgentsRedisError):
                log.warning("Failed to fetch live status for task %s: %s", task["task_id"], info)
                live.append((task["status"], task["run_id"]))
            else:
                live.append((info.status, task["run_id"]))
        return _build_list_command(filtered, live, runtime.tool_call_id)

    def _build_tools(self, upstream: Mapping[str, str]) -> list[StructuredTool]:
        mw = self

        # deepagents injects `runtime` by the parameter's annotation: each tool keeps the
        # upstream signature and hands its flow to the sync or the async driver.
        def start_async_task(
            description: str, subagent_type: str, runtime: ToolRuntime
        ) -> str | Command[Any]:
            error = _validate_agent_type(mw._agent_map, subagent_type)
            if error:
                return error
            spec = _upstream_spec(mw._specs[subagent_type])
            messages = _start_task_messages(spec, runtime, description)  # fork: the snapshot
            return mw._run(mw._start(subagent_type, messages, runtime))  # type: ignore[no-any-return]

        async def astart_async_task(
            description: str, subagent_type: str, runtime: ToolRuntime
        ) -> str | Command[Any]:
            error = _validate_agent_type(mw._agent_map, subagent_type)
            if error:
                return error
            spec = _upstream_spec(mw._specs[subagent_type])
            messages = await _astart_task_messages(spec, runtime, description)
            return await mw._arun(mw._start(subagent_type, messages, runtime))  # type: ignore[no-any-return]

        def check_async_task(task_id: str, runtime: ToolRuntime) -> str | Command[Any]:
            return mw._run(mw._check(task_id, runtime))  # type: ignore[no-any-return]

        async def acheck_async_task(task_id: str, runtime: ToolRuntime) -> str | Command[Any]:
            return await mw._arun(mw._check(task_id, runtime))  # type: ignore[no-any-return]

        def update_async_task(
            task_id: str, message: str, runtime: ToolRuntime
        ) -> str | Command[Any]:
            return mw._run(mw._update(task_id, message, runtime))  # type: ignore[no-any-return]

        async def aupdate_async_task(
            task_id: str, message: str, runtime: ToolRuntime
        ) -> str | Command[Any]:
            return await mw._arun(mw._update(task_id, message, runtime))  # type: ignore[no-any-return]

        def cancel_async_task(task_id: str, runtime: ToolRuntime) -> str | Command[Any]:
            return mw._run(mw._cancel(task_id, runtime))  # type: ignore[no-any-return]

        async def acancel_async_task(task_id: str, runtime: ToolRuntime) -> str | Command[Any]:
            return await mw._arun(mw._cancel(task_id, runtime))  # type: ignore[no-any-return]

        def list_async_tasks(
            runtime: ToolRuntime, status_filter: str | None = None
        ) -> str | Command[Any]:
            return mw._run(mw._list(runtime, status_filter))  # type: ignore[no-any-return]

        async def alist_async_tasks(
            runtime: ToolRuntime, status_filter: str | None = None
        ) -> str | Command[Any]:
            return await mw._arun(mw._list(runtime, status_filter))  # type: ignore[no-any-return]

        tools = (
            ("start_async_task", start_async_task, astart_async_task,
             upstream["start_async_task"], StartAsyncTaskSchema),
            ("check_async_task", check_async_task, acheck_async_task,
             upstream["check_async_task"], CheckAsyncTaskSchema),
            ("update_async_task", update_async_task, aupdate_async_task,
             upstream["update_async_task"], UpdateAsyncTaskSchema),
            ("cancel_async_task", cancel_async_task, acancel_async_task,
             upstream["cancel_async_task"], CancelAsyncTaskSchema),
            ("list_async_tasks", list_async_tasks, alist_async_tasks,
             upstream["list_async_tasks"], ListAsyncTasksSchema),
        )  # fmt: skip
        return [
            StructuredTool.from_function(
                name=name,
                func=func,
                coroutine=coroutine,
                description=description,
                infer_schema=False,
                args_schema=schema,
            )
            for name, func, coroutine, description, schema in tools
        ]

    # ------------------------------------------------------------------ notifications

    def _notify(self, state: Any) -> _Flow:
        """Status updates for the unfinished tracked tasks, a notification for each that ended.

        The notification is deepagents' message, word for word.
        """
        tasks: Mapping[str, AsyncTask] = state.get("async_tasks") or {}
        records: dict[str, AsyncTask] = {}
        messages: list[dict[str, Any]] = []
        for task in [t for t in tasks.values() if t["status"] in _UNFINISHED_STATUSES]:
            info = yield _Ask("get", (task["run_id"],))
            if isinstance(info, DeepAgentsRedisError):  # looked at again before the next call
                log.warning("Failed to check task %s: %s", task["task_id"], info)
                continue
            if info.status == task["status"]:
                continue
            records[task["task_id"]] = _observed(task, info.status, task["run_id"])
            note = _notification(task, info)
            if note is not None:
                messages.append(note)
        update: dict[str, Any] = {"async_tasks": records} if records else {}
        if messages:
            update["messages"] = messages
        return update or None

    def before_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Tell the model about tasks that finished since its last call."""
        return self._run(self._notify(state))  # type: ignore[no-any-return]

    async def abefore_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Async twin of `before_model`."""
        return await self._arun(self._notify(state))  # type: ignore[no-any-return]

    def _after_answer(self, state: Any) -> _Flow:
        """After a final answer, look at the tasks once more; news gives the model a turn.

        deepagents' ``aafter_model``: an answer given while a task ran would otherwise end
        the run without the outcome that came in meanwhile. Each extra turn needs a new
        notification, so the tasks themselves bound how many there are.
        """
        messages = state.get("messages") or []
        if not messages or getattr(messages[-1], "tool_calls", None):
            return None
        update = yield from self._notify(state)
        if not update or not update.get("messages"):
            return update
        return {**update, "jump_to": "model"}

    @hook_config(can_jump_to=["model"])
    def after_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Give the model another turn when a task ended while it gave its final answer."""
        return self._run(self._after_answer(state))  # type: ignore[no-any-return]

    @hook_config(can_jump_to=["model"])
    async def aafter_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Async twin of `after_model`."""
        return await self._arun(self._after_answer(state))  # type: ignore[no-any-return]

    def wrap_model_call(self, request: Any, handler: Any) -> Any:
        """Append the system prompt addition, if any."""
        if self.system_prompt is not None:
            return handler(
                request.override(
                    system_message=_with_prompt(request.system_message, self.system_prompt)
                )
            )
        return handler(request)

    async def awrap_model_call(self, request: Any, handler: Any) -> Any:
        """Async twin of `wrap_model_call`."""
        if self.system_prompt is not None:
            return await handler(
                request.override(
                    system_message=_with_prompt(request.system_message, self.system_prompt)
                )
            )
        return await handler(request)


def _with_prompt(system_message: Any, addition: str) -> Any:
    from deepagents.middleware._utils import append_to_system_message

    return append_to_system_message(system_message, addition)


def _upstream_spec(spec: RedisAsyncSubAgent) -> Any:
    """Our spec as deepagents' `AsyncSubAgent`, for its helpers (no server is contacted)."""
    out: dict[str, Any] = {
        "name": spec["name"],
        "description": spec["description"],
        "graph_id": spec.get("agent") or spec["name"],
        "url": "http://unused.invalid",
    }
    for key in ("update_strategy", "mode"):
        if key in spec:
            out[key] = spec[key]
    return out


def _upstream_descriptions(subagents: Sequence[RedisAsyncSubAgent]) -> dict[str, str]:
    """Deepagents' five tool descriptions for these subagents, word for word.

    Built by deepagents itself from the same specs, so the launch listing (with the fork
    note) and the update text (with the exception for ``enqueue`` subagents) are theirs.
    """
    tools = _build_async_subagent_tools([_upstream_spec(s) for s in subagents])
    return {t.name: t.description for t in tools}
