"""Errors of the coord phase, all in core's tree (`DeepAgentsRedisError`).

    DeepAgentsRedisError
     +-- InvalidInputError
     |    +-- UnknownAgentError     no worker serves that agent; names the ones that exist
     +-- TaskFailedError            `result()` of a task that ended in error, cancelled, timeout
     +-- ResultTimeoutError         `result(timeout=)` ran out (also a `TimeoutError`)
     +-- LeaseLostError             a worker wrote for a task it no longer holds (fenced)

`BackpressureError` (a full queue) is core's, shared with any bounded queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepagents_redis.core import DeepAgentsRedisError, InvalidInputError

__all__ = ["LeaseLostError", "ResultTimeoutError", "TaskFailedError", "UnknownAgentError"]


class UnknownAgentError(InvalidInputError):
    """No worker has announced this agent in the namespace.

    Attributes:
        agent: The name asked for.
        known: The agents workers announced.
    """

    def __init__(self, agent: str, known: Sequence[str], namespace: str) -> None:
        self.agent = agent
        self.known = list(known)
        listed = ", ".join(repr(k) for k in self.known) or "none (start a worker first)"
        super().__init__(
            f"unknown agent {agent!r} in namespace {namespace!r}; agents workers serve: {listed}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_unknown, (self.agent, self.known, str(self)))


def _rebuild_unknown(agent: str, known: list[str], message: str) -> UnknownAgentError:
    err = UnknownAgentError.__new__(UnknownAgentError)
    err.agent, err.known = agent, known
    Exception.__init__(err, message)
    return err


class TaskFailedError(DeepAgentsRedisError):
    """A task ended without a result: status ``error``, ``cancelled`` or ``timeout``.

    Attributes:
        task_id: The task.
        status: How it ended.
        error: The last error text, if any.
    """

    def __init__(self, task_id: str, status: str, error: str | None = None) -> None:
        self.task_id = task_id
        self.status = status
        self.error = error
        detail = f": {error}" if error else ""
        super().__init__(f"task {task_id} ended with status {status}{detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (TaskFailedError, (self.task_id, self.status, self.error))


class ResultTimeoutError(DeepAgentsRedisError, TimeoutError):
    """The task did not finish within `result(timeout=)`; it keeps running."""


class LeaseLostError(DeepAgentsRedisError):
    """The worker no longer holds the task's lease: another worker took it over (fencing)."""
