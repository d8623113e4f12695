"""Suite ``agent``: a scripted deep agent with every data phase on vs the in-memory defaults.

The design brief's agent-level target: a scripted deep agent run with all phases on costs at
most 1.2x the same run on the in-memory defaults. One run is a new conversation (a new thread
and a new question, so every model call is a cache miss and a cache write, as for a user's new
request) of 7 model calls: ``write_todos``, ``write_file``, ``read_file``, ``edit_file``, ``ls``,
``write_todos`` again, then the answer.

* ours: `deepagents_redis.agent.create_deep_agent` with the LLM cache, todos, files and
  checkpoints in Redis (one connector; `RedisLLMCache`, `RedisTodoMiddleware`, `RedisBackend`,
  `RedisSaver`);
* baseline: deepagents' `create_deep_agent` with what a single process uses instead:
  `InMemoryCache` on the model, todos in graph state, `StateBackend` files, `InMemorySaver`.

Each run writes under its own folder (``/r<n>/``) since the Redis files outlive the thread.
Everything written lives under a random key prefix, deleted at the end.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from typing import Any

from deepagents_redis_benchmarks._harness import BenchContext, Result, drop_prefix

_NOTES = "# notes\n" + "line of notes\n" * 40


def _script() -> list[Any]:
    from deepagents_redis.testing.chat import tool_call
    from langchain_core.messages import AIMessage, BaseMessage

    def folder(messages: Sequence[BaseMessage]) -> str:
        # The run's number is the last word of its question ("... run 17").
        return f"/r{_first_human(messages).split()[-1]}"

    def step(build: Any) -> Any:
        return lambda messages: build(folder(messages))

    plan = [
        {"content": "draft notes", "status": "in_progress"},
        {"content": "revise notes", "status": "pending"},
        {"content": "list files", "status": "pending"},
    ]
    done = [{**item, "status": "completed"} for item in plan]
    return [
        tool_call("write_todos", {"todos": plan}, "t1"),
        step(
            lambda d: tool_call(
                "write_file", {"file_path": f"{d}/notes.md", "content": _NOTES}, "f1"
            )
        ),
        step(lambda d: tool_call("read_file", {"file_path": f"{d}/notes.md"}, "f2")),
        step(
            lambda d: tool_call(
                "edit_file",
                {
                    "file_path": f"{d}/notes.md",
                    "old_string": "# notes",
                    "new_string": "# revised notes",
                },
                "f3",
            )
        ),
        step(lambda d: tool_call("ls", {"path": d}, "f4")),
        tool_call("write_todos", {"todos": done}, "t2"),
        AIMessage("done: notes drafted, revised and listed"),
    ]


def _first_human(messages: Sequence[Any]) -> str:
    from langchain_core.messages import HumanMessage

    return next(str(m.content) for m in messages if isinstance(m, HumanMessage))


def run(ctx: BenchContext) -> list[Result]:
    """Measure the all-phases agent run against the in-memory defaults."""
    from deepagents import create_deep_agent as upstream
    from deepagents_redis.agent import close_redis, create_deep_agent
    from deepagents_redis.core import RedisSettings
    from deepagents_redis.testing.chat import ScriptedChatModel
    from langchain.agents.middleware import TodoListMiddleware
    from langchain_core.caches import InMemoryCache
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.memory import InMemorySaver

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    settings = RedisSettings(url=ctx.url, key_prefix=prefix)
    redis_model = ScriptedChatModel(script=_script(), by_turn=True)
    memory_model = ScriptedChatModel(script=_script(), by_turn=True, cache=InMemoryCache())
    ours = create_deep_agent(
        model=redis_model,
        redis_settings=settings,
        redis_cache=True,
        redis_todos=True,
        redis_fs=True,
        redis_checkpointer=True,
    )
    # deepagents 0.7 adds no todo tool by itself: the in-memory default is langchain's own.
    base = upstream(
        model=memory_model, middleware=[TodoListMiddleware()], checkpointer=InMemorySaver()
    )
    counter = itertools.count()

    def one(agent: Any) -> None:
        n = next(counter)
        agent.invoke(
            {"messages": [HumanMessage(f"draft, revise and list notes, run {n}")]},
            {"configurable": {"thread_id": f"agent-{n}"}},
        )

    try:
        o, b = ctx.compare(
            lambda: one(ours), lambda: one(base), iterations=ctx.n(100), warmup=ctx.n(10)
        )
    finally:
        close_redis(ours)
        drop_prefix(ctx.url, prefix)
    return [
        Result(
            "scripted deep agent run, every phase on",
            o,
            "same run, in-memory defaults",
            b,
            notes=(
                "7 model calls (each a cache miss and write), 2 write_todos, write/read/edit/ls "
                "of a 0.5 KB file, a checkpoint per step; ours: RedisLLMCache, "
                "RedisTodoMiddleware, RedisBackend, RedisSaver on one connector; baseline: "
                "InMemoryCache, todos in state, StateBackend, InMemorySaver"
            ),
        )
    ]
