"""Demo section ``handoff``: a deep agent loses its process mid-run and finishes in another.

1. Process A runs a deep agent (a scripted model, no API key) with its conversation in Redis
   (`RedisSaver`), its files in `RedisBackend` and its plan in durable todos. In its fourth
   step the model calls two tools at once: ``write_file("/review.md")`` and ``pause``, which
   blocks in process A. Once the file write is done and saved (a pending write of the
   step), the demo kills A with SIGKILL: one tool call finished, one never will.
2. Process B builds the same agent and resumes the thread from its last checkpoint
   (``invoke(None, config)``): LangGraph re-runs only the unfinished tool call, then the
   model finishes the plan.
3. The same script runs without interruption on a second thread, and the demo compares the
   two: the message history, every file and the plan are the same, and a ledger of tool
   executions shows each call completed exactly once (the file was not written twice,
   the edit not applied twice).

Child processes get the URL through their environment, never on the command line.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["build_agent", "history", "main", "run"]

_BLOCK_ENV = "DEEPAGENTS_REDIS_HANDOFF_BLOCK"
_PLAN = ["draft the notes", "review them", "publish"]


def _todos(*statuses: str) -> list[dict[str, str]]:
    return [
        {"content": content, "status": status}
        for content, status in zip(_PLAN, statuses, strict=True)
    ]


def _script() -> list[Any]:
    from deepagents_redis.testing.chat import tool_call, tool_calls
    from langchain_core.messages import AIMessage

    return [
        tool_call("write_todos", {"todos": _todos("in_progress", "pending", "pending")}, "s1-0"),
        tool_call(
            "write_file", {"file_path": "/notes.md", "content": "# Notes\nfirst draft\n"}, "s2-0"
        ),
        tool_call("write_todos", {"todos": _todos("completed", "in_progress", "pending")}, "s3-0"),
        tool_calls(
            ("write_file", {"file_path": "/review.md", "content": "looks good\n"}, "s4-0"),
            ("pause", {"label": "review"}, "s4-1"),
        ),
        tool_calls(
            (
                "edit_file",
                {"file_path": "/notes.md", "old_string": "first draft", "new_string": "final"},
                "s5-0",
            ),
            ("write_todos", {"todos": _todos("completed", "completed", "completed")}, "s5-1"),
        ),
        AIMessage(content="Published: /notes.md is final and /review.md is in place."),
    ]


def _model() -> Any:
    """A scripted model whose reply depends on the conversation, not on a call counter.

    A new process resuming the thread gets the step the conversation is at.
    """
    from deepagents_redis.testing.chat import ScriptedChatModel

    return ScriptedChatModel(script=_script(), by_turn=True)


def _pause_tool() -> Any:
    from langchain_core.tools import tool

    @tool
    def pause(label: str) -> str:
        """Wait for the reviewer's go-ahead on a step."""
        if os.environ.get(_BLOCK_ENV) == "1":
            print("handoff: pause is blocking (kill me)", flush=True)
            time.sleep(60)  # bounded: the demo kills this process long before
            raise SystemExit(3)
        return f"{label}: approved"

    return pause


def _ledger(client: Any, key: str) -> Any:
    """Middleware counting each tool call that COMPLETED (a hash: call id -> count)."""
    from langchain.agents.middleware import AgentMiddleware

    class Ledger(AgentMiddleware):  # type: ignore[type-arg]
        def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
            result = handler(request)
            client.hincrby(key, request.tool_call["id"], 1)
            return result

    return Ledger()


def build_agent(connector: Any, thread: str, fs_namespace: str) -> Any:
    """The handoff agent: checkpoints, todos and files in Redis, on one connector.

    Args:
        connector: The connection (shared by every phase).
        thread: The thread (names the ledger key).
        fs_namespace: The file tree of this run.

    Returns:
        The compiled deep agent.
    """
    from deepagents_redis.agent import create_deep_agent
    from deepagents_redis.fs import RedisBackend

    ledger_key = connector.keyspace.key("demo", thread, "ledger")
    return create_deep_agent(
        model=_model(),
        tools=[_pause_tool()],
        middleware=[_ledger(connector.client(), ledger_key)],
        backend=RedisBackend(connector=connector, namespace=fs_namespace),
        redis_connector=connector,
        redis_todos=True,
        redis_checkpointer=True,
    )


