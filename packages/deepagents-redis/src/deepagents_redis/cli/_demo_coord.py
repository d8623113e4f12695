"""Demo section ``coord``: a planner delegates to two worker processes; one is killed.

1. Two worker processes start (``deepagents-redis worker``), each serving ``researcher``.
2. A listener follows the namespace's event log live and prints each lifecycle event.
3. A planner deep agent (a scripted model, no API key) calls the ``task`` tool twice in one
   turn; its ``researcher`` subagent is a `remote_subagent`, so each call is a task on the
   workers.
4. While both run, the worker holding the first task is killed (``kill -9``). Its lease runs
   out, the other worker takes the task over and finishes it: the planner gets both answers,
   and every task completed exactly once.

Workers get the URL through their environment (never on the command line or in output).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

__all__ = ["researcher", "run"]

_LEASE = 2.0
_HEARTBEAT = 0.4


def researcher(state: dict[str, Any]) -> dict[str, Any]:
    """The worker-side agent: takes a moment, then answers (runs in the worker processes)."""
    from langchain_core.messages import AIMessage

    time.sleep(2.0)
    last = state["messages"][-1]
    topic = last.get("content") if isinstance(last, dict) else last.content
    answer = f"findings on {topic!r} (worker pid {os.getpid()})"
    return {"messages": [*state["messages"], AIMessage(content=answer)]}


def _planner_script() -> Any:
    from deepagents_redis.testing.chat import ScriptedChatModel, tool_calls
    from langchain_core.messages import AIMessage

    both = tool_calls(
        ("task", {"description": "Redis Streams", "subagent_type": "researcher"}, "t1"),
        ("task", {"description": "consumer groups", "subagent_type": "researcher"}, "t2"),
    )
    return ScriptedChatModel(script=[both, AIMessage(content="Both researchers reported back.")])


def _wait(cond: Any, seconds: float, what: str, check: Any = None) -> None:
    end = time.monotonic() + seconds
    while not cond():
        if check is not None:
            check()
        if time.monotonic() > end:
            raise RuntimeError(f"demo coord: timed out waiting for {what}")
        time.sleep(0.05)


def _died(workers: list[Any], logs: list[Any]) -> None:
    """Raise when a worker process exited before the demo stopped it, with its last words.

    A worker that could not start (a bad environment, a missing package, a server it cannot
    reach) was only noticed when the 60 s wait for two workers ran out, and then said
    nothing of why: its output went to /dev/null.

    Raises:
        RuntimeError: A worker process has exited.
    """
    for proc, log in zip(workers, logs, strict=True):
        status = proc.poll()
        if status is not None:
            log.seek(0)
            lines = [line.strip() for line in log.read().decode(errors="replace").splitlines()]
            last = next((line for line in reversed(lines) if line), "no output")
            raise RuntimeError(
                f"demo coord: a worker process exited with status {status} before the demo "
                f"stopped it: {last}"
            )


def _pid(worker_id: str | None) -> int:
    # worker ids are <host>-<pid>-<suffix>
    return int((worker_id or "0-0-0").rsplit("-", 2)[-2])


def run(ctx: Any) -> None:
    """Run the section (see the module docstring).

    Args:
        ctx: The demo context.

    Raises:
        RuntimeError: A worker did not start, or a task did not complete exactly once.
    """
    from deepagents import create_deep_agent
    from deepagents_redis.coord import (
        EventBus,
        SubagentEventsMiddleware,
        TaskClient,
        remote_subagent,
    )

    namespace = ctx.scratch(f"demo-coord-{uuid.uuid4().hex[:8]}")
    for scope in ("q/researcher", "reg", "log"):
        ctx.scratch(f"{namespace}/{scope}")
    options = {"namespace": namespace, "lease_seconds": _LEASE, "heartbeat_seconds": _HEARTBEAT}
    env = {
        **os.environ,
        "DEEPAGENTS_REDIS_URL": ctx.url,
        "DEEPAGENTS_REDIS_KEY_PREFIX": ctx.settings.key_prefix,
        "DEEPAGENTS_REDIS_COORD_LEASE_SECONDS": str(_LEASE),
        "DEEPAGENTS_REDIS_COORD_HEARTBEAT_SECONDS": str(_HEARTBEAT),
        "DEEPAGENTS_REDIS_COORD_BLOCK_SECONDS": "0.2",
    }
    cmd = [
        sys.executable,
        "-m",
        "deepagents_redis.cli",
        "-q",
        "worker",
        "--namespace",
        namespace,
        "--agent",
        "researcher=deepagents_redis.cli._demo_coord:researcher",
        "--grace",
        "1",
    ]
    # Each worker's stderr goes to a file of its own: it says why a worker did not start.
    # (Closed in the finally below: the worker processes write to them until then.)
    logs = [tempfile.TemporaryFile() for _ in range(2)]  # noqa: SIM115
    workers = [
        subprocess.Popen(  # noqa: S603 - our own CLI, with our own interpreter, no shell
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=log
        )
        for log in logs
    ]
    tasks = TaskClient(connector=ctx.connector, **options)
    bus = EventBus(connector=ctx.connector, **options)
    stop = threading.Event()

    def listen() -> None:
        for _, event in bus.tail("", stream=bus.keys.log, block=0.2, stop_when=stop.is_set):
            kind = event.type.removeprefix("dev.deepagents-redis.")
            worker = event.source.rsplit("/", 1)[-1]
            ctx.out(f"event: {kind:<16} task={(event.subject or '-')[:8]} from {worker}")

    listener = threading.Thread(target=listen, daemon=True)
    try:
        _wait(lambda: len(tasks.workers()) >= 2, 60, "two workers", lambda: _died(workers, logs))
        ctx.out(f"workers: {', '.join(tasks.workers())} serve 'researcher' in {namespace!r}")
        listener.start()
        agent: Any = create_deep_agent(
            model=_planner_script(),
            subagents=[
                remote_subagent(
                    name="researcher", description="Researches a topic.", client=tasks, timeout=60
                )
            ],
            # subagent.started / completed in the same log, from the planner's side
            middleware=[
                SubagentEventsMiddleware(connector=ctx.connector, source="planner", **options)
            ],
        )
        result: dict[str, Any] = {}
        planner = threading.Thread(
            target=lambda: result.update(agent.invoke({"messages": [("user", "research both")]}))
        )
        planner.start()
        _wait(
            lambda: (
                len(tasks.active("researcher")) >= 2
                and all(
                    tasks.get(t["task_id"]).status == "running" for t in tasks.active("researcher")
                )
            ),
            30,
            "both tasks to run",
            lambda: _died(workers, logs),
        )
        ids = sorted({t["task_id"] for t in tasks.active("researcher")})
        for task_id in ids:
            ctx.scratch(f"{namespace}/t/{task_id}")
        victim_pid = _pid(tasks.get(ids[0]).worker)
        os.kill(victim_pid, signal.SIGKILL)
        ctx.out(f"killed worker pid {victim_pid} (kill -9) while it ran task {ids[0][:8]}")
        planner.join(timeout=60)
        if planner.is_alive() or not result:
            raise RuntimeError("demo coord: the planner did not finish")
        for message in result["messages"]:
            if message.type == "tool":
                ctx.out(f"planner got: {message.content}")
        infos = [tasks.get(task_id) for task_id in ids]
        completed = {
            task_id: sum(e.type.endswith("task.completed") for _, e in tasks.events(task_id))
            for task_id in ids
        }
        for info in infos:
            ctx.out(
                f"task {info.task_id[:8]}: {info.status} after {info.attempts} attempt(s), "
                f"completed {completed[info.task_id]} time(s)"
            )
        if any(i.status != "success" for i in infos) or set(completed.values()) != {1}:
            raise RuntimeError("demo coord: a task did not complete exactly once")
        ctx.facts["coord"] = {"attempts": [i.attempts for i in infos], "completed": completed}
        time.sleep(0.3)  # the listener prints the last lifecycle lines
    finally:
        stop.set()
        for proc in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if listener.ident is not None:
            # Not started when the workers never came up: join() raised RuntimeError("cannot
            # join thread before it is started"), which replaced the error that said why.
            listener.join(timeout=2)
        for log in logs:
            log.close()
    ctx.out(f"result: {result['messages'][-1].content}")
