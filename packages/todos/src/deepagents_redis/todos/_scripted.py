"""A scripted chat model for demos, tests and benchmarks (no network, deterministic).

Each call returns the next step of the script: an ``AIMessage`` or a function of the
messages the model was sent (so a step can react to what the middleware told it). Past the
end it answers ``"done"``. ``bind_tools`` returns the model itself, so it drops into
``create_agent``/``create_deep_agent`` like a real tool-calling model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

__all__ = [
    "ScriptedChatModel",
    "Step",
    "tool_call",
]


Step = AIMessage | Callable[[Sequence[BaseMessage]], AIMessage]
"""One scripted reply."""


def tool_call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    """An ``AIMessage`` calling one tool.

    Args:
        name: The tool.
        args: Its arguments.
        call_id: The tool call id.

    Returns:
        The message.
    """
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id}])


class ScriptedChatModel(BaseChatModel):
    """Replays a fixed script of replies; records what it was sent.

    Example:
        >>> model = ScriptedChatModel(script=[AIMessage(content="hi")])
        >>> model.invoke("hello").content
        'hi'
    """

    script: list[Any]
    """The replies, in order (`Step`)."""

    _position: int = PrivateAttr(default=0)
    _seen: list[list[BaseMessage]] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def seen(self) -> list[list[BaseMessage]]:
        """The messages of every call so far."""
        return self._seen

    def rewind(self) -> None:
        """Start the script over (and forget what was seen), e.g. between benchmark runs."""
        with self._lock:
            self._position = 0
            self._seen.clear()

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        """Accept tools (the script already knows which to call).

        Args:
            tools: Ignored.
            **kwargs: Ignored.

        Returns:
            The model itself.
        """
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            self._seen.append(list(messages))
            position = self._position
            self._position += 1
        if position < len(self.script):
            step = self.script[position]
            message = step if isinstance(step, AIMessage) else step(messages)
        else:
            message = AIMessage(content="done")
        return ChatResult(generations=[ChatGeneration(message=message)])
