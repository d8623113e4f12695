"""The coord commands (worker, tasks, events) and the coord phase of create_deep_agent."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from deepagents_redis.agent import close_redis, create_deep_agent
from deepagents_redis.cli import main
from deepagents_redis.cli._exit import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE
from deepagents_redis.coord import SubagentEventsMiddleware, TaskClient
from deepagents_redis.core import RedisSettings

pytestmark = pytest.mark.integration


def fail(_value: Any) -> None:
    raise RuntimeError("always fails")


def echo(value: Any) -> Any:
    return value


def blocking(_value: Any) -> None:
    time.sleep(600)  # a blocking call that never looks at ctx.cancelled


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    monkeypatch.delenv("DEEPAGENTS_REDIS_KEY_PREFIX", raising=False)


def _args(redis_settings: RedisSettings) -> list[str]:
    return ["--url", redis_settings.url or "", "--prefix", redis_settings.key_prefix]


def _worker(redis_settings: RedisSettings, *agents: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "deepagents_redis.cli", "worker", *_args(redis_settings)]
    for spec in agents:
        cmd += ["--agent", spec]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=str(_here()))


def _here() -> Any:
    from pathlib import Path

    return Path(__file__).parent


def _client(redis_settings: RedisSettings) -> TaskClient:
    return TaskClient(settings=redis_settings, max_attempts=1, backoff_base_seconds=0.01)


def _wait_workers(tasks: TaskClient, n: int = 1) -> None:
    # A worker process imports LangChain and deepagents before it registers: seconds on a
    # loaded machine (20 s was not always enough in CI). The bound only stops a hung test.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(tasks.workers()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError("worker did not start")


def test_worker_command_serves_until_sigterm_then_exits_0(
    redis_settings: RedisSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = _worker(redis_settings, "echo=test_coord_cli:echo", "fail=test_coord_cli:fail")
    tasks = _client(redis_settings)
    try:
        _wait_workers(tasks)
        ok = tasks.submit("echo", {"hello": "world"})
        assert tasks.result(ok, timeout=30) == {"hello": "world"}
        bad = tasks.submit("fail", {})
        assert tasks.join(bad, timeout=30).status == "error"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "serving echo, fail" in out
    assert "stopped after 2 run(s)" in out

    assert main(["tasks", "show", ok, *_args(redis_settings)]) == EXIT_OK
    assert "status success" in capsys.readouterr().out
    assert main(["tasks", "show", bad, "--json", *_args(redis_settings)]) == EXIT_PROBLEM
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "error"
    assert "always fails" in shown["error"]
    deadline = time.monotonic() + 30  # the letter follows the run's end (one more call)
    while True:
        assert main(["tasks", "dlq", "--json", *_args(redis_settings)]) == EXIT_OK
        letters = json.loads(capsys.readouterr().out)["dead_letters"]
        if letters or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert [letter["task_id"] for letter in letters] == [bad]
    assert main(["tasks", "retry", bad, *_args(redis_settings)]) == EXIT_OK
    assert main(["tasks", "list", "--json", *_args(redis_settings)]) == EXIT_OK
    out = capsys.readouterr().out
    assert bad in out  # queued again, no worker left to run it
    assert main(["tasks", "retry", ok, *_args(redis_settings)]) == EXIT_PROBLEM
    assert main(["tasks", "cancel", bad, *_args(redis_settings)]) == EXIT_OK
    assert f"task {bad}: cancelled" in capsys.readouterr().out
    tasks.close()


def test_sigterm_does_not_wait_for_a_sync_agent_in_a_blocking_call(
    redis_settings: RedisSettings,
) -> None:
    """SIGTERM hands the blocked run's task back at once; the process then waited for the
    agent's thread (the interpreter joins executor threads at exit), so the worker outlived
    any deployment's grace period. It leaves the call behind, says so, and exits 0."""
    cmd = [sys.executable, "-m", "deepagents_redis.cli", "worker", *_args(redis_settings)]
    cmd += ["--agent", "block=test_coord_cli:blocking", "--grace", "0"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(_here())
    )
    tasks = _client(redis_settings)
    try:
        _wait_workers(tasks)
        task_id = tasks.submit("block", {})
        deadline = time.monotonic() + 30
        while tasks.get(task_id).status != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tasks.get(task_id).status == "running"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)  # the agent's call lasts 600 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "left 1 agent call(s) behind" in err
    assert tasks.get(task_id).status == "pending"  # handed back, to run elsewhere
    kinds = [e.type.rsplit(".", 1)[-1] for _, e in tasks.events(task_id)]
    assert kinds.count("handed_back") == 1
    tasks.close()


def test_events_tail_prints_the_log(
    redis_settings: RedisSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = _worker(redis_settings, "echo=test_coord_cli:echo")
    tasks = _client(redis_settings)
    try:
        _wait_workers(tasks)
        task_id = tasks.submit("echo", 1)
        tasks.result(task_id, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert (
        main(["events", "tail", "--from", "0-0", "--count", "2", "--json", *_args(redis_settings)])
        == EXIT_OK
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["type"] for line in lines] == [
        "dev.deepagents-redis.task.started",
        "dev.deepagents-redis.task.completed",
    ]
    assert (
        main(["events", "tail", "--task", task_id, "--count", "3", *_args(redis_settings)])
        == EXIT_OK
    )
    out = capsys.readouterr().out
    assert "task.submitted" in out
    assert "task.completed" in out
    tasks.close()


def test_worker_agent_spec_errors(
    redis_settings: RedisSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker", "--agent", "nonsense", *_args(redis_settings)]) == EXIT_USAGE
    assert "NAME=MODULE:ATTR" in capsys.readouterr().err
    assert (
        main(["worker", "--agent", "a=no_such_module_xyz:f", *_args(redis_settings)]) == EXIT_USAGE
    )


def test_coord_phase_adds_the_lifecycle_middleware(redis_settings: RedisSettings) -> None:
    from deepagents_redis.testing.chat import ScriptedChatModel
    from langchain_core.messages import AIMessage

    agent = create_deep_agent(
        ScriptedChatModel(script=[AIMessage(content="hi")]),
        redis_settings=redis_settings,
        redis_coord=True,
    )
    try:
        from deepagents_redis.agent._wiring import _OPENED, _key

        assert any(isinstance(c, SubagentEventsMiddleware) for c in _OPENED[_key(agent)].components)
        assert agent.invoke({"messages": [("user", "hello")]})["messages"][-1].content == "hi"
    finally:
        close_redis(agent)


def test_tasks_show_escapes_control_characters(
    redis_settings: RedisSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    # A task's error (an agent's exception text) and worker are data anyone with Redis access
    # writes; printed raw, an escape sequence in them drove the operator's terminal.
    hostile = "boom\x1b]0;owned\x07\x1b[2J"
    tasks = TaskClient(settings=redis_settings, check_agents=False)
    try:
        task_id = tasks.submit("echo", {})
        # a record as any client with Redis access (or an agent's exception text) can leave it
        tasks.connector.client().hset(tasks.keys.task(task_id).record, "error", hostile)
    finally:
        tasks.close()
    assert main(["tasks", "show", task_id, *_args(redis_settings)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "error: boom\\x1b]0;owned\\x07\\x1b[2J" in out
