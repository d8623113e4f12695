"""``deepagents_redis.agent.create_deep_agent``: deepagents' signature, flags, phase hooks."""

from __future__ import annotations

import inspect
from typing import Any

import deepagents
import pytest
from deepagents_redis import agent as agent_pkg
from deepagents_redis.agent import (
    AgentBuild,
    AgentRedisSettings,
    Phase,
    _phases,
    create_deep_agent,
    resolve_flags,
)
from deepagents_redis.testing.chat import ScriptedChatModel
from langchain_core.messages import AIMessage, HumanMessage


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for phase in ("CACHE", "TODOS", "FS"):
        monkeypatch.delenv(f"DEEPAGENTS_REDIS_{phase}_ENABLED", raising=False)


def test_signature_mirrors_deepagents() -> None:
    ours = inspect.signature(create_deep_agent).parameters
    upstream = inspect.signature(deepagents.create_deep_agent).parameters
    for name, param in upstream.items():
        assert name in ours, name
        assert ours[name].kind == param.kind, name
        assert ours[name].default == param.default, name
    extra = [name for name in ours if name not in upstream]
    assert extra
    for name in extra:
        assert name.startswith("redis_")
        assert ours[name].kind is inspect.Parameter.KEYWORD_ONLY


def test_no_phase_passes_through_and_runs() -> None:
    model = ScriptedChatModel(script=[AIMessage(content="all done")])
    graph = create_deep_agent(model, system_prompt="be brief")
    result = graph.invoke({"messages": [HumanMessage(content="hi")]})
    assert result["messages"][-1].content == "all done"


def test_every_phase_is_off_by_default() -> None:
    flags = resolve_flags()
    assert flags.enabled_phases() == []


def test_flags_from_env_then_kwargs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_CACHE_ENABLED", "true")
    monkeypatch.setenv("DEEPAGENTS_REDIS_FS_ENABLED", "1")
    assert resolve_flags().enabled_phases() == ["cache", "fs"]
    # Keyword arguments beat the environment.
    assert resolve_flags(redis_cache=False).enabled_phases() == ["fs"]
    assert resolve_flags(redis_todos=True).enabled_phases() == ["cache", "todos", "fs"]


def test_flags_object_is_not_re_read_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    flags = AgentRedisSettings(todos_enabled=True)
    monkeypatch.setenv("DEEPAGENTS_REDIS_CACHE_ENABLED", "true")
    assert resolve_flags(redis_flags=flags).enabled_phases() == ["todos"]
    assert resolve_flags(redis_flags=flags, redis_fs=True).enabled_phases() == ["todos", "fs"]


def test_phases_see_flags_and_one_connector_and_edit_kwargs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[AgentBuild] = []

    def wire(build: AgentBuild) -> list[str]:
        seen.append(build)
        build.kwargs["name"] = "wired"
        return ["test phase ran"]

    captured: dict[str, Any] = {}

    class Graph:
        pass

    graph = Graph()

    def fake_upstream(**kwargs: Any) -> Graph:
        captured.update(kwargs)
        return graph

    upstream_params = set(inspect.signature(deepagents.create_deep_agent).parameters)
    test_phase = Phase("todos", "json", "-", "todos", lambda f: f.todos_enabled, wire)
    monkeypatch.setattr(_phases, "PHASES", (test_phase,))
    monkeypatch.setattr(deepagents, "create_deep_agent", fake_upstream)
    middleware = ("m1",)
    result = create_deep_agent(
        "openai:gpt-x",
        middleware=middleware,
        redis_url="redis://example:6379/0",
        redis_todos=True,
    )
    assert result is graph
    (build,) = seen
    assert build.flags.todos_enabled
    assert build.connector is not None
    assert build.connector.settings.url == "redis://example:6379/0"
    assert build.notes == ["test phase ran"]
    assert captured["name"] == "wired"
    assert captured["model"] == "openai:gpt-x"
    # The caller's middleware sequence is copied, never mutated by the wiring.
    assert captured["middleware"] == ["m1"]
    assert captured["middleware"] is not middleware
    assert set(captured) == upstream_params


def test_a_missing_phase_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepagents_redis.core import ConfigurationError

    missing = Phase("todos", "no_such_module_x", "dist-x", "extra-x", lambda f: True, list)
    monkeypatch.setattr(_phases, "PHASES", (missing,))
    with pytest.raises(ConfigurationError, match=r"pip install 'deepagents-redis\[extra-x\]'"):
        create_deep_agent("openai:gpt-x", redis_url="redis://example:6379/0", redis_todos=True)


def test_public_names() -> None:
    for name in agent_pkg.__all__:
        assert getattr(agent_pkg, name) is not None


