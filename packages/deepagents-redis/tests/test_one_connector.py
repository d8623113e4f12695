"""One connector per agent, closed by `close_redis` / `redis_agent` (issue 9 §1).

Before: every phase built its own connector, so an agent with cache, todos and fs on held
up to four pools and sent four `INFO cluster` probes, and nothing could close them.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from deepagents_redis.agent import aclose_redis, close_redis, create_deep_agent, redis_agent
from deepagents_redis.core import ConfigurationError, RedisConnector, RedisSettings
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

pytestmark = pytest.mark.integration

PLAN = [{"content": "write notes", "status": "in_progress"}]


def _model() -> ScriptedChatModel:
    return ScriptedChatModel(
        script=[
            tool_call("write_todos", {"todos": PLAN}, "t1"),
            tool_call("write_file", {"file_path": "/notes.md", "content": "hello"}, "f1"),
            AIMessage("done"),
        ]
    )


def _info_calls(observer: Any) -> int:
    stats = observer.info("commandstats")
    return int(stats.get("cmdstat_info", {}).get("calls", 0))


def _ours(observer: Any, before: set[int]) -> set[int]:
    return {int(c["id"]) for c in observer.client_list()} - before


def _closed(observer: Any, before: set[int], opened: set[int]) -> bool:
    """Whether the server has dropped every connection in `opened`.

    The server notices a closed socket on its next event-loop turn, so a CLIENT LIST sent
    right after close() may still show it: poll (bounded) instead of racing.
    """
    for _ in range(100):
        if not (_ours(observer, before) & opened):
            return True
        time.sleep(0.02)
    return False


def test_every_phase_shares_one_connector_and_close_redis_closes_it(
    redis_url: str, key_prefix: str, redis_client: Any
) -> None:
    settings = RedisSettings(url=redis_url, key_prefix=key_prefix)  # cluster="auto": probes
    before = {int(c["id"]) for c in redis_client.client_list()}
    probes = _info_calls(redis_client)
    agent = create_deep_agent(
        model=_model(),
        checkpointer=InMemorySaver(),
        redis_settings=settings,
        redis_cache=True,
        redis_todos=True,
        redis_fs=True,
    )
    result = agent.invoke({"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": "a"}})
    assert result["messages"][-1].content == "done"
    # One cluster probe for the whole agent, plus one INFO for each data phase's eviction
    # check (todos, fs), not counting the observer's own first INFO. Before: one probe per
    # phase too (3 + 2).
    assert _info_calls(redis_client) - probes - 1 <= 3
    opened = _ours(redis_client, before)
    assert opened, "the agent holds connections"
    close_redis(agent)
    assert _closed(redis_client, before, opened)
    close_redis(agent)  # twice is harmless


def test_redis_agent_closes_on_exit_and_a_passed_connector_stays_open(
    redis_url: str, key_prefix: str, redis_client: Any
) -> None:
    settings = RedisSettings(url=redis_url, key_prefix=key_prefix)
    before = {int(c["id"]) for c in redis_client.client_list()}
    with redis_agent(
        model=_model(), checkpointer=InMemorySaver(), redis_settings=settings, redis_todos=True
    ) as agent:
        agent.invoke({"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": "b"}})
        opened = _ours(redis_client, before)
        assert opened
    assert _closed(redis_client, before, opened)

    with RedisConnector(settings=settings) as shared:
        with redis_agent(
            model=_model(), checkpointer=InMemorySaver(), redis_connector=shared, redis_todos=True
        ) as agent:
            agent.invoke({"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": "c"}})
        assert shared.client().ping()  # the caller's connector is the caller's


async def test_async_close(redis_url: str, key_prefix: str) -> None:
    settings = RedisSettings(url=redis_url, key_prefix=key_prefix, cluster="off")
    agent = create_deep_agent(
        model=_model(), checkpointer=InMemorySaver(), redis_settings=settings, redis_fs=True
    )
    result = await agent.ainvoke(
        {"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": "d"}}
    )
    assert result["messages"][-1].content == "done"
    await aclose_redis(agent)
    async with redis_agent(
        model=_model(), checkpointer=InMemorySaver(), redis_settings=settings, redis_fs=True
    ) as again:
        await again.ainvoke(
            {"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": "e"}}
        )


def test_redis_connector_excludes_the_other_options(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="redis_connector= and redis_url="):
        create_deep_agent(
            model=_model(),
            redis_connector=RedisConnector(url=redis_url),
            redis_url=redis_url,
            redis_todos=True,
        )


def test_close_redis_from_a_copy_closes_the_agents_connections(
    redis_url: str, key_prefix: str, redis_client: Any
) -> None:
    # agent.with_config(...) is a new graph object: close_redis(copy) closed nothing, and
    # with only the copy kept (`create_deep_agent(...).with_config(...)`) the agent's
    # connections could not be closed at all.
    settings = RedisSettings(url=redis_url, key_prefix=key_prefix)
    before = {int(c["id"]) for c in redis_client.client_list()}
    copy = create_deep_agent(
        model=_model(), checkpointer=InMemorySaver(), redis_settings=settings, redis_todos=True
    ).with_config({"configurable": {"thread_id": "f"}})
    result = copy.invoke({"messages": [HumanMessage("go")]})
    assert result["messages"][-1].content == "done"
    opened = _ours(redis_client, before)
    assert opened, "the agent holds connections"
    close_redis(copy)
    assert _closed(redis_client, before, opened)
    close_redis(copy)  # twice is harmless


async def test_aclose_redis_from_a_wrapper_closes_the_agents_connections(
    redis_url: str, key_prefix: str, redis_client: Any
) -> None:
    settings = RedisSettings(url=redis_url, key_prefix=key_prefix)
    before = {int(c["id"]) for c in redis_client.client_list()}
    agent = create_deep_agent(
        model=_model(), checkpointer=InMemorySaver(), redis_settings=settings, redis_todos=True
    )
    wrapped = agent.with_config({"configurable": {"thread_id": "g"}}).with_retry()
    result = await wrapped.ainvoke({"messages": [HumanMessage("go")]})
    assert result["messages"][-1].content == "done"
    opened = _ours(redis_client, before)
    assert opened, "the agent holds connections"
    await aclose_redis(wrapped)
    assert _closed(redis_client, before, opened)
    close_redis(agent)  # already closed through the wrapper: nothing left to do