def history(messages: Sequence[Any]) -> list[tuple[Any, ...]]:
    """A conversation without its generated ids: what two runs can be compared on."""
    return [
        (
            m.type,
            m.content,
            [(c["name"], c["args"], c["id"]) for c in getattr(m, "tool_calls", None) or []],
            getattr(m, "tool_call_id", None),
        )
        for m in messages
    ]


def _config(thread: str) -> Any:
    # a RunnableConfig (a TypedDict); Any keeps the dict literal readable
    return {"configurable": {"thread_id": thread}, "recursion_limit": 50}


def main(argv: Sequence[str] | None = None) -> int:
    """A handoff process: start the thread, or resume it from its last checkpoint."""
    from deepagents_redis.agent import close_redis
    from deepagents_redis.core import RedisConnector
    from langchain_core.messages import HumanMessage

    parser = argparse.ArgumentParser(prog="handoff-process")
    parser.add_argument("thread")
    parser.add_argument("fs_namespace")
    args = parser.parse_args(argv)
    connector = RedisConnector()  # DEEPAGENTS_REDIS_URL and friends, from the environment
    agent = build_agent(connector, args.thread, args.fs_namespace)
    try:
        config = _config(args.thread)
        state = agent.get_state(config)
        if state.next:
            print(f"handoff: pid {os.getpid()} resumes before {list(state.next)}", flush=True)
            result = agent.invoke(None, config)
        else:
            print(f"handoff: pid {os.getpid()} starts the thread", flush=True)
            result = agent.invoke(
                {"messages": [HumanMessage("Write and publish the notes.")]}, config
            )
        print(f"handoff: finished: {result['messages'][-1].content}", flush=True)
    finally:
        close_redis(agent)
        connector.close()
    return 0


