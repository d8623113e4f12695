"""Demo section ``todos``: a plan that outlives its process and takes outside updates.

1. This process runs an agent (a scripted model, no API key) that writes a three-item plan
   with ``write_todos``; ``RedisTodoMiddleware`` keeps it in Redis under a named scope.
2. A *new process* (``python -m deepagents_redis.cli._demo_todos``) starts a fresh agent
   with no checkpoint: it resumes the plan from Redis, advances it, then waits.
3. While it waits, this process changes the plan from outside (a "reviewer" adds an item).
4. The new process's next model step is told what changed, and the plan shows it.

The child gets the URL through its environment (never on the command line or in output).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from typing import Any

__all__ = [
    "PLAN",
    "REVIEW_ITEM",
    "run",
]


PLAN = [
    {"content": "outline the report", "status": "in_progress"},
    {"content": "write the draft", "status": "pending"},
    {"content": "proofread", "status": "pending"},
]
REVIEW_ITEM = "add a benchmark table (asked by a reviewer)"


def _sync_notes(messages: Sequence[Any]) -> list[str]:
    from deepagents_redis.todos._middleware import SYNC_MESSAGE_PREFIX

    return [
        str(m.content)
        for m in messages
        if (getattr(m, "id", None) or "").startswith(SYNC_MESSAGE_PREFIX)
    ]


def run(ctx: Any) -> None:
    """Run the section (see the module docstring).

    Args:
        ctx: The demo context.

    Raises:
        RuntimeError: The second process failed or did not see the plan or the update.
    """
    from deepagents import create_deep_agent
    from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
    from deepagents_redis.todos import RedisTodoMiddleware, RedisTodoRepository
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.memory import InMemorySaver

    scope = ctx.scratch(f"demo-plan-{uuid.uuid4().hex[:8]}")
    repo = RedisTodoRepository(client=ctx.connector.client(), settings=ctx.settings, actor="demo")
    mw = RedisTodoMiddleware(repository=repo, scope=scope)
    model = ScriptedChatModel(
        script=[tool_call("write_todos", {"todos": PLAN}, "plan-1"), AIMessage("Plan written.")]
    )
    agent = create_deep_agent(model=model, middleware=[mw], checkpointer=InMemorySaver())
    agent.invoke(
        {"messages": [HumanMessage("Write a report; plan it first.")]},
        {"configurable": {"thread_id": "demo-worker-1"}},
    )
    plan = repo.get(scope)
    ctx.out(f"worker 1 (pid {os.getpid()}) wrote plan {scope!r} v{plan.version}:")
    for item in plan.items:
        ctx.out(f"  [{item.status}] {item.content}")
    ctx.out("worker 1 stops; a new process takes over the plan")

    env = {
        **os.environ,
        "DEEPAGENTS_REDIS_URL": ctx.url,
        "DEEPAGENTS_REDIS_KEY_PREFIX": ctx.settings.key_prefix,
    }
    child = subprocess.Popen(  # noqa: S603 - our own module, no shell
        [sys.executable, "-m", "deepagents_redis.cli._demo_todos", scope],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    lines: list[str] = []
    try:
        for line in child.stdout:
            if line.strip() == "WAITING":
                break
            lines.append(line.rstrip())
            ctx.out(f"  [worker 2] {line.rstrip()}")
        plan = repo.add(scope, REVIEW_ITEM, actor="reviewer")
        ctx.out(f"outside the run, a reviewer adds an item (plan v{plan.version})")
        child.stdin.write("go\n")
        child.stdin.flush()
        for line in child.stdout:
            lines.append(line.rstrip())
            ctx.out(f"  [worker 2] {line.rstrip()}")
        code = child.wait(timeout=120)
    finally:
        child.stdin.close()
        child.stdout.close()
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    text = "\n".join(lines)
    final = repo.get(scope)
    ctx.facts["todos"] = {
        "scope": scope,
        "child_exit": code,
        "resumed": "continues the shared plan" in text,
        "saw_update": REVIEW_ITEM in text and "changed outside this run" in text,
        "final_version": final.version,
        "final": final.as_langchain(),
    }
    if code != 0 or not ctx.facts["todos"]["resumed"] or not ctx.facts["todos"]["saw_update"]:
        raise RuntimeError(f"todos demo: the second process failed (exit {code})")
    ctx.out(f"final plan v{final.version} (change log: {len(repo.history(scope))} entries):")
    for item in final.items:
        ctx.out(f"  [{item.status}] {item.content}")
    # Clean up: the plan, its log, and the op-id records of every change (their ids are in
    # the log). All share the plan's hash tag, so one DEL works on a cluster too.
    op_keys = [repo.keyspace.op_key(scope, change.op_id) for change in repo.history(scope)]
    ctx.connector.client().delete(repo.plan_key(scope), repo.log_key(scope), *op_keys)


def _child(scope: str) -> int:
    """The second process: resume the plan, advance it, wait, see the outside update."""
    from deepagents import create_deep_agent
    from deepagents_redis.core import RedisSettings
    from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
    from deepagents_redis.todos import RedisTodoMiddleware
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
    from langchain_core.tools import tool
    from langgraph.checkpoint.memory import InMemorySaver

    def say(text: str) -> None:
        print(text, flush=True)

    @tool
    def wait_for_review() -> str:
        """Wait until a reviewer has looked at the draft."""
        say("WAITING")
        sys.stdin.readline()
        return "The reviewer has looked at the draft."

    def resume(messages: Sequence[BaseMessage]) -> AIMessage:
        say(f"pid {os.getpid()}: first model step; the middleware said:")
        for note in _sync_notes(messages):
            for line in note.splitlines():
                say(f"  | {line}")
        advanced = [
            {"content": PLAN[0]["content"], "status": "completed"},
            {"content": PLAN[1]["content"], "status": "in_progress"},
            PLAN[2],
        ]
        return tool_call("write_todos", {"todos": advanced}, "plan-2")

    def ask_review(messages: Sequence[BaseMessage]) -> AIMessage:
        say("draft written; waiting for review")
        return tool_call("wait_for_review", {}, "review-1")

    def after_review(messages: Sequence[BaseMessage]) -> AIMessage:
        say("next model step; the middleware said:")
        for note in _sync_notes(messages)[-1:]:
            for line in note.splitlines():
                say(f"  | {line}")
        return AIMessage("I will add the benchmark table next.")

    settings = RedisSettings()
    mw = RedisTodoMiddleware(settings=settings, scope=scope)
    model = ScriptedChatModel(script=[resume, ask_review, after_review])
    agent = create_deep_agent(
        model=model, tools=[wait_for_review], middleware=[mw], checkpointer=InMemorySaver()
    )
    try:
        agent.invoke(
            {"messages": [HumanMessage("Continue the report.")]},
            {"configurable": {"thread_id": "demo-worker-2"}},
        )
    finally:
        mw.repository.close()
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
