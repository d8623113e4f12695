"""`SubagentEventsMiddleware`: lifecycle events for every subagent run of a deep agent.

deepagents runs a subagent through its `task` tool (in process, or on our workers with
`remote_subagent`). This middleware wraps that tool call and appends
``subagent.started`` / ``subagent.progress`` / ``subagent.completed`` / ``subagent.failed``
events to the namespace's event log, which `deepagents-redis events tail` (or
`EventBus.tail`) follows live from another process.

Progress (one event per model call and per tool call the subagent makes) comes from a LangChain
callback handler that is active only while the `task` call runs: it is installed through
langchain-core's configure hook (a context variable, as `get_usage_metadata_callback` does), so
every run started inside the call, the subagent's graph included, reports to it, and runs of
other calls (parallel `task` calls run in their own contexts) do not.

Failure policy (stated, not silent): the events are for watching, not for the run's
correctness, so a publish that fails (Redis down) is logged and counted
(``coord.lifecycle_failed``) and never fails or delays the subagent run beyond the write's
deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from deepagents_redis.coord._common import CoordComponent
from deepagents_redis.coord._event import EVENT_FIELD, TYPE_PREFIX, Event
from deepagents_redis.core import (
    Command,
    DeepAgentsRedisError,
    Operation,
    arun_operation,
    get_instrumentation,
    run_operation,
    trace_carrier,
)
from langchain.agents.middleware import AgentMiddleware
from langchain.agents.middleware.types import ToolCallRequest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import ToolMessage
from langchain_core.tracers.context import register_configure_hook
from langgraph.types import Command as GraphCommand

__all__ = ["SubagentEventsMiddleware"]

log = logging.getLogger("deepagents_redis.coord")

_Result = ToolMessage | GraphCommand[Any]

# The progress handler of the `task` call running in this context (None outside one). Every
# callback manager configured while it is set includes the handler (inheritable: child runs
# too), which is how the subagent's own model and tool calls reach it.
_progress: ContextVar[BaseCallbackHandler | None] = ContextVar(
    "deepagents_redis_subagent_progress", default=None
)
register_configure_hook(_progress, inheritable=True)


def _run_name(serialized: dict[str, Any] | None, kwargs: dict[str, Any], default: str) -> str:
    return str((serialized or {}).get("name") or kwargs.get("name") or default)


class _OuterCall:
    """Skips the one callback of the `task` tool itself (it starts first, inside our context)."""

    def __init__(self, tools: frozenset[str]) -> None:
        self._tools = tools
        self._seen = False

    def is_outer(self, name: str) -> bool:
        if not self._seen and name in self._tools:
            self._seen = True
            return True
        return False


class _SyncProgress(BaseCallbackHandler):
    """Model and tool calls of a sync subagent run -> ``subagent.progress`` events."""

    def __init__(self, middleware: SubagentEventsMiddleware, request: ToolCallRequest) -> None:
        self._mw, self._request = middleware, request
        self._outer = _OuterCall(middleware._tools)

    def on_tool_start(  # type: ignore[override]
        self, serialized: dict[str, Any] | None, input_str: str, **kwargs: Any
    ) -> None:
        name = _run_name(serialized, kwargs, "tool")
        if not self._outer.is_outer(name):
            self._mw._publish(self._mw._event("progress", self._request, step="tool", name=name))

    def on_chat_model_start(  # type: ignore[override]
        self, serialized: dict[str, Any] | None, messages: Any, **kwargs: Any
    ) -> None:
        name = _run_name(serialized, kwargs, "model")
        self._mw._publish(self._mw._event("progress", self._request, step="model", name=name))


class _AsyncProgress(AsyncCallbackHandler):
    """Async twin of `_SyncProgress` (publishes on the event loop, never blocking it)."""

    def __init__(self, middleware: SubagentEventsMiddleware, request: ToolCallRequest) -> None:
        self._mw, self._request = middleware, request
        self._outer = _OuterCall(middleware._tools)

    async def on_tool_start(  # type: ignore[override]
        self, serialized: dict[str, Any] | None, input_str: str, **kwargs: Any
    ) -> None:
        name = _run_name(serialized, kwargs, "tool")
        if not self._outer.is_outer(name):
            event = self._mw._event("progress", self._request, step="tool", name=name)
            await self._mw._apublish(event)

    async def on_chat_model_start(  # type: ignore[override]
        self, serialized: dict[str, Any] | None, messages: Any, **kwargs: Any
    ) -> None:
        name = _run_name(serialized, kwargs, "model")
        await self._mw._apublish(
            self._mw._event("progress", self._request, step="model", name=name)
        )


@contextmanager
def _reporting(handler: BaseCallbackHandler | None) -> Iterator[None]:
    if handler is None:
        yield
        return
    token = _progress.set(handler)
    try:
        yield
    finally:
        _progress.reset(token)


class _LogWriter(CoordComponent):
    def op(self, event: Event) -> Operation[Any]:
        key = self.keys.log
        reply = yield Command(
            (
                "XADD",
                key,
                "MAXLEN",
                "~",
                self.coord_settings.log_maxlen,
                "*",
                EVENT_FIELD,
                event.encode(self.codec, key=key),
            )
        )
        return reply


def _thread_id(request: ToolCallRequest) -> str | None:
    config = getattr(getattr(request, "runtime", None), "config", None) or {}
    value = (config.get("configurable") or {}).get("thread_id")
    return None if value is None else str(value)


def _failed(result: Any) -> bool:
    return isinstance(result, ToolMessage) and result.status == "error"


class SubagentEventsMiddleware(AgentMiddleware):  # type: ignore[type-arg]
    """Publish a lifecycle event before and after each subagent (`task`) call.

    Args:
        tool_names: The tools that run subagents (deepagents: ``task``).
        source: The emitter named in each event (default ``agent``).
        progress: Also publish a ``subagent.progress`` event (``data``: ``step`` ``model`` or
            ``tool`` and its ``name``) for each model and tool call the subagent makes. Each is
            one ``XADD`` on the subagent's path; turn off to save those round trips.
        **kwargs: Connection (`connector=` or `url=`...) and `CoordSettings` options.
    """

    name = "SubagentEventsMiddleware"

    def __init__(
        self,
        *,
        tool_names: tuple[str, ...] = ("task",),
        source: str = "agent",
        progress: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self._writer = _LogWriter(**kwargs)
        self._tools = frozenset(tool_names)
        self._source = source
        self._progress = progress

    @property
    def writer(self) -> CoordComponent:
        """The component that writes the events (its connector, keys and settings)."""
        return self._writer

    def close(self) -> None:
        """Close the connector this middleware built (a shared one stays open)."""
        self._writer.close()

    async def aclose(self) -> None:
        """Async twin of `close`."""
        await self._writer.aclose()

    def _event(self, kind: str, request: ToolCallRequest, **data: Any) -> Event:
        call = request.tool_call
        args = call.get("args") or {}
        trace = trace_carrier()
        return Event(
            traceparent=trace.get("traceparent"),
            tracestate=trace.get("tracestate"),
            source=f"dar://{self._writer.namespace}/{self._source}",
            type=f"{TYPE_PREFIX}subagent.{kind}",
            subject=str(call.get("id") or ""),
            agent=str(args.get("subagent_type") or call.get("name")),
            threadid=_thread_id(request),
            data=data or None,
        )

    def _publish(self, event: Event) -> None:
        try:
            run_operation(
                self._writer.connector,
                "coord.lifecycle",
                self._writer.op(event),
                deadline_seconds=self._writer.connector.settings.deadline_seconds,
            )
        except DeepAgentsRedisError as exc:
            log.warning("subagent event %s not published: %s", event.type, exc)
            get_instrumentation().count("coord.lifecycle_failed")

    async def _apublish(self, event: Event) -> None:
        try:
            await arun_operation(
                self._writer.connector,
                "coord.lifecycle",
                self._writer.op(event),
                deadline_seconds=self._writer.connector.settings.deadline_seconds,
            )
        except DeepAgentsRedisError as exc:
            log.warning("subagent event %s not published: %s", event.type, exc)
            get_instrumentation().count("coord.lifecycle_failed")

    def _started(self, request: ToolCallRequest) -> Event:
        description = str((request.tool_call.get("args") or {}).get("description") or "")
        return self._event("started", request, description=description[:500])

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], _Result]
    ) -> _Result:
        """Publish started, run the subagent (reporting progress), publish completed or failed."""
        if request.tool_call.get("name") not in self._tools:
            return handler(request)
        self._publish(self._started(request))
        try:
            with _reporting(_SyncProgress(self, request) if self._progress else None):
                result = handler(request)
        except Exception as exc:
            self._publish(
                self._event("failed", request, error=f"{type(exc).__name__}: {exc}"[:2_000])
            )
            raise
        self._publish(self._event("failed" if _failed(result) else "completed", request))
        return result

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[_Result]]
    ) -> _Result:
        """Async twin of `wrap_tool_call`."""
        if request.tool_call.get("name") not in self._tools:
            return await handler(request)
        await self._apublish(self._started(request))
        try:
            with _reporting(_AsyncProgress(self, request) if self._progress else None):
                result = await handler(request)
        except Exception as exc:
            await self._apublish(
                self._event("failed", request, error=f"{type(exc).__name__}: {exc}"[:2_000])
            )
            raise
        await self._apublish(self._event("failed" if _failed(result) else "completed", request))
        return result