def _spawn(ctx: Any, thread: str, fs_namespace: str, *, block: bool) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DEEPAGENTS_REDIS_URL": ctx.url,
        "DEEPAGENTS_REDIS_KEY_PREFIX": ctx.settings.key_prefix,
        "DEEPAGENTS_REDIS_CLUSTER": str(ctx.settings.cluster),
        _BLOCK_ENV: "1" if block else "0",
    }
    return subprocess.Popen(  # noqa: S603 - our own module, with our own interpreter
        [sys.executable, "-m", "deepagents_redis.cli._demo_handoff", thread, fs_namespace],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(what: str, predicate: Callable[[], bool], seconds: float = 60.0) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > end:
            raise RuntimeError(f"handoff: timed out waiting for {what}")
        time.sleep(0.05)


def _files(backend: Any) -> dict[str, str]:
    out = {}
    for entry in backend.ls("/").entries or []:
        read = backend.read(entry["path"])
        out[entry["path"]] = read.file_data["content"] if read.file_data else read.error
    return out


def run(ctx: Any) -> None:
    """Kill a deep agent's process mid-step and finish its thread in another.

    Args:
        ctx: The demo context.
    """
    from deepagents_redis.checkpoint import RedisSaver
    from deepagents_redis.fs import RedisBackend
    from langchain_core.messages import HumanMessage

    tag = uuid.uuid4().hex[:8]
    thread, reference = ctx.scratch(f"handoff-{tag}"), ctx.scratch(f"handoff-ref-{tag}")
    fs_a, fs_ref = ctx.scratch(f"handoff-fs-{tag}"), ctx.scratch(f"handoff-fs-ref-{tag}")
    saver = RedisSaver(connector=ctx.connector)
    ctx.scratch(f"default/{thread}")
    ctx.scratch(f"default/{reference}")
    client = ctx.connector.client()
    a: subprocess.Popen[str] | None = None
    try:
        # 1. process A, killed while one of step 4's two tool calls is done and saved
        a = _spawn(ctx, thread, fs_a, block=True)
        config = _config(thread)

        def review_written() -> bool:
            if a.poll() is not None:
                raise RuntimeError(
                    f"process A exited early: {a.stderr.read()[-800:] if a.stderr else ''}"
                )
            tup = saver.get_tuple(config)
            for _task, channel, value in (tup.pending_writes or []) if tup else []:
                items = value if isinstance(value, list) else [value]
                if channel == "messages" and any(
                    getattr(m, "tool_call_id", None) == "s4-0" for m in items
                ):
                    return True
            return False

        _wait_for("process A to write /review.md", review_written)
        os.kill(a.pid, signal.SIGKILL)
        a.communicate(timeout=30)  # reaps it and closes its pipes
        done = {
            k.decode(): int(v)
            for k, v in client.hgetall(ctx.connector.keyspace.key("demo", thread, "ledger")).items()
        }
        last = saver.get_tuple(config)
        assert last is not None
        ctx.out(
            f"process A (pid {a.pid}) killed with SIGKILL in superstep "
            f"{int(last.metadata.get('step', -1)) + 1}: step 4's write_file done and saved as "
            "a pending write, its pause never returned"
        )
        ctx.out(f"  tool calls completed before the kill: {sorted(done)}")
        backend_a = RedisBackend(connector=ctx.connector, namespace=fs_a)
        ctx.out(f"  files so far: {sorted(_files(backend_a))}")

        # 2. process B resumes the thread from its last checkpoint
        b = _spawn(ctx, thread, fs_a, block=False)
        out, err = b.communicate(timeout=120)
        for line in out.splitlines():
            ctx.out(f"  B: {line}")
        if b.returncode != 0:
            raise RuntimeError(f"process B failed: {err.strip()[-800:]}")

        # 3. the same script, uninterrupted, on a second thread
        agent = build_agent(ctx.connector, reference, fs_ref)
        agent.invoke(
            {"messages": [HumanMessage("Write and publish the notes.")]}, _config(reference)
        )

        # the state as LangGraph rebuilds it from the checkpoints (channels, pending writes)
        resumed = agent.get_state(config).values
        straight = agent.get_state(_config(reference)).values
        same_history = history(resumed["messages"]) == history(straight["messages"])
        files_a = _files(backend_a)
        files_ref = _files(RedisBackend(connector=ctx.connector, namespace=fs_ref))
        todos_a = resumed.get("todos")
        todos_ref = straight.get("todos")
        ledger = {
            k.decode(): int(v)
            for k, v in client.hgetall(ctx.connector.keyspace.key("demo", thread, "ledger")).items()
        }
        ctx.out(
            f"resumed thread: {len(resumed['messages'])} messages, "
            f"history {'identical to' if same_history else 'DIFFERENT from'} an uninterrupted run"
        )
        ctx.out(f"  files: {files_a}")
        ctx.out(f"  plan: {[t['status'] for t in todos_a or []]}")
        ctx.out(f"  tool calls completed (call id: times): {dict(sorted(ledger.items()))}")
        ctx.facts["handoff"] = {
            "killed_pid": a.pid,
            "killed_returncode": a.returncode,
            "done_before_kill": done,
            "same_history": same_history,
            "files": files_a,
            "reference_files": files_ref,
            "todos": todos_a,
            "reference_todos": todos_ref,
            "ledger": ledger,
        }
        if not same_history or files_a != files_ref or todos_a != todos_ref:
            raise RuntimeError("handoff: the resumed thread differs from the uninterrupted run")
        if any(times != 1 for times in ledger.values()):
            raise RuntimeError(f"handoff: a tool call completed more than once: {ledger}")
    finally:
        if a is not None and a.poll() is None:  # a failure before the kill
            a.kill()
            a.communicate(timeout=30)
        saver.delete_thread(thread)
        saver.delete_thread(reference)


if __name__ == "__main__":
    raise SystemExit(main())
