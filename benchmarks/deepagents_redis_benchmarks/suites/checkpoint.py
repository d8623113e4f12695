"""Suite ``checkpoint``: `RedisSaver` beside the checkpointers users would pick instead.

Over a thread that already holds 100 checkpoints (each: a 20-message history of ~4 KB and two
small channels, the messages changed at every step), interleaved call by call:

* ``put`` (a new checkpoint: the messages blob, a counter, metadata), ``get_tuple`` (the newest,
  with 2 pending writes) and ``list(limit=10)`` against LangGraph's `InMemorySaver`,
  `SqliteSaver` (a file in a temp dir) and `PostgresSaver` (127.0.0.1:5432, a throwaway
  database; rows skipped with a note when it is unreachable);
* ``get_tuple`` against a raw redis-py ``GET`` of as many bytes as the saver's reply carries
  (the floor for one round trip with that payload);
* a scripted deep agent run of 10 model steps (9 ``ls`` tool calls, then an answer; a new
  thread per run) with each checkpointer; beside its round-trip floor (an ``InMemorySaver``
  that also sends one PING per call LangGraph makes: what any networked saver pays for the
  ~45 calls LangGraph makes from its background thread); and the same run with ``ainvoke``.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import redis

from deepagents_redis_benchmarks._harness import BenchContext, Result
from deepagents_redis_benchmarks._postgres import throwaway_database

_HISTORY = 100


@contextlib.contextmanager
def _postgres_saver() -> Iterator[Any]:
    """A PostgresSaver on a database created for this run (dropped afterwards), or None."""
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
    except ImportError:
        yield None
        return
    with throwaway_database("ckpt") as url:
        if url is None:
            yield None
            return
        with PostgresSaver.from_conn_string(url) as pg:
            pg.setup()
            yield pg


def _messages(step: int) -> list[Any]:
    from langchain_core.messages import AIMessage, HumanMessage

    out: list[Any] = []
    for i in range(10):
        out.append(HumanMessage(f"question {i} at step {step}: " + "words " * 30))
        out.append(AIMessage(f"answer {i}: " + "more words " * 15))
    return out


class _Thread:
    """A thread of checkpoints written the way LangGraph writes them (versions, parents)."""

    def __init__(self, saver: Any, thread: str) -> None:
        self.saver = saver
        self.config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        self.step = 0
        self.versions: dict[str, Any] = {}

    def put(self) -> Any:
        from langgraph.checkpoint.base import empty_checkpoint

        self.step += 1
        new = {
            "messages": self.saver.get_next_version(self.versions.get("messages"), None),
            "step": self.saver.get_next_version(self.versions.get("step"), None),
        }
        if "config" not in self.versions:
            new["config"] = self.saver.get_next_version(None, None)
        self.versions.update(new)
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {
            "messages": _messages(self.step),
            "step": self.step,
            "config": {"model": "scripted", "temperature": 0},
        }
        checkpoint["channel_versions"] = dict(self.versions)
        checkpoint["versions_seen"] = {"agent": dict(self.versions)}
        metadata: Any = {"source": "loop", "step": self.step, "parents": {}}
        self.config = self.saver.put(self.config, checkpoint, metadata, new)
        return self.config


def _savers(stack: contextlib.ExitStack, url: str, prefix: str) -> dict[str, Any]:
    from deepagents_redis.checkpoint import RedisSaver
    from deepagents_redis.core import RedisSettings
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.sqlite import SqliteSaver

    ours = RedisSaver(settings=RedisSettings(url=url, key_prefix=prefix))
    stack.callback(ours.close)
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    conn = sqlite3.connect(tmp / "checkpoints.db", check_same_thread=False)
    stack.callback(conn.close)
    savers: dict[str, Any] = {
        "RedisSaver": ours,
        "InMemorySaver": InMemorySaver(),
        "SqliteSaver (file)": SqliteSaver(conn),
    }
    pg = stack.enter_context(_postgres_saver())
    if pg is not None:
        savers["PostgresSaver (127.0.0.1)"] = pg
    return savers


def run(ctx: BenchContext) -> list[Result]:
    """Measure put, get_tuple and list, and a scripted agent run, beside each alternative."""
    prefix = f"bench-ckpt-{uuid.uuid4().hex[:8]}"
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        savers = _savers(stack, ctx.url, prefix)
        threads = {
            name: _Thread(saver, f"bench-{uuid.uuid4().hex[:8]}") for name, saver in savers.items()
        }
        for thread in threads.values():
            for _ in range(ctx.n(_HISTORY) if ctx.smoke else _HISTORY):
                latest = thread.put()
            thread.saver.put_writes(latest, [("messages", _messages(0)[:1]), ("step", 1)], "task-1")
        ours = threads["RedisSaver"]
        others = [name for name in savers if name != "RedisSaver"]
        missing = (
            ""
            if any(n.startswith("Postgres") for n in savers)
            else " (PostgreSQL unreachable: its rows are missing)"
        )
        n = ctx.n(2000)

        def get(thread: _Thread) -> Callable[[], Any]:
            config = {"configurable": {"thread_id": thread.config["configurable"]["thread_id"]}}
            return lambda: thread.saver.get_tuple(config)

        def listing(thread: _Thread) -> Callable[[], Any]:
            config = {"configurable": {"thread_id": thread.config["configurable"]["thread_id"]}}
            return lambda: list(thread.saver.list(config, limit=10))

        note = f"thread of {_HISTORY}+ checkpoints, ~4 KB of messages each{missing}"
        for name in others:
            o, b = ctx.compare(ours.put, threads[name].put, iterations=n)
            results.append(Result("RedisSaver put", o, f"{name} put", b, notes=note))
        for name in others:
            o, b = ctx.compare(get(ours), get(threads[name]), iterations=n)
            results.append(Result("RedisSaver get_tuple", o, f"{name} get_tuple", b, notes=note))
        results.extend(_raw_floor(ctx, ours, get(ours), n))
        for name in others:
            o, b = ctx.compare(listing(ours), listing(threads[name]), iterations=ctx.n(500))
            results.append(
                Result("RedisSaver list(limit=10)", o, f"{name} list(limit=10)", b, notes=note)
            )
        results.extend(_agent_runs(ctx, savers, missing))
        results.extend(_big_conversation(ctx, prefix))
        for thread in threads.values():
            if hasattr(thread.saver, "delete_thread"):
                with contextlib.suppress(NotImplementedError):
                    thread.saver.delete_thread(thread.config["configurable"]["thread_id"])
    return results


def _raw_floor(ctx: BenchContext, ours: _Thread, get: Callable[[], Any], n: int) -> list[Result]:
    """``get_tuple`` beside a raw GET of as many bytes as its script reply carries."""
    from deepagents_redis.checkpoint._saver import _read_reply
    from deepagents_redis.checkpoint._scripts import READ

    saver = ours.saver
    keys = saver.keys.thread(ours.config["configurable"]["thread_id"])
    reply = READ(
        saver.connector.client(),
        keys=keys.all,
        args=["scan", "%_", "(%_\n", "[%_\t", 1, 256, ""],
    )

    def size(value: Any) -> int:
        if isinstance(value, bytes):
            return len(value)
        if isinstance(value, list):
            return sum(size(v) for v in value)
        return len(str(value))

    nbytes = size(reply)
    # the frames get_tuple revives (checkpoint, metadata, blobs, writes' values), as
    # (type, bytes) pairs for LangGraph's serializer
    entry = _read_reply(reply)[1]
    frames = [*msgpack.unpackb(entry[2], raw=False), *(blob for blob in entry[4] if blob)]
    frames += [msgpack.unpackb(v, raw=False)[2] for v in entry[5][1::2]]
    typed = [(f.split(b"\n", 1)[0].decode(), f.split(b"\n", 1)[1]) for f in frames]
    raw = redis.Redis.from_url(ctx.url)
    key = f"{saver.connector.keyspace.prefix}:raw-floor"
    raw.set(key, b"x" * nbytes)

    def floor() -> None:
        raw.get(key)
        for pair in typed:
            saver.serde.loads_typed(pair)

    try:
        o, b = ctx.compare(get, lambda: raw.get(key), iterations=n)
        o2, b2 = ctx.compare(get, floor, iterations=n)
    finally:
        raw.delete(key)
        raw.close()
    return [
        Result(
            "RedisSaver get_tuple",
            o,
            f"redis-py GET {nbytes} B (the same bytes)",
            b,
            notes=(
                "one EVALSHA; then 20 messages revived (core's fast_message, LangGraph's "
                "serializer for anything off its shape)"
            ),
        ),
        Result(
            "RedisSaver get_tuple",
            o2,
            f"GET {nbytes} B + LangGraph loads_typed of its {len(typed)} values",
            b2,
            notes=(
                "one round trip + revival by LangGraph's serializer (what a saver reviving "
                "with it pays; ours revives messages without its second validation pass)"
            ),
        ),
    ]


def conversation(pairs: int) -> list[Any]:
    """A conversation of `pairs` questions and answers (the thread suite's messages)."""
    messages: list[Any] = []
    for step in range(-(-pairs // 10)):
        messages += _messages(step)
    return messages[: 2 * pairs]


def conversation_ops(
    saver: Any, thread_id: str, messages: list[Any]
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """`put` (a new checkpoint holding `messages`, the child of the last) and `get_tuple`
    (the newest) of one thread of `saver`."""
    from langgraph.checkpoint.base import empty_checkpoint

    thread: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    state: dict[str, Any] = {"config": thread, "v": 0}

    def put() -> Any:
        state["v"] += 1
        new = {"messages": f"{state['v']:032}.0"}
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": messages}
        checkpoint["channel_versions"] = dict(new)
        metadata: Any = {"source": "loop", "step": state["v"], "parents": {}}
        state["config"] = saver.put(state["config"], checkpoint, metadata, new)
        return state["config"]

    return put, lambda: saver.get_tuple(thread)


def _big_conversation(ctx: BenchContext, prefix: str) -> list[Result]:
    """A long conversation's put and get_tuple: blobs around the scripts vs through them.

    ``script_blob_bytes`` (default 32 KiB) sends bigger blobs as plain HSET/HMGET; the
    baseline is the same saver with every blob through the scripts (the one-call path). The
    notes give each side's Redis server time per call (``INFO commandstats`` of the top-level
    commands, over a separate pass): what the other clients of one Redis wait for.
    """
    from deepagents_redis.checkpoint import RedisSaver
    from deepagents_redis.core import RedisSettings

    settings = RedisSettings(url=ctx.url, key_prefix=f"{prefix}-big")
    sides = {
        "around": RedisSaver(settings=settings),
        "inside": RedisSaver(settings=settings, script_blob_bytes=1 << 40),
    }
    raw = redis.Redis.from_url(ctx.url)
    messages = conversation(ctx.n(400))
    ops = {name: conversation_ops(saver, f"big-{name}", messages) for name, saver in sides.items()}
    puts = {name: put for name, (put, _) in ops.items()}
    gets = {name: get for name, (_, get) in ops.items()}

    def server_us(fn: Callable[[], Any], calls: int) -> float:
        raw.config_resetstat()
        for _ in range(calls):
            fn()
        stats = raw.info("commandstats")
        top = ("cmdstat_evalsha", "cmdstat_multi", "cmdstat_exec", "cmdstat_hmget")
        return sum(stats.get(k, {}).get("usec", 0) for k in top) / calls

    size = len(sides["around"].serde.dumps_typed(messages)[1])
    n = ctx.n(200)
    results: list[Result] = []
    try:
        for label, fns in (("put", puts), ("get_tuple", gets)):
            o, b = ctx.compare(fns["around"], fns["inside"], iterations=n)
            ours_us = server_us(fns["around"], max(10, n // 4))
            theirs_us = server_us(fns["inside"], max(10, n // 4))
            results.append(
                Result(
                    f"RedisSaver {label}, {len(messages)}-message conversation "
                    f"({size // 1024} KB blob)",
                    o,
                    f"same saver, every blob through the script (script_blob_bytes={1 << 40})",
                    b,
                    notes=(
                        f"Redis server time per call: ours {ours_us:.0f} µs, through the "
                        f"script {theirs_us:.0f} µs (INFO commandstats, top-level commands); "
                        "blobs past script_blob_bytes (32 KiB) go as plain HSET in the put's "
                        "MULTI and an HMGET after the read's script"
                    ),
                )
            )
    finally:
        for name, saver in sides.items():
            saver.delete_thread(f"big-{name}")
            saver.close()
        raw.close()
    return results


def _agent_runs(ctx: BenchContext, savers: dict[str, Any], missing: str) -> list[Result]:
    from deepagents import create_deep_agent
    from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
    from langchain_core.messages import AIMessage, HumanMessage

    def script() -> list[Any]:
        return [*(tool_call("ls", {"path": "/"}, f"c{i}") for i in range(9)), AIMessage("done")]

    counter = itertools.count()
    runs: dict[str, Callable[[], Any]] = {}
    used: dict[str, list[str]] = {}
    for name, saver in savers.items():
        model = ScriptedChatModel(script=script())
        agent = create_deep_agent(model=model, checkpointer=saver)
        used[name] = []

        def one(agent: Any = agent, model: Any = model, name: str = name) -> None:
            model.rewind()
            thread = f"agent-{next(counter)}"
            used[name].append(thread)
            agent.invoke(
                {"messages": [HumanMessage("look around")]}, {"configurable": {"thread_id": thread}}
            )

        runs[name] = one
    results = []
    for name in savers:
        if name == "RedisSaver":
            continue
        o, b = ctx.compare(runs["RedisSaver"], runs[name], iterations=ctx.n(100), warmup=ctx.n(10))
        results.append(
            Result(
                "scripted deep agent run, 10 steps, RedisSaver",
                o,
                f"same run, {name}",
                b,
                notes=f"9 ls tool calls + an answer; a new thread per run{missing}",
            )
        )
    results.extend(_agent_floor(ctx, runs, script, counter))
    results.extend(_async_agent_runs(ctx, savers["RedisSaver"], script, counter, used))
    ours = savers["RedisSaver"]
    for thread in used["RedisSaver"]:
        ours.delete_thread(thread)
    return results


def _pinging_saver(ping: redis.Redis) -> Any:
    """An InMemorySaver that also sends one PING on `ping` (the caller closes it) per call.

    The floor of any checkpointer that makes one network round trip per call: LangGraph
    calls ``put`` and ``put_writes`` from its background thread, and on a machine where
    waking a blocked thread is costly the wait itself, not the bytes, is what the run pays.
    """
    from langgraph.checkpoint.memory import InMemorySaver

    class PingingSaver(InMemorySaver):
        def put(self, *args: Any, **kwargs: Any) -> Any:
            ping.ping()
            return super().put(*args, **kwargs)

        def put_writes(self, *args: Any, **kwargs: Any) -> Any:
            ping.ping()
            return super().put_writes(*args, **kwargs)

        def get_tuple(self, *args: Any, **kwargs: Any) -> Any:
            ping.ping()
            return super().get_tuple(*args, **kwargs)

    return PingingSaver()


def _agent_floor(
    ctx: BenchContext,
    runs: dict[str, Callable[[], Any]],
    script: Callable[[], list[Any]],
    counter: Iterator[int],
) -> list[Result]:
    """The agent run beside its round-trip floor (InMemorySaver + one PING per call)."""
    from deepagents import create_deep_agent
    from deepagents_redis.testing.chat import ScriptedChatModel
    from langchain_core.messages import HumanMessage

    model = ScriptedChatModel(script=script())
    ping = redis.Redis.from_url(ctx.url)
    agent = create_deep_agent(model=model, checkpointer=_pinging_saver(ping))

    def floor() -> None:
        model.rewind()
        agent.invoke(
            {"messages": [HumanMessage("look around")]},
            {"configurable": {"thread_id": f"agent-{next(counter)}"}},
        )

    iterations, warmup = ctx.n(100), ctx.n(10)
    try:
        f, m = ctx.compare(floor, runs["InMemorySaver"], iterations=iterations, warmup=warmup)
        o, f2 = ctx.compare(runs["RedisSaver"], floor, iterations=iterations, warmup=warmup)
    finally:
        ping.close()
    note = "9 ls tool calls + an answer; ~45 checkpoint calls per run on LangGraph's thread"
    return [
        Result(
            "floor: scripted deep agent run, 10 steps, InMemorySaver + one PING per call",
            f,
            "same run, InMemorySaver",
            m,
            notes=note + "; the floor of any saver making one round trip per call",
        ),
        Result(
            "scripted deep agent run, 10 steps, RedisSaver",
            o,
            "same run, InMemorySaver + one PING per call (the round-trip floor)",
            f2,
            notes=note,
        ),
    ]


def _async_agent_runs(
    ctx: BenchContext,
    ours: Any,
    script: Callable[[], list[Any]],
    counter: Iterator[int],
    used: dict[str, list[str]],
) -> list[Result]:
    """The same run with ``ainvoke``: the saver's async methods on the asyncio client."""
    from deepagents import create_deep_agent
    from deepagents_redis.testing.chat import ScriptedChatModel
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.memory import InMemorySaver

    def runner(saver: Any, name: str) -> Callable[[], Any]:
        model = ScriptedChatModel(script=script())
        agent = create_deep_agent(model=model, checkpointer=saver)

        async def one() -> None:
            model.rewind()
            thread = f"agent-{next(counter)}"
            used.setdefault(name, []).append(thread)
            await agent.ainvoke(
                {"messages": [HumanMessage("look around")]}, {"configurable": {"thread_id": thread}}
            )

        return one

    o, b = ctx.acompare(
        runner(ours, "RedisSaver"),
        runner(InMemorySaver(), "InMemorySaver (async)"),
        iterations=ctx.n(100),
        warmup=ctx.n(10),
    )
    return [
        Result(
            "scripted deep agent run, 10 steps, RedisSaver, ainvoke",
            o,
            "same run, InMemorySaver, ainvoke",
            b,
            notes="9 ls tool calls + an answer; aput/aput_writes on the asyncio client",
        )
    ]
