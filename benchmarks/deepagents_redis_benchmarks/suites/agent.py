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

Beside it, the run's round-trip floor: the same in-memory run plus one redis-py ``PING`` for
each round trip ours makes (counted on a warm run: the cache's, todos' and files' ones as PINGs
before the run, and the checkpointer's as a PING in each call LangGraph makes to an
``InMemorySaver``, on the thread it makes it). What is left above the floor is our code.

Each run writes under its own folder (``/r<n>/``) since the Redis files outlive the thread.
Everything written lives under a random key prefix, deleted at the end.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from typing import Any

import redis

from deepagents_redis_benchmarks._harness import BenchContext, Result, drop_prefix
from deepagents_redis_benchmarks.suites.checkpoint import _pinging_saver

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

    one(ours)  # the first run loads the scripts: count a later one
    total, saver_calls = _count_commands(ours, lambda: one(ours))
    main = total - saver_calls
    if saver_calls <= 0 or main <= 0:
        # A floor built from a miscount would be silently wrong (it was once: counting
        # pool checkouts missed every command of core's command lane).
        raise RuntimeError(f"round trips miscounted: {total} in all, {saver_calls} saver calls")
    pinger = redis.Redis.from_url(ctx.url)  # the floor's one client (its saver's PINGs too)
    floor_model = ScriptedChatModel(script=_script(), by_turn=True, cache=InMemoryCache())
    floor_agent = upstream(
        model=floor_model,
        middleware=[TodoListMiddleware()],
        checkpointer=_pinging_saver(pinger),
    )

    def floor() -> None:
        # One round trip for each one our run makes outside the checkpointer (the cache's,
        # the todos', the files'), then the run: a PING per checkpoint call on LangGraph's
        # thread comes with the saver.
        for _ in range(main):
            pinger.ping()
        one(floor_agent)

    try:
        o, b = ctx.compare(
            lambda: one(ours), lambda: one(base), iterations=ctx.n(100), warmup=ctx.n(10)
        )
        f, b2 = ctx.compare(floor, lambda: one(base), iterations=ctx.n(100), warmup=ctx.n(10))
        o2, f2 = ctx.compare(lambda: one(ours), floor, iterations=ctx.n(100), warmup=ctx.n(10))
    finally:
        close_redis(ours)
        pinger.close()
        drop_prefix(ctx.url, prefix)
    counted = (
        f"ours makes {total} round trips per run: {saver_calls} checkpointer calls (on "
        f"LangGraph's checkpoint thread but one) and {main} for the cache, todos and files"
    )
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
                f"InMemoryCache, todos in state, StateBackend, InMemorySaver; {counted}"
            ),
        ),
        Result(
            "floor: scripted deep agent run, in-memory defaults + a PING per round trip of ours",
            f,
            "same run, in-memory defaults",
            b2,
            notes=(
                f"the least any networked store pays for this run's round trips: {main} PINGs "
                "before the run and one per checkpoint call where LangGraph makes it "
                f"(InMemorySaver + PING); {counted}"
            ),
        ),
        Result(
            "scripted deep agent run, every phase on",
            o2,
            "same run, in-memory defaults + a PING per round trip of ours (the floor)",
            f2,
            notes=counted,
        ),
    ]


def _count_commands(agent: Any, run: Any) -> tuple[int, int]:
    """Round trips one run of `agent` makes: all of them, and the checkpointer's calls.

    Round trips are counted as sends on the connector's connections (one per command,
    script call or pipeline, whatever the thread, whether the command took core's command
    lane or redis-py's pool); checkpointer calls as calls of the saver's methods (each is
    one round trip).
    """
    from deepagents_redis.agent._wiring import _OPENED, _key

    cls = _OPENED[_key(agent)].connector.client().connection_pool.connection_class
    saver = agent.checkpointer
    sends, saver_calls = itertools.count(), itertools.count()  # next() is thread-safe

    def counting(fn: Any, counter: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            next(counter)
            return fn(*args, **kwargs)

        return call

    names = ("put", "put_writes", "get_tuple", "list")
    own = cls.__dict__.get("send_packed_command")
    cls.send_packed_command = counting(cls.send_packed_command, sends)
    for name in names:
        setattr(saver, name, counting(getattr(saver, name), saver_calls))
    try:
        run()
    finally:
        if own is None:
            del cls.send_packed_command
        else:
            cls.send_packed_command = own
        for name in names:
            delattr(saver, name)
    return next(sends), next(saver_calls)
