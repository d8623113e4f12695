"""``create_deep_agent(redis_todos=True)``: the plan lives in Redis."""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.agent import AgentBuild, AgentRedisSettings, create_deep_agent
from deepagents_redis.agent._phases import wire_todos
from deepagents_redis.core import RedisConnector, RedisSettings
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
from deepagents_redis.todos import RedisTodoMiddleware, RedisTodoRepository, TodosSettings
from langchain.agents.middleware import TodoListMiddleware
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

pytestmark = pytest.mark.integration

PLAN = [{"content": "a", "status": "in_progress"}, {"content": "b", "status": "pending"}]


def test_redis_todos_flag_puts_the_plan_in_redis(redis_url: str, key_prefix: str) -> None:
    settings = RedisSettings(url=redis_url, key_prefix=key_prefix)
    model = ScriptedChatModel(
        script=[tool_call("write_todos", {"todos": PLAN}, "w"), AIMessage("x")]
    )
    graph = create_deep_agent(
        model=model, checkpointer=InMemorySaver(), redis_settings=settings, redis_todos=True
    )
    result = graph.invoke({"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": "t"}})
    assert result["todos"] == PLAN
    repo = RedisTodoRepository(settings=settings)
    try:
        assert repo.get("t").as_langchain() == PLAN
    finally:
        repo.close()


def test_wiring_replaces_langchains_middleware_and_equips_subagents() -> None:
    custom = TodoListMiddleware(system_prompt="plan carefully")
    spec: dict[str, Any] = {"name": "w", "description": "d", "system_prompt": "p"}
    kwargs: dict[str, Any] = {"middleware": [custom], "subagents": [spec]}
    connector = RedisConnector(settings=RedisSettings(url="redis://127.0.0.1:1/0"))
    build = AgentBuild(
        kwargs=kwargs, flags=AgentRedisSettings(todos_enabled=True), connector=connector
    )
    notes = wire_todos(build, TodosSettings(subagent_tools=True))
    (mw,) = kwargs["middleware"]
    assert isinstance(mw, RedisTodoMiddleware)
    assert mw.repository.connector is connector
    assert mw.system_prompt == "plan carefully"
    assert [m.name for m in kwargs["subagents"][0]["middleware"]] == ["RedisTodoSubagentMiddleware"]
    assert "middleware" not in spec  # the caller's spec is not mutated
    assert len(notes) == 2
    # A RedisTodoMiddleware the caller passed is kept as is.
    again = AgentBuild(
        kwargs={"middleware": [mw]},
        flags=AgentRedisSettings(todos_enabled=True),
        connector=connector,
    )
    wire_todos(again, TodosSettings())
    assert again.kwargs["middleware"] == [mw]
    assert again.components == []  # nothing built, nothing to close
