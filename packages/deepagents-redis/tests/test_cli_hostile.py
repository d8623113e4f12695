"""Hostile arguments to the coord commands: a usage error (64) before anything connects,
or a typed error, never a silent wait."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from deepagents_redis.cli import main
from deepagents_redis.cli._exit import EXIT_PROBLEM, EXIT_USAGE
from deepagents_redis.coord import TaskClient
from deepagents_redis.core import RedisSettings

pytestmark = pytest.mark.integration

NOT_A_CALLABLE = 42


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    monkeypatch.delenv("DEEPAGENTS_REDIS_KEY_PREFIX", raising=False)


def _args(redis_settings: RedisSettings) -> list[str]:
    return ["--url", redis_settings.url or "", "--prefix", redis_settings.key_prefix]


def test_worker_refuses_an_agent_that_is_not_callable_before_connecting(
    redis_settings: RedisSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "target: ..." (connected), then "InvalidInputError: agent 'a' is neither a
    # runnable nor a callable" and exit 1, where the help promises 64 for a bad --agent.
    spec = f"a={__name__}:NOT_A_CALLABLE"
    assert main(["worker", "--agent", spec, *_args(redis_settings)]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert "neither a runnable nor a callable" in err
    assert spec in err
    assert "target:" not in out


@pytest.mark.parametrize(
    "command",
    [
        ["tasks", "show", "nope"],
        ["tasks", "retry", "nope"],
        ["tasks", "cancel", "NOPE0123456789abcdef0123456789ab"],
        ["events", "tail", "--task", "nope", "--count", "1"],
    ],
)
def test_a_malformed_task_id_is_a_usage_error(
    command: list[str], redis_settings: RedisSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: connected, then exit 1 with InvalidInputError; for `tasks show`, exit 1 reads
    # as "the task failed".
    with pytest.raises(SystemExit) as info:
        main([*command, *_args(redis_settings)])
    assert info.value.code == EXIT_USAGE
    out, err = capsys.readouterr()
    assert "is not a task id" in err
    assert "target:" not in out


def test_a_well_formed_task_id_passes_the_check(redis_settings: RedisSettings) -> None:
    # The CLI's copy of coord's rule accepts what coord makes.
    tasks = TaskClient(settings=redis_settings, check_agents=False)
    try:
        task_id = tasks.submit("nobody", 1)
    finally:
        tasks.close()
    assert main(["tasks", "cancel", task_id, *_args(redis_settings)]) == 0


def test_events_tail_of_an_unknown_task_says_so_instead_of_waiting_forever(
    redis_settings: RedisSettings,
) -> None:
    # Run as a process: before the fix it never returned (nothing will ever write the
    # stream of a task nobody submitted), so the bounded wait is part of the test.
    unknown = "0123456789abcdef0123456789abcdef"
    proc = subprocess.run(  # bounded: the timeout fails the test instead of hanging it
        [
            sys.executable,
            "-m",
            "deepagents_redis.cli",
            "events",
            "tail",
            "--task",
            unknown,
            "--count",
            "1",
            *_args(redis_settings),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == EXIT_PROBLEM, proc.stderr
    assert f"no task {unknown}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_events_tail_of_a_known_task_still_replays_it(
    redis_settings: RedisSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks: Any = TaskClient(settings=redis_settings, check_agents=False)
    try:
        task_id = tasks.submit("nobody", 1)
    finally:
        tasks.close()
    assert main(["events", "tail", "--task", task_id, "--count", "1", *_args(redis_settings)]) == 0
    assert "task.submitted" in capsys.readouterr().out
