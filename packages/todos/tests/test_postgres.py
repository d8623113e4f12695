"""TodoBackfill and TodoReconciler against a real PostgreSQL checkpointer.

PostgreSQL is part of the machines this project's CI runs on (127.0.0.1:5432, trust auth).
Each test creates a throwaway database and drops it afterwards. Without a reachable server
the tests skip locally and FAIL under ``CI=true``, the same policy as for redis-server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
from deepagents_redis.todos import RedisTodoRepository, TodoBackfill, TodoReconciler
from langchain.agents import create_agent
from langchain.agents.middleware import TodoListMiddleware
from langchain_core.messages import AIMessage, HumanMessage

psycopg = pytest.importorskip("psycopg", reason="needs the todos 'postgres' extra")
postgres_saver = pytest.importorskip(
    "langgraph.checkpoint.postgres", reason="needs the todos 'postgres' extra"
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PLAN = [
    {"content": "collect data", "status": "completed"},
    {"content": "analyse", "status": "in_progress"},
]


@pytest.fixture
def saver(postgres_url: str) -> Iterator[Any]:
    with postgres_saver.PostgresSaver.from_conn_string(postgres_url) as pg:
        pg.setup()
        yield pg


def run_plain(saver: Any, thread: str, todos: list[dict[str, str]] | None) -> None:
    """A thread run under langchain's TodoListMiddleware (todos only in the checkpoint)."""
    script: list[Any] = [tool_call("write_todos", {"todos": todos}, "w")] if todos else []
    model = ScriptedChatModel(script=[*script, AIMessage("ok")])
    graph = create_agent(model, middleware=[TodoListMiddleware()], checkpointer=saver)
    graph.invoke({"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": thread}})


def test_backfill_and_reconcile_from_postgres(saver: Any, redis_target: Any) -> None:
    run_plain(saver, "pg-1", PLAN)
    run_plain(saver, "pg-2", None)
    repo = RedisTodoRepository(client=redis_target.client, settings=redis_target.settings)

    dry = TodoBackfill(repo, saver).run(dry_run=True)
    assert (dry.threads, dry.with_todos, dry.written) == (2, 1, 1)
    assert repo.get("pg-1").version == 0

    first = TodoBackfill(repo, saver).run()
    assert (first.written, first.failed) == (1, [])
    assert repo.get("pg-1").as_langchain() == PLAN
    assert TodoBackfill(repo, saver).run().already_present == 1  # safe to run twice

    report = TodoReconciler(repo, saver).reconcile()
    assert (report.checked, report.in_sync, report.drifts) == (1, 1, [])