def test_keyword_switches_over_a_flags_object_are_validated() -> None:
    # A string switch (read from a config file) means what it means in the environment,
    # whether or not a flags object is given: "false" is off, not a truthy string.
    from deepagents_redis.core import ConfigurationError

    flags = AgentRedisSettings(todos_enabled=True)
    resolved = resolve_flags(redis_flags=flags, redis_fs="false", redis_cache="1")  # type: ignore[arg-type]
    assert resolved.fs_enabled is False
    assert resolved.cache_enabled is True
    assert resolved.enabled_phases() == ["cache", "todos"]
    assert resolve_flags(redis_fs="false").enabled_phases() == []  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"redis_fs= \(keyword argument\)"):
        resolve_flags(redis_flags=flags, redis_fs="maybe")  # type: ignore[arg-type]
    assert flags.enabled_phases() == ["todos"]  # the caller's object is not changed


class _Part:
    """A component the wiring built; `close` may fail."""

    def __init__(self, name: str, closed: list[str], fails: bool = False) -> None:
        self.name, self.closed, self.fails = name, closed, fails

    def close(self) -> None:
        self.closed.append(self.name)
        if self.fails:
            raise RuntimeError(f"{self.name} failed to close")

    async def aclose(self) -> None:
        self.close()


def _wired_with_failing_close(
    monkeypatch: pytest.MonkeyPatch, closed: list[str], *, upstream_fails: bool = False
) -> Any:
    def wire(build: AgentBuild) -> list[str]:
        build.own(_Part("first", closed))
        build.own(_Part("second", closed, fails=True))
        build.own(_Part("third", closed))
        connector = build.shared()
        real_close, real_aclose = connector.close, connector.aclose

        def close() -> None:
            if closed[-1:] != ["connector"]:  # aclose() ends with close(): one close
                closed.append("connector")
            real_close()

        async def aclose() -> None:
            closed.append("connector")
            await real_aclose()

        monkeypatch.setattr(connector, "close", close)
        monkeypatch.setattr(connector, "aclose", aclose)
        return []

    class Graph:
        pass

    def fake_upstream(**kwargs: Any) -> Graph:
        if upstream_fails:
            raise ValueError("deepagents refused an argument")
        return Graph()

    phase = Phase("todos", "json", "-", "todos", lambda f: f.todos_enabled, wire)
    monkeypatch.setattr(_phases, "PHASES", (phase,))
    monkeypatch.setattr(deepagents, "create_deep_agent", fake_upstream)
    return create_deep_agent("openai:gpt-x", redis_url="redis://example:6379/0", redis_todos=True)


def test_close_redis_closes_everything_when_one_close_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A component whose close() raised stopped close_redis there: the components before it
    # in close order and the agent's connector (its pools) stayed open, with nothing to
    # close them any more (the agent was already forgotten).
    from deepagents_redis.agent import close_redis

    closed: list[str] = []
    agent = _wired_with_failing_close(monkeypatch, closed)
    with pytest.raises(RuntimeError, match="second failed to close"):
        close_redis(agent)
    assert closed == ["third", "second", "first", "connector"]


async def test_aclose_redis_closes_everything_when_one_close_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from deepagents_redis.agent import aclose_redis

    closed: list[str] = []
    agent = _wired_with_failing_close(monkeypatch, closed)
    with pytest.raises(RuntimeError, match="second failed to close"):
        await aclose_redis(agent)
    assert closed == ["third", "second", "first", "connector"]


def test_a_failed_build_closes_everything_and_raises_its_own_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # deepagents refusing an argument: the build's error is what the caller sees (a close
    # failure on the way out replaced it), and nothing stays open.
    closed: list[str] = []
    with pytest.raises(ValueError, match="deepagents refused"):
        _wired_with_failing_close(monkeypatch, closed, upstream_fails=True)
    assert closed == ["third", "second", "first", "connector"]


def test_what_the_wiring_decided_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    # Each phase's decisions (kept your backend, kept your checkpointer...) went into a
    # list nobody read: a user who turned a phase on and saw no effect had nothing to go on.
    from deepagents.backends import StateBackend
    from deepagents_redis.agent import close_redis

    model = ScriptedChatModel(script=[AIMessage(content="done")])
    with caplog.at_level("INFO", logger="deepagents_redis.agent"):
        agent = create_deep_agent(
            model, backend=StateBackend(), redis_url="redis://example:6379/0", redis_fs=True
        )
    close_redis(agent)
    assert "fs: kept the caller's backend (StateBackend)" in caplog.text


def test_cache_on_without_a_model_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # redis_cache=True with model=None (deepagents' deprecated default model) cached nothing,
    # and said so only in that unread list.
    from deepagents_redis.cache import CacheSettings

    build = AgentBuild(kwargs={"model": None, "cache": None}, flags=AgentRedisSettings())
    with caplog.at_level("WARNING", logger="deepagents_redis.agent"):
        _phases.wire_cache(build, CacheSettings(node_cache_enabled=False))
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "model=None" in caplog.text
    assert build.components == []
