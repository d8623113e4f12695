"""Review of 0b8bb83 / 5764630: op ids and actors for ordinary ids are unchanged, and digested
ids do not collide with their own digest text used as an id.

The expected strings were produced by the code before those commits (an op id that changed
for the same tool call would replay or miss across an upgrade).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

import pytest
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
from deepagents_redis.todos import RedisTodoMiddleware, RedisTodoRepository, TodoBackfill
from deepagents_redis.todos._reconcile import _op_id as backfill_op_id
from deepagents_redis.todos._scope import _op_id as call_op_id
from deepagents_redis.todos._scope import _ScopedRepository
from langchain.agents import create_agent
from langchain.agents.middleware import TodoListMiddleware
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

PAYLOAD = {"todos": [{"content": "a", "status": "pending"}]}
TODOS = [{"content": "a", "status": "pending"}]


def test_a_tool_calls_op_id_is_unchanged_for_ordinary_ids() -> None:
    assert (
        call_op_id("write_todos", "call_1", 3, PAYLOAD) == "write_todos:call_1:3:bfd46591a40ad8f6"
    )
    assert (
        call_op_id("update_todo", "toolu_01ABC", None, {"id": "t1", "status": "done"})
        == "update_todo:toolu_01ABC:None:a3bd3dd3fe1c240a"
    )
    # A long one was already named by its digest, the same digest.
    assert (
        call_op_id("write_todos", "c" * 257, 0, PAYLOAD)
        == "write_todos:a76381a76b5d3069cde3a22ac82239c9d65e8a510d6077f5de826c9d9cd094f3:0:"
        "bfd46591a40ad8f6"
    )
    # Up to 256 characters, and valid non-ASCII text, stay as they are.
    assert call_op_id("write_todos", "c" * 256, 0, PAYLOAD).startswith(f"write_todos:{'c' * 256}:")
    assert call_op_id("write_todos", "appel-é-🙂", 0, PAYLOAD).startswith(
        "write_todos:appel-é-🙂:0:"
    )


def test_a_backfills_op_id_is_unchanged_for_ordinary_thread_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=0))
    assert backfill_op_id("backfill", "thread-1", TODOS, 0) == (
        "backfill:thread-1:0:f6ea7663:00000000000000000000000000000000"
    )
    assert backfill_op_id("repair", "t" * 256, TODOS, 4) == (
        f"repair:{'t' * 256}:4:f6ea7663:00000000000000000000000000000000"
    )
    assert backfill_op_id("backfill", "fil-é-🙂", TODOS, 0).startswith("backfill:fil-é-🙂:0:")
    long = "t" * 257
    assert backfill_op_id("backfill", long, TODOS, 0).startswith(
        f"backfill:sha256-{hashlib.sha256(long.encode()).hexdigest()}:0:f6ea7663:"
    )


def test_an_actor_is_unchanged_for_ordinary_thread_ids() -> None:
    config: Any = {"configurable": {"thread_id": "th-1"}, "metadata": {"lc_agent_name": "agent"}}
    assert _ScopedRepository.actor(config, "todos") == "agent:th-1"
    assert _ScopedRepository.actor({"configurable": {"thread_id": "thé-🙂"}}, "todos") == (
        "todos:thé-🙂"
    )
    # A lone surrogate is shown escaped; only the log's label, never a key.
    assert _ScopedRepository.actor({"configurable": {"thread_id": "a\ud800"}}, "todos") == (
        "todos:a\\ud800"
    )


def test_backfill_op_ids_are_fresh_so_a_digest_and_its_text_never_share_one() -> None:
    # The thread tag of a long id equals a thread literally named by its digest text; the op
    # id's fresh uuid keeps the two writes apart (and their plans have separate keys).
    long = "x" * 300
    literal = "sha256-" + hashlib.sha256(long.encode()).hexdigest()
    one, two = (
        backfill_op_id("backfill", long, TODOS, 0),
        backfill_op_id("backfill", literal, TODOS, 0),
    )
    assert one.split(":")[1] == two.split(":")[1] == literal
    assert one != two
    assert re.fullmatch(r"backfill:sha256-[0-9a-f]{64}:0:[0-9a-f]{8}:[0-9a-f]{32}", one)


def _run_plain(saver: Any, thread: str, plan: list[dict[str, str]]) -> None:
    model = ScriptedChatModel(
        script=[tool_call("write_todos", {"todos": plan}, "w"), AIMessage("ok")]
    )
    graph = create_agent(model, middleware=[TodoListMiddleware()], checkpointer=saver)
    graph.invoke({"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": thread}})


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_threads_a_digest_or_an_escape_would_confuse_keep_their_own_plans(
    redis_target: Any, mode: str
) -> None:
    repo = RedisTodoRepository(
        client=redis_target.client,
        async_client=redis_target.async_client,
        settings=redis_target.settings,
    )
    long = f"long-{mode}-" + "x" * 400
    threads = [
        long,
        "sha256-" + hashlib.sha256(long.encode()).hexdigest(),  # its op-id tag, as an id
        f"lone-{mode}-\ud800",
        f"lone-{mode}-\\ud800",  # the surrogate's escape (the actor's text), as an id
    ]
    saver = InMemorySaver()
    plans = {t: [{"content": f"task {i}", "status": "pending"}] for i, t in enumerate(threads)}
    for thread in threads:
        _run_plain(saver, thread, plans[thread])
    backfill = TodoBackfill(repo, saver)
    report = await backfill.arun() if mode == "async" else backfill.run()
    assert report.failed == []
    assert report.written == len(threads)
    for thread in threads:
        assert repo.get(thread).as_langchain() == plans[thread]
        (change,) = repo.history(thread)
        assert change.op_id.startswith("backfill:")
    assert len({repo.plan_key(t) for t in threads}) == len(threads)


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_the_middleware_keeps_a_surrogate_thread_apart_from_its_escape(
    redis_target: Any, mode: str
) -> None:
    mw = RedisTodoMiddleware(
        client=redis_target.client,
        async_client=redis_target.async_client,
        settings=redis_target.settings,
    )
    threads = [f"mw-{mode}-\ud800", f"mw-{mode}-\\ud800"]
    for i, thread in enumerate(threads):
        plan = [{"content": f"step {i}", "status": "pending"}]
        model = ScriptedChatModel(
            script=[tool_call("write_todos", {"todos": plan}, "same-call"), AIMessage("ok")]
        )
        graph = create_agent(model, middleware=[mw], checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": thread}}
        inputs = {"messages": [HumanMessage("go")]}
        if mode == "async":
            await graph.ainvoke(inputs, config)
        else:
            graph.invoke(inputs, config)
        assert mw.repository.get(thread).as_langchain() == plan
    # The same tool call id on both threads wrote twice, once per plan.
    assert [mw.repository.get(t).version for t in threads] == [1, 1]
