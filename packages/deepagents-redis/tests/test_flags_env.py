"""A bad phase switch is refused under the name it was given by, before anything connects."""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.agent import create_deep_agent, resolve_flags
from deepagents_redis.cli import main
from deepagents_redis.cli._exit import EXIT_USAGE
from deepagents_redis.core import ConfigurationError
from deepagents_redis.testing.chat import ScriptedChatModel
from langchain_core.messages import AIMessage

pytestmark = pytest.mark.integration


def _clients(observer: Any) -> set[int]:
    return {int(c["id"]) for c in observer.client_list()}


@pytest.mark.parametrize("phase", ["cache", "todos", "fs", "coord", "checkpoint", "observe"])
def test_a_bad_environment_switch_names_its_variable_and_connects_nothing(
    phase: str, redis_url: str, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: "invalid AgentRedisSettings: fs_enabled: ...", a name that appears nowhere in
    # the deployment's environment.
    variable = f"DEEPAGENTS_REDIS_{phase.upper()}_ENABLED"
    monkeypatch.setenv(variable, "maybe")
    before = _clients(redis_client)
    model = ScriptedChatModel(script=[AIMessage("done")])
    with pytest.raises(ConfigurationError, match=rf"{variable} \(environment variable\)") as info:
        create_deep_agent(model=model, redis_url=redis_url)
    assert "maybe" not in str(info.value)  # the settings never echo input
    assert _clients(redis_client) - before == set()


def test_a_keyword_switch_beats_a_bad_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    # The documented precedence: keyword, then redis_flags, then the environment. A keyword
    # for the phase means the environment's value for it is not consulted at all.
    monkeypatch.setenv("DEEPAGENTS_REDIS_FS_ENABLED", "maybe")
    assert resolve_flags(redis_fs=False).fs_enabled is False
    monkeypatch.setenv("DEEPAGENTS_REDIS_FS_ENABLED", "true")
    assert resolve_flags(redis_fs=False).fs_enabled is False
    assert resolve_flags().fs_enabled is True


def test_the_worker_names_a_bad_observe_variable(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_OBSERVE_ENABLED", "maybe")
    status = main(["worker", "--url", redis_url, "--agent", "a=os:getcwd"])
    err = capsys.readouterr().err
    assert status == EXIT_USAGE, err
    assert "DEEPAGENTS_REDIS_OBSERVE_ENABLED (environment variable)" in err
