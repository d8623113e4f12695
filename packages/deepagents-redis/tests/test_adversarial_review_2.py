"""Adversarial review 2 of the one-call wiring: a refused build leaves nothing behind.

* A phase's own ``DEEPAGENTS_REDIS_<PHASE>_*`` settings (and the connection's
  ``DEEPAGENTS_REDIS_*``) holding a bad value are refused under the variable's name, before
  the agent's connector or any component is built; a mapping field's variable that is not
  JSON is a `ConfigurationError`, not pydantic-settings' bare `SettingsError`.
* A build that fails after ``redis_observe=True`` instrumented takes its instrumentation
  back (the process kept reporting, and later agents "kept" it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from deepagents_redis.agent import _wiring, close_redis, create_deep_agent
from deepagents_redis.core import ConfigurationError, RedisConnector, get_instrumentation
from deepagents_redis.testing.chat import ScriptedChatModel
from langchain_core.messages import AIMessage

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-value"


def _model() -> ScriptedChatModel:
    return ScriptedChatModel(script=[AIMessage("done")])


def _clients(observer: Any) -> set[int]:
    return {int(c["id"]) for c in observer.client_list()}


@pytest.fixture
def connectors_built(monkeypatch: pytest.MonkeyPatch) -> list[RedisConnector]:
    """Every connector `create_deep_agent` builds for an agent."""
    built: list[RedisConnector] = []

    class Counted(RedisConnector):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(_wiring, "RedisConnector", Counted)
    return built


# (variable, value, the phase switches that read it)
BAD_PHASE_SETTINGS = [
    ("DEEPAGENTS_REDIS_CACHE_TTL_SECONDS", SECRET, {"redis_cache": True}),
    ("DEEPAGENTS_REDIS_TODOS_MAX_ITEMS", SECRET, {"redis_cache": True, "redis_todos": True}),
    ("DEEPAGENTS_REDIS_FS_CHUNK_SIZE", "-1", {"redis_todos": True, "redis_fs": True}),
    ("DEEPAGENTS_REDIS_COORD_NAMESPACE", "", {"redis_fs": True, "redis_coord": True}),
    ("DEEPAGENTS_REDIS_CHECKPOINT_TTL_SECONDS", "-5", {"redis_checkpointer": True}),
]


@pytest.mark.parametrize(("variable", "value", "switches"), BAD_PHASE_SETTINGS)
def test_a_bad_phase_setting_names_its_variable_and_builds_nothing(
    variable: str,
    value: str,
    switches: dict[str, bool],
    redis_url: str,
    redis_client: Any,
    connectors_built: list[RedisConnector],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before: "invalid CacheSettings: ttl_seconds: ...", found only when the phase was
    # wired, after the agent's connector and the earlier phases' components were built.
    monkeypatch.setenv(variable, value)
    before = _clients(redis_client)
    with pytest.raises(ConfigurationError, match=rf"{variable} \(environment variable\)") as info:
        create_deep_agent(_model(), redis_url=redis_url, **switches)
    assert SECRET not in str(info.value)  # the value is never repeated
    assert connectors_built == []  # refused before anything was built
    assert _clients(redis_client) - before == set()


def test_a_mapping_setting_that_is_not_json_is_a_configuration_error(
    redis_url: str,
    connectors_built: list[RedisConnector],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pydantic-settings parses a dict field's variable as JSON itself and raised its own
    # SettingsError (a bare ValueError) straight out of create_deep_agent.
    monkeypatch.setenv("DEEPAGENTS_REDIS_FS_TTL_RULES", "{" + SECRET)
    with pytest.raises(
        ConfigurationError, match=r"DEEPAGENTS_REDIS_FS_TTL_RULES \(environment variable\)"
    ) as info:
        create_deep_agent(_model(), redis_url=redis_url, redis_fs=True)
    assert SECRET not in str(info.value)
    assert connectors_built == []


def test_a_bad_connection_setting_names_its_variable(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The URL is a keyword here; the socket timeout comes from the environment.
    monkeypatch.setenv("DEEPAGENTS_REDIS_SOCKET_TIMEOUT", SECRET)
    with pytest.raises(
        ConfigurationError, match=r"DEEPAGENTS_REDIS_SOCKET_TIMEOUT \(environment variable\)"
    ) as info:
        create_deep_agent(_model(), redis_url=redis_url, redis_todos=True)
    assert SECRET not in str(info.value)


def test_a_keyword_value_keeps_its_field_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # A bad value given as a keyword is not blamed on an environment variable that is set
    # too (the keyword won; the variable was never read).
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(ConfigurationError) as info:
        create_deep_agent(_model(), redis_url="redis://127.0.0.1:notaport/0", redis_todos=True)
    assert "environment variable" not in str(info.value)


def test_good_phase_settings_from_the_environment_still_reach_the_phase(
    redis_url: str,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Read once before the build now: the phase must get those settings, not defaults.
    from deepagents_redis.core import RedisSettings

    monkeypatch.setenv("DEEPAGENTS_REDIS_FS_NAMESPACE", "review-two")
    monkeypatch.setenv("DEEPAGENTS_REDIS_CHECKPOINT_TTL_SECONDS", "120")
    settings = RedisSettings(url=redis_url, key_prefix=key_prefix)
    with caplog.at_level("INFO", logger="deepagents_redis.agent"):
        agent = create_deep_agent(
            _model(), redis_settings=settings, redis_fs=True, redis_checkpointer=True
        )
    close_redis(agent)
    assert "fs: RedisBackend, namespace 'review-two'" in caplog.text
    assert "ttl 120 s" in caplog.text


# -- observe ---------------------------------------------------------------------------------


@pytest.fixture
def no_instrumentation() -> Iterator[None]:
    observe = pytest.importorskip("deepagents_redis.observe")
    observe.uninstrument()
    yield
    observe.uninstrument()


def _refused_tool() -> object:
    return object()  # deepagents (langchain's tool decorator) refuses it: the build fails


@pytest.mark.usefixtures("no_instrumentation")
def test_a_failed_build_takes_back_the_instrumentation_it_added(
    redis_url: str, redis_client: Any
) -> None:
    from deepagents_redis.observe import is_instrumented

    before = get_instrumentation()
    clients = _clients(redis_client)
    with pytest.raises(ValueError, match="tool"):
        create_deep_agent(
            _model(),
            tools=[_refused_tool()],
            redis_url=redis_url,
            redis_todos=True,
            redis_observe=True,
        )
    # Before: still instrumented with the global providers, so an agent built next without
    # redis_observe reported anyway, and one built with it "kept" this leftover.
    assert not is_instrumented()
    assert get_instrumentation() is before
    assert _clients(redis_client) - clients == set()


@pytest.mark.usefixtures("no_instrumentation")
def test_a_failed_build_keeps_the_applications_own_instrumentation() -> None:
    from deepagents_redis.observe import instrument, is_instrumented

    mine = instrument()
    with pytest.raises(ValueError, match="tool"):
        create_deep_agent(_model(), tools=[_refused_tool()], redis_observe=True)
    assert is_instrumented()
    assert get_instrumentation() is mine


@pytest.mark.usefixtures("no_instrumentation")
def test_a_successful_build_keeps_its_instrumentation() -> None:
    from deepagents_redis.observe import is_instrumented

    agent = create_deep_agent(_model(), redis_observe=True)
    close_redis(agent)
    assert is_instrumented()  # the agent's reporting is process-wide, not the agent's


# -- CLI -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "command"),
    [
        ("DEEPAGENTS_REDIS_COORD_LEASE_SECONDS", ["worker", "--agent", "a=os:getcwd"]),
        ("DEEPAGENTS_REDIS_CHECKPOINT_TTL_SECONDS", ["checkpoint", "threads"]),
        ("DEEPAGENTS_REDIS_TODOS_MAX_ITEMS", ["todos", "backfill", "--checkpointer", "redis"]),
        ("DEEPAGENTS_REDIS_SOCKET_TIMEOUT", ["health"]),
        ("DEEPAGENTS_REDIS_CLUSTER", ["tasks", "list"]),
    ],
)
def test_the_cli_names_a_bad_variable(
    variable: str,
    command: list[str],
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before: "error: invalid CoordSettings: lease_seconds: ...", exit 64: an operator
    # looking for what to fix found no such name in the deployment's environment.
    from deepagents_redis.cli import main
    from deepagents_redis.cli._exit import EXIT_USAGE

    monkeypatch.setenv(variable, SECRET)
    status = main([*command, "--url", redis_url])
    err = capsys.readouterr().err
    assert status == EXIT_USAGE, err
    assert f"{variable} (environment variable)" in err
    assert SECRET not in err
    assert len(err.strip().splitlines()) == 1


def test_a_refused_keyword_is_not_blamed_on_a_variable_set_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The variable is named only when the refused value is the variable's own text.
    from deepagents_redis.agent._env import env_named_any
    from deepagents_redis.core import RedisSettings

    monkeypatch.setenv("DEEPAGENTS_REDIS_SOCKET_TIMEOUT", "also-bad")
    with pytest.raises(ConfigurationError) as info:
        RedisSettings(socket_timeout="keyword-bad")
    said = str(env_named_any(info.value))
    assert "socket_timeout:" in said
    assert "environment variable" not in said
