"""`remote_subagent`: a deepagents `CompiledSubAgent` whose work runs on a `Worker`.

deepagents' synchronous `task` tool invokes a subagent's runnable with the parent's state
(messages: the task description) and reads the last AI message (or `structured_response`) of
what it returns. Our runnable submits the messages to a worker serving `agent`, waits for
the result and returns its messages, so an agent moves a subagent to other machines by
swapping one entry of `subagents=[...]`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from deepagents.middleware.subagents import CompiledSubAgent
from deepagents_redis.coord._client import TaskClient
from deepagents_redis.coord._errors import TaskFailedError
from deepagents_redis.core import DeepAgentsRedisError, RedisConnector
from langchain_core.runnables import RunnableConfig, RunnableLambda

__all__ = ["remote_subagent"]

log = logging.getLogger("deepagents_redis.coord")

_KEPT = ("messages", "structured_response")


def _payload(state: Any) -> dict[str, Any]:
    # Only the conversation travels: other state keys (files, todos) belong to the parent's
    # backends, and may hold objects that are not plain data.
    return {"messages": list(state.get("messages") or [])}


def _reply(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):
        return {"messages": [{"role": "assistant", "content": str(result)}]}
    return {k: result[k] for k in _KEPT if k in result}


def _give_up(tasks: TaskClient, task_id: str) -> None:
    try:
        tasks.cancel(task_id)
    except DeepAgentsRedisError as exc:  # the caller's own error is the one to see
        log.warning("remote subagent task %s not cancelled: %s", task_id, exc)


async def _agive_up(tasks: TaskClient, task_id: str) -> None:
    try:
        await tasks.acancel(task_id)
    except DeepAgentsRedisError as exc:
        log.warning("remote subagent task %s not cancelled: %s", task_id, exc)


def remote_subagent(
    *,
    name: str,
    description: str,
    url: str | None = None,
    connector: RedisConnector | None = None,
    agent: str | None = None,
    timeout: float | None = 600.0,
    client: TaskClient | None = None,
    **options: Any,
) -> CompiledSubAgent:
    """A subagent for `create_deep_agent(subagents=[...])` that runs on remote workers.

    Args:
        name: The subagent's name (what the model passes to `task`).
        description: What it does (the model reads it to decide when to delegate).
        url: Redis URL (or `connector=`, or a ready `client=`).
        connector: A shared `RedisConnector`.
        agent: The worker-side agent name (default: `name`).
        timeout: Longest wait for the result, in seconds (None: no limit). A wait that
            ends without the result (this timeout, the caller's cancel) cancels the run.
        client: A ready `TaskClient` (its connection and namespace are used).
        **options: `CoordSettings` fields (e.g. `namespace=`) for the client built here.

    Returns:
        A `CompiledSubAgent` dict.
    """
    tasks = client or TaskClient(url=url, connector=connector, **options)
    target = agent or name

    # A wait that gives up (its timeout, the parent's cancel or interrupt) cancels the run:
    # deepagents' in-process subagent ends with its `task` call, and a remote one left
    # running would hold a worker slot for a result nobody reads. A run that ended
    # (`TaskFailedError`) has nothing to cancel.
    def run(state: Any, config: RunnableConfig | None = None) -> dict[str, Any]:
        task_id = tasks.submit(target, _payload(state))
        try:
            return _reply(tasks.result(task_id, timeout=timeout))
        except TaskFailedError:
            raise
        except BaseException:
            _give_up(tasks, task_id)
            raise

    async def arun(state: Any, config: RunnableConfig | None = None) -> dict[str, Any]:
        task_id = await tasks.asubmit(target, _payload(state))
        try:
            return _reply(await tasks.aresult(task_id, timeout=timeout))
        except TaskFailedError:
            raise
        except BaseException:
            # shielded: the cancel that brought us here must not cancel the cancel too
            await asyncio.shield(_agive_up(tasks, task_id))
            raise

    return CompiledSubAgent(
        name=name,
        description=description,
        runnable=RunnableLambda(run, afunc=arun, name=f"remote:{target}"),
    )
