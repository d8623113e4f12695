"""The cache phase in ``create_deep_agent`` and in the demo (owned by the cache helper)."""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.agent import AgentBuild, AgentRedisSettings, create_deep_agent
from deepagents_redis.agent._phases import wire_cache
from deepagents_redis.cache import CacheSettings, RedisLLMCache, RedisNodeCache
from deepagents_redis.cli._demo import DemoContext
from deepagents_redis.cli._demo_cache import demo_model
from deepagents_redis.core import RedisConnector
from langchain_core.messages import HumanMessage


def _build(kwargs: dict[str, Any], redis_settings: Any) -> AgentBuild:
    return AgentBuild(
        kwargs=kwargs,
        flags=AgentRedisSettings(cache_enabled=True),
        connector=RedisConnector(settings=redis_settings),
    )


pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENABLED", "NAMESPACE", "NODE_CACHE_ENABLED", "TTL_SECONDS"):
        monkeypatch.delenv(f"DEEPAGENTS_REDIS_CACHE_{name}", raising=False)


def test_second_agent_run_is_served_from_the_cache(redis_settings: Any, redis_client: Any) -> None:
    model = demo_model()
    agent = create_deep_agent(
        model, redis_settings=redis_settings, redis_client=redis_client, redis_cache=True
    )
    question = {"messages": [HumanMessage(content="plan it")]}
    first = agent.invoke(question)
    assert model.calls == [0, 1]
    second = agent.invoke(question)
    assert model.calls == [0, 1]  # no new model call
    assert first["messages"][-1].content == second["messages"][-1].content
    # The caller's model object was copied, not changed.
    assert model.cache is None


def test_cache_flag_from_environment(
    redis_settings: Any, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_CACHE_ENABLED", "1")
    monkeypatch.setenv("DEEPAGENTS_REDIS_CACHE_NAMESPACE", "from-env")
    model = demo_model()
    kwargs: dict[str, Any] = {"model": model, "cache": None}
    build = _build(kwargs, redis_settings)
    notes = wire_cache(build)
    assert isinstance(kwargs["model"].cache, RedisLLMCache)
    assert kwargs["model"].cache.namespace == "from-env"
    assert kwargs["model"].cache.connector is build.connector
    assert kwargs["cache"] is None
    assert any("LLM cache" in n for n in notes)
    assert build.components == [kwargs["model"].cache]
    kwargs["model"].cache.close()
    build.shared().close()
    # The flag comes from the environment.
    agent = create_deep_agent(model, redis_settings=redis_settings, redis_client=redis_client)
    agent.invoke({"messages": [HumanMessage(content="x")]})
    agent.invoke({"messages": [HumanMessage(content="x")]})
    assert model.calls == [0, 1]


def test_string_model_goes_through_init_chat_model(
    redis_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "not-a-real-key")
    kwargs: dict[str, Any] = {"model": "anthropic:claude-sonnet-4-5", "cache": None}
    build = _build(kwargs, redis_settings)
    wire_cache(build)
    assert isinstance(kwargs["model"].cache, RedisLLMCache)
    build.shared().close()


def test_subagent_models_are_cached_too(redis_settings: Any, redis_client: Any) -> None:
    # deepagents builds a declarative subagent on its spec's own model: with the cache phase
    # on, the main model's calls were cached and every call of such a subagent reached it.
    from deepagents_redis.agent import close_redis
    from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
    from langchain_core.messages import AIMessage

    def researched(messages: Any) -> AIMessage:
        # A fresh message per call: deepagents names the subagent's reply in place, which
        # would change a scripted message object (and so the model's cache key) for run 2.
        return AIMessage(content="research done")

    sub_model = ScriptedChatModel(script=[researched], by_turn=True)
    researcher = {
        "name": "researcher",
        "description": "Researches one topic.",
        "system_prompt": "Do the research.",
        "model": sub_model,
    }
    model = ScriptedChatModel(
        script=[
            tool_call("task", {"description": "research it", "subagent_type": "researcher"}, "t1"),
            AIMessage(content="thanks"),
        ],
        by_turn=True,
    )
    agent = create_deep_agent(
        model,
        subagents=[researcher],
        redis_settings=redis_settings,
        redis_client=redis_client,
        redis_cache=True,
    )
    try:
        question = {"messages": [HumanMessage(content="plan it")]}
        first = agent.invoke(question)
        assert (model.calls, sub_model.calls) == ([0, 1], [0])
        second = agent.invoke(question)
        assert (model.calls, sub_model.calls) == ([0, 1], [0])  # no new call of either
        assert first["messages"][-1].content == second["messages"][-1].content == "thanks"
    finally:
        close_redis(agent)
    # The caller's spec and model object were copied, not changed.
    assert researcher["model"] is sub_model
    assert sub_model.cache is None


def test_subagent_string_models_share_the_agents_cache(
    redis_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deepagents_redis.testing.chat import ScriptedChatModel

    monkeypatch.setenv("ANTHROPIC_API_KEY", "not-a-real-key")
    compiled = {"name": "remote", "description": "d", "runnable": object()}
    inherits = {"name": "plain", "description": "d", "system_prompt": "p"}
    named = {"name": "named", "description": "d", "system_prompt": "p", "model": "anthropic:x-1"}
    kwargs: dict[str, Any] = {
        "model": ScriptedChatModel(script=[]),
        "subagents": [named, inherits, compiled],
        "cache": None,
    }
    build = _build(kwargs, redis_settings)
    notes = wire_cache(build)
    (llm_cache,) = build.components
    assert kwargs["model"].cache is llm_cache
    sub_named, sub_plain, sub_compiled = kwargs["subagents"]
    assert sub_named["model"].cache is llm_cache
    assert named["model"] == "anthropic:x-1"  # the caller's spec is not changed
    assert sub_plain is inherits  # no model of its own: runs on the cached main model
    assert sub_compiled is compiled
    assert "cache: LLM cache on subagent 'named''s model" in notes
    assert any("'remote' is a compiled graph" in n for n in notes)
    build.shared().close()


def test_node_cache_option(redis_settings: Any) -> None:
    kwargs: dict[str, Any] = {"model": None, "cache": None}
    build = _build(kwargs, redis_settings)
    notes = wire_cache(build, CacheSettings(node_cache_enabled=True))
    assert isinstance(kwargs["cache"], RedisNodeCache)
    assert any("model=None" in n for n in notes)
    build.shared().close()


def test_demo_section_prints_model_calls(redis_settings: Any) -> None:
    from deepagents_redis.cli import _demo_cache

    lines: list[str] = []
    connector = RedisConnector(settings=redis_settings)
    try:
        ctx = DemoContext(
            connector=connector, url=str(redis_settings.url), source="test", out=lines.append
        )
        _demo_cache.run(ctx)
    finally:
        connector.close()
    assert ctx.facts["cache_model_calls"] == [2, 0]
    assert any("run 2: 0 model call(s)" in line for line in lines)


def _record_anthropic_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[Any]]:
    """Every ChatAnthropic call's messages (ids left out); each answers 'done', offline."""
    from langchain_anthropic import ChatAnthropic
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    sent: list[list[Any]] = []

    def generate(self: Any, messages: list[Any], *args: Any, **kwargs: Any) -> ChatResult:
        sent.append([m.model_dump(exclude={"id"}) for m in messages])
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="done"))])

    monkeypatch.setenv("ANTHROPIC_API_KEY", "not-a-real-key")
    monkeypatch.setattr(ChatAnthropic, "_generate", generate)
    return sent


