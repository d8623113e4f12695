"""`create_deep_agent(..., redis_checkpointer=True)`: the conversation in Redis, one connector."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from deepagents_redis.agent import close_redis, create_deep_agent, redis_agent
from deepagents_redis.agent._wiring import _OPENED, _key
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.core import RedisSettings
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

pytestmark = pytest.mark.integration


def _model() -> ScriptedChatModel:
    return ScriptedChatModel(
        script=[
            tool_call("write_file", {"file_path": "/notes.md", "content": "hello"}, "f1"),
            AIMessage("done"),
            AIMessage("second answer"),
        ]
    )


def test_the_conversation_survives_the_agent_that_wrote_it(redis_url: str, key_prefix: str) -> None:
    settings = RedisSettings(url=redis_url, key_prefix=key_prefix)
    config = {"configurable": {"thread_id": f"t-{uuid.uuid4()}"}}
    with redis_agent(
        model=_model(), redis_settings=settings, redis_checkpointer=True, redis_fs=True
    ) as agent:
        saver = agent.checkpointer
        assert isinstance(saver, RedisSaver)
        # one connector for every phase: the agent's, which close_redis closes
        assert saver.connector is _OPENED[_key(agent)].connector
        assert not saver.owns_connector
        agent.invoke({"messages": [HumanMessage("go")]}, config)
    # another agent, another connection (another process): same thread, same history
    model = _model()
    model.script = [AIMessage("second answer")]
    with redis_agent(
        model=model, redis_settings=settings, redis_checkpointer=True, redis_fs=True
    ) as again:
        state = again.get_state(config)
        assert [m.content for m in state.values["messages"]][-1] == "done"
        result = again.invoke({"messages": [HumanMessage("and now?")]}, config)
        contents = [m.content for m in result["messages"]]
        assert contents[0] == "go"
        assert contents[-2:] == ["and now?", "second answer"]


def test_the_environment_flag_turns_it_on(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_CHECKPOINT_ENABLED", "true")
    agent = create_deep_agent(
        model=_model(), redis_settings=RedisSettings(url=redis_url, key_prefix=key_prefix)
    )
    try:
        assert isinstance(agent.checkpointer, RedisSaver)
    finally:
        close_redis(agent)


def test_a_checkpointer_you_pass_is_kept(redis_url: str, key_prefix: str) -> None:
    mine: Any = InMemorySaver()
    with redis_agent(
        model=_model(),
        checkpointer=mine,
        redis_settings=RedisSettings(url=redis_url, key_prefix=key_prefix),
        redis_checkpointer=True,
    ) as agent:
        assert agent.checkpointer is mine


def test_redis_observe_reports_the_agents_phases(redis_url: str, key_prefix: str) -> None:
    from deepagents_redis.core import NoOpInstrumentation, get_instrumentation
    from deepagents_redis.observe import OpenTelemetryInstrumentation, uninstrument

    try:
        with redis_agent(
            model=_model(),
            redis_settings=RedisSettings(url=redis_url, key_prefix=key_prefix),
            redis_checkpointer=True,
            redis_observe=True,
        ):
            assert isinstance(get_instrumentation(), OpenTelemetryInstrumentation)
    finally:
        uninstrument()
    assert isinstance(get_instrumentation(), NoOpInstrumentation)
