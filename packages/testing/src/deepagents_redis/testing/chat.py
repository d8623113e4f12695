"""A scripted chat model for tests, demos and benchmarks: deterministic, no network, no API key.

Install with the `chat` extra (`pip install 'deepagents-redis-testing[chat]'`): this module
needs langchain-core, which the plugin itself does not, so `deepagents_redis.testing` does not
import it.

Each model call answers with the next step of a script. A step is an `AIMessage`, or a function
of the messages the model was sent (sync or `async`) that returns one, so a step can react to
what middleware told the model. Past the end of the script the model answers `"done"`.
`bind_tools` returns the model itself, so it drops into `create_agent` / `create_deep_agent`
like a real tool-calling model; the script already knows which tools it calls.

```python
from deepagents import create_deep_agent
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
from langchain_core.messages import AIMessage

model = ScriptedChatModel(
    script=[
        tool_call("write_file", {"file_path": "/a.md", "content": "hi"}, "call-1"),
        AIMessage(content="Wrote /a.md."),
    ]
)
agent = create_deep_agent(model=model)
```

With `by_turn=True` the step is picked by the number of AI messages already in the
conversation instead of by a call counter: the same conversation always gets the same reply,
which is what a cache test or a run resumed in another process needs.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolCall
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

__all__ = [
    "DONE",
    "ScriptedChatModel",
    "Step",
    "tool_call",
    "tool_calls",
]


Step = (
    AIMessage
    | Callable[[Sequence[BaseMessage]], AIMessage]
    | Callable[[Sequence[BaseMessage]], Awaitable[AIMessage]]
)
"""One scripted reply: a message, or a function (sync or async) of the messages sent."""

DONE = "done"
"""What the model answers once the script is used up."""


def tool_call(name: str, args: dict[str, Any], call_id: str, *, content: str = "") -> AIMessage:
    """An `AIMessage` that calls one tool.

    Args:
        name: The tool.
        args: Its arguments.
        call_id: The tool call id (the `ToolMessage` answering it carries the same id).
        content: Text the model says alongside the call.

    Returns:
        The message.
    """
    return tool_calls((name, args, call_id), content=content)


def tool_calls(*calls: tuple[str, dict[str, Any], str], content: str = "") -> AIMessage:
    """An `AIMessage` that calls several tools at once (deepagents runs them in parallel).

    Args:
        *calls: `(name, args, call_id)` of each call, in order.
        content: Text the model says alongside the calls.

    Returns:
        The message.
    """
    parsed = [ToolCall(name=name, args=args, id=call_id) for name, args, call_id in calls]
    return AIMessage(content=content, tool_calls=parsed)


class ScriptedChatModel(BaseChatModel):
    """Replays a script of replies and records what it was sent.

    Thread-safe: concurrent calls (subagents, parallel tool calls, benchmark threads) each take
    their own step. `ainvoke` awaits async steps and runs sync function steps in a worker
    thread, so a step that waits for something (a remote worker, say) never blocks the event
    loop.

    Example:
        >>> model = ScriptedChatModel(script=[AIMessage(content="hi")])
        >>> model.invoke("hello").content
        'hi'
        >>> model.invoke("again").content
        'done'
    """

    script: list[Any]
    """The replies, in order (see `Step`)."""

    by_turn: bool = False
    """Pick the step by the number of AI messages in the conversation, not by a call counter."""

    _position: int = PrivateAttr(default=0)
    _seen: list[list[BaseMessage]] = PrivateAttr(default_factory=list)
    _calls: list[int] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # Part of LangChain's llm_string, the LLM cache's key: two different scripts must
        # never share cache entries. Message ids are random per object, so they are left out.
        return {"script": [_describe(step) for step in self.script], "by_turn": self.by_turn}

    @property
    def seen(self) -> list[list[BaseMessage]]:
        """The messages of every call that reached the model, in call order."""
        return self._seen

    @property
    def calls(self) -> list[int]:
        """The script index each call that reached the model used (LLM cache hits never do)."""
        return self._calls

    def rewind(self) -> None:
        """Start the script over and forget what was seen, e.g. between benchmark rounds."""
        with self._lock:
            self._position = 0
            self._seen.clear()
            self._calls.clear()

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        """Accept tools like a real model; the script already knows which ones it calls.

        Args:
            tools: Ignored.
            **kwargs: Ignored.

        Returns:
            The model itself.
        """
        return self

    def _take(self, messages: list[BaseMessage]) -> Step:
        """Record the call and return its step (a `DONE` message past the end)."""
        with self._lock:
            if self.by_turn:
                index = sum(isinstance(m, AIMessage) for m in messages)
            else:
                index = self._position
                self._position += 1
            self._seen.append(list(messages))
            self._calls.append(index)
        if index < len(self.script):
            step: Step = self.script[index]
            return step
        return AIMessage(content=DONE)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        step = self._take(messages)
        if isinstance(step, AIMessage):
            return _result(step)
        reply = step(messages)
        if inspect.isawaitable(reply):
            # Close the coroutine: an un-awaited one is a RuntimeWarning (an error in tests).
            getattr(reply, "close", lambda: None)()
            raise TypeError(f"step {_describe(step)} is async: call the model with ainvoke")
        return _result(reply)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        step = self._take(messages)
        if isinstance(step, AIMessage):
            return _result(step)
        if inspect.iscoroutinefunction(step):
            return _result(await step(messages))
        reply = await asyncio.to_thread(step, messages)
        if inspect.isawaitable(reply):
            reply = await reply
        return _result(reply)


def _result(message: Any) -> ChatResult:
    if not isinstance(message, AIMessage):
        raise TypeError(f"a scripted step must give an AIMessage, not {type(message).__name__}")
    return ChatResult(generations=[ChatGeneration(message=message)])


def _describe(step: Any) -> Any:
    """A stable description of a step (for the cache key and error messages)."""
    if isinstance(step, AIMessage):
        return step.model_dump(exclude={"id"})
    return getattr(step, "__qualname__", repr(step))