@pytest.mark.parametrize(
    ("name", "cached"), [("anthropic:claude-sonnet-4-6", True), ("claude-sonnet-4-6", False)]
)
def test_a_string_model_keeps_the_harness_profile_deepagents_gives_it(
    name: str,
    cached: bool,
    redis_settings: Any,
    redis_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # deepagents picks a harness profile for a string model by the name as written, for a
    # model object by its provider and identifier. 'claude-sonnet-4-6' names none; the
    # ChatAnthropic built from it is 'anthropic:claude-sonnet-4-6', which has a prompt
    # suffix: with the cache on (a model object), the agent's system prompt changed.
    import deepagents
    from deepagents_redis.agent import close_redis

    sent = _record_anthropic_calls(monkeypatch)
    question = {"messages": [HumanMessage(content="plan it")]}
    deepagents.create_deep_agent(name).invoke(question)
    with caplog.at_level("WARNING", logger="deepagents_redis.agent"):
        agent = create_deep_agent(
            name, redis_settings=redis_settings, redis_client=redis_client, redis_cache=True
        )
    try:
        agent.invoke(question)
        assert sent[1] == sent[0]  # the very prompt deepagents sends, system prompt and all
        agent.invoke(question)
    finally:
        close_redis(agent)
    if cached:
        assert len(sent) == 2  # the second run was served from the cache
        assert caplog.records == []
    else:  # left to deepagents as given, uncached, and a warning says why
        assert len(sent) == 3
        (record,) = caplog.records
        assert f"cache: model {name!r} left uncached" in record.getMessage()
        assert "name it 'anthropic:claude-sonnet-4-6'" in record.getMessage()


def test_a_subagent_string_model_keeps_its_harness_profile(
    redis_settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from deepagents_redis.testing.chat import ScriptedChatModel

    monkeypatch.setenv("ANTHROPIC_API_KEY", "not-a-real-key")
    bare = {"name": "bare", "description": "d", "system_prompt": "p", "model": "claude-sonnet-4-6"}
    kwargs: dict[str, Any] = {
        "model": ScriptedChatModel(script=[]),
        "subagents": [bare],
        "cache": None,
    }
    build = _build(kwargs, redis_settings)
    with caplog.at_level("WARNING", logger="deepagents_redis.agent"):
        wire_cache(build)
    assert kwargs["subagents"] == [bare]  # passed on as given
    (record,) = caplog.records
    assert "subagent 'bare''s model 'claude-sonnet-4-6' left uncached" in record.getMessage()
    build.shared().close()


def test_merged_harness_profiles_compare_by_what_they_hold(
    redis_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A provider profile and a model profile that both add middleware merge into a new
    # closure on every lookup: the same name's two lookups are still the same profile.
    from deepagents.profiles.harness import harness_profiles as hp
    from langchain.agents.middleware import AgentMiddleware

    class First(AgentMiddleware):  # type: ignore[type-arg]
        pass

    class Second(AgentMiddleware):  # type: ignore[type-arg]
        pass

    hp._ensure_harness_profiles_loaded()
    monkeypatch.setitem(
        hp._HARNESS_PROFILES, "anthropic", hp.HarnessProfile(extra_middleware=[First()])
    )
    monkeypatch.setitem(
        hp._HARNESS_PROFILES,
        "anthropic:claude-x-1",
        hp.HarnessProfile(extra_middleware=[Second()]),
    )
    monkeypatch.setenv("ANTHROPIC_API_KEY", "not-a-real-key")
    kwargs: dict[str, Any] = {"model": "anthropic:claude-x-1", "cache": None}
    build = _build(kwargs, redis_settings)
    wire_cache(build)
    assert isinstance(kwargs["model"].cache, RedisLLMCache)
    build.shared().close()
