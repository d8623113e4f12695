"""How a run maps to a plan: the scope of a thread or a named plan, actors, op ids.

Shared by the agent middleware (`_middleware.py`) and the subagent middleware
(`_subagent.py`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from deepagents_redis.core import (
    ConfigurationError,
)
from deepagents_redis.todos._repository import MAX_TAG_CHARS, RedisTodoRepository
from langchain_core.runnables import RunnableConfig

__all__ = [
    "ScopeResolver",
]


log = logging.getLogger("deepagents_redis.todos")

_LONG = 256
"""A tool call id longer than this is named by its SHA-256 in an op id."""

ScopeResolver = Callable[[RunnableConfig], str]
"""Maps a run's config to a plan scope."""


def _thread_scope(config: RunnableConfig) -> str:
    thread_id = (config.get("configurable") or {}).get("thread_id")
    if thread_id is None:
        raise ConfigurationError(
            "RedisTodoMiddleware needs a plan scope: run the agent with a thread_id "
            "(config={'configurable': {'thread_id': ...}}) or pass scope=..."
        )
    return str(thread_id)


def _op_id(kind: str, call_id: str | None, version: int | None, payload: Any) -> str:
    """The operation id of a tool call's write.

    A re-run of the same tool call (same id, same arguments, same base version) gets the
    same id and so applies once. The arguments' digest keeps two different writes apart
    even when a provider reuses tool call ids (some number them per turn).
    """
    digest = hashlib.sha256(
        json.dumps(payload, sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()[:16]
    if call_id is not None and (len(call_id) > _LONG or not _storable(call_id)):
        # Tool call ids come from the model provider: a long one is named by its digest, so
        # the op id stays within the repository's MAX_TAG_CHARS; so is one holding a lone
        # surrogate, which the repository refuses in an op id (every write of the call
        # answered the model an error about text it never wrote).
        call_id = hashlib.sha256(call_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{kind}:{call_id}:{version}:{digest}"


def _storable(text: str) -> bool:
    """Whether `text` is valid Unicode (no lone surrogate), as Redis arguments must be."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _task_scope(config: Any) -> str:
    """What tells this execution of a tool call apart from a later call with the same id.

    LangGraph gives every task (one tool call in one step) a deterministic id: a task re-run
    after a crash or an interrupt gets the same id (its write must apply once), while a later
    call that happens to reuse the tool-call id (providers number calls per turn: `call_0`,
    `toolu_01`) runs in another task. Outside a graph there is no such id: a fresh one makes
    every call distinct, so a repeat is never silently replayed.
    """
    configurable = (config or {}).get("configurable") or {}
    task = configurable.get("__pregel_task_id")
    return str(task) if task else uuid.uuid4().hex


class _ScopedRepository:
    """The repository plus how to find the scope and actor of a run (shared by the tools)."""

    def __init__(self, repository: RedisTodoRepository, scope: str | ScopeResolver | None):
        self.repository = repository
        self._scope = scope

    def scope(self, config: RunnableConfig) -> str:
        if callable(self._scope):
            return self._scope(config)
        if self._scope is not None:
            return self._scope
        return _thread_scope(config)

    @staticmethod
    def actor(config: RunnableConfig, default: str) -> str:
        name = (config.get("metadata") or {}).get("lc_agent_name")
        thread_id = (config.get("configurable") or {}).get("thread_id")
        who = name or default
        actor = f"{who}:{thread_id}" if thread_id is not None else str(who)
        if not _storable(actor):
            # A thread id (or agent name) holding a lone surrogate, e.g. decoded from an
            # API's JSON "\ud800": the scope's keys encode it, but the repository refuses it
            # in the actor, so every write_todos of the thread answered the model an error
            # about text it never wrote, and the plan could never be written. The log shows
            # it escaped instead.
            actor = actor.encode("utf-8", "backslashreplace").decode("utf-8")
        # The log records who: a thread id past the repository's MAX_TAG_CHARS is cut there
        # rather than refusing the write.
        return actor[:MAX_TAG_CHARS]
