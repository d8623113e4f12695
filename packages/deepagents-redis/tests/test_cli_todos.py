"""``deepagents-redis todos backfill|reconcile`` against a SQLite checkpointer."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from deepagents import create_deep_agent
from deepagents_redis.cli import main
from deepagents_redis.cli._exit import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE
from deepagents_redis.core import RedisSettings
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
from deepagents_redis.todos import RedisTodoRepository
from langchain.agents.middleware import TodoListMiddleware
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver

pytestmark = pytest.mark.integration

PLAN = [{"content": "one", "status": "completed"}, {"content": "two", "status": "pending"}]


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    monkeypatch.delenv("DEEPAGENTS_REDIS_KEY_PREFIX", raising=False)


@pytest.fixture
def checkpoint_db(tmp_path: Path) -> Path:
    path = tmp_path / "threads.db"
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        for thread in ("t1", "t2"):
            model = ScriptedChatModel(
                script=[tool_call("write_todos", {"todos": PLAN}, "w"), AIMessage("ok")]
            )
            graph = create_deep_agent(
                model=model, middleware=[TodoListMiddleware()], checkpointer=saver
            )
            graph.invoke(
                {"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": thread}}
            )
    finally:
        conn.close()
    return path


def cli(*args: str) -> int:
    return main(list(args))


def test_backfill_then_reconcile(
    checkpoint_db: Path, redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = [
        "--url",
        redis_url,
        "--prefix",
        key_prefix,
        "--checkpointer",
        f"sqlite:{checkpoint_db}",
    ]
    assert cli("todos", "backfill", "--dry-run", *target) == EXIT_OK
    out, err = capsys.readouterr()
    assert "dry run: scanned 2 thread(s), 2 with todos: would write 2" in out
    assert "2/2" in err  # the progress bar

    repo = RedisTodoRepository(settings=RedisSettings(url=redis_url, key_prefix=key_prefix))
    try:
        assert repo.get("t1").version == 0
        assert cli("todos", "backfill", *target) == EXIT_OK
        assert "wrote 2, already in Redis 0, failed 0" in capsys.readouterr().out
        assert cli("todos", "backfill", *target) == EXIT_OK
        assert "wrote 0, already in Redis 2" in capsys.readouterr().out
        assert repo.get("t1").as_langchain() == PLAN

        assert cli("todos", "reconcile", *target) == EXIT_OK
        assert "2 in sync" in capsys.readouterr().out

        _delete_plan(repo, "t2")
        assert cli("todos", "reconcile", "--json", *target) == EXIT_PROBLEM
        import json

        data = json.loads(capsys.readouterr().out)
        assert (data["counts"]["missing"], data["status"]) == (1, "attention")
        assert data["drifts"][0]["thread_id"] == "t2"
        assert cli("todos", "backfill", "--dry-run", "--json", *target) == EXIT_OK
        assert json.loads(capsys.readouterr().out)["written"] == 1
        assert cli("todos", "reconcile", *target) == EXIT_PROBLEM
        out = capsys.readouterr().out
        assert re.search(r"^drift +thread +checkpoint +redis +state$", out, re.M)
        assert re.search(r"^missing +t2 +\S+ \(2 items\) +v\d+ \(0 items\) +-$", out, re.M)
        assert "rerun with --repair" in out
        assert cli("todos", "reconcile", "--repair", *target) == EXIT_OK
        assert "repaired 1" in capsys.readouterr().out
        assert repo.get("t2").as_langchain() == PLAN
    finally:
        repo.close()


def _delete_plan(repo: Any, scope: str) -> None:
    client = repo.connector.client()
    client.delete(repo.plan_key(scope))


def test_reconcile_reports_an_unreadable_plan(
    checkpoint_db: Path, redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    target = [
        "--url",
        redis_url,
        "--prefix",
        key_prefix,
        "--checkpointer",
        f"sqlite:{checkpoint_db}",
    ]
    repo = RedisTodoRepository(settings=RedisSettings(url=redis_url, key_prefix=key_prefix))
    try:
        assert cli("todos", "backfill", *target) == EXIT_OK
        capsys.readouterr()
        repo.connector.client().hset(repo.plan_key("t1"), "items", b"\xff not json")
        # Exit 1, the thread named, and the other thread still compared.
        assert cli("todos", "reconcile", "--json", *target) == EXIT_PROBLEM
        data = json.loads(capsys.readouterr().out)
        assert data["status"] == "attention"
        assert [u["thread_id"] for u in data["unreadable"]] == ["t1"]
        assert (data["checked"], data["in_sync"]) == (2, 1)
        assert cli("todos", "reconcile", "--repair", *target) == EXIT_PROBLEM
        out = capsys.readouterr().out
        assert re.search(r"^unreadable plan: thread t1: SerializationError", out, re.M)
        assert "status: 1 plan(s) need attention" in out
    finally:
        repo.close()


def test_bad_checkpointer_is_a_usage_error(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.db"
    code = cli("todos", "backfill", "--url", redis_url, "--checkpointer", f"sqlite:{missing}")
    assert code == EXIT_USAGE
    assert "no SQLite checkpoint database" in capsys.readouterr().err
    code = cli("todos", "reconcile", "--url", redis_url, "--checkpointer", "mysql://x")
    assert code == EXIT_USAGE


def test_progress_is_plain_lines_off_a_terminal() -> None:
    import io

    from deepagents_redis.cli._progress import progress_bar

    # Before: 41 updates wrote one 3 KB line of \r frames into a log file.
    log = io.StringIO()
    with progress_bar("reconcile", log) as draw:
        for done in range(42):
            draw(done, 41)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= 12
    assert lines[-1] == "reconcile: 41/41"

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    with progress_bar("reconcile", tty) as bar:
        bar(1, 2)
        bar(2, 2)
    drawn = tty.getvalue()
    assert "\r" in drawn  # rich redraws the line in place
    assert "2/2" in drawn


def test_reconcile_prints_a_hostile_thread_id_literally(
    tmp_path: Path, redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Thread ids come from applications: one that looks like rich markup must not be styled
    # (or swallowed) by the drift table.
    hostile = "[bold]t3[/] :smile:"
    path = tmp_path / "hostile.db"
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        model = ScriptedChatModel(
            script=[tool_call("write_todos", {"todos": PLAN}, "w"), AIMessage("ok")]
        )
        graph = create_deep_agent(
            model=model, middleware=[TodoListMiddleware()], checkpointer=SqliteSaver(conn)
        )
        graph.invoke({"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": hostile}})
    finally:
        conn.close()
    target = ["--url", redis_url, "--prefix", key_prefix, "--checkpointer", f"sqlite:{path}"]
    assert cli("todos", "reconcile", *target) == EXIT_PROBLEM
    out = capsys.readouterr().out
    assert re.search(
        r"^missing +\[bold\]t3\[/\] :smile: +unversioned \(2 items\) +v0", out, re.M
    ), out
    assert "\x1b[" not in out


@pytest.mark.parametrize("action", ["reconcile", "backfill"])
def test_a_sqlite_file_without_checkpoints_is_refused_and_left_alone(
    redis_url: str, tmp_path: Path, action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: SqliteSaver created its tables in the file (here the application's own
    # database) and the command reported 0 threads, exit 0.
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    conn.close()
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database at all, just some text long enough to have a header\n")
    for path in (other, junk):
        before = path.read_bytes()
        code = cli("todos", action, "--url", redis_url, "--checkpointer", f"sqlite:{path}")
        assert code == EXIT_USAGE
        assert str(path) in capsys.readouterr().err
        assert path.read_bytes() == before
