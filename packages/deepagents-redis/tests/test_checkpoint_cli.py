"""``deepagents-redis checkpoint copy|threads|sweep``: a thread moves to Redis and back."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from deepagents_redis.agent import redis_agent
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.cli import main
from deepagents_redis.core import RedisSettings
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver

pytestmark = pytest.mark.integration


def _model(*replies: Any) -> ScriptedChatModel:
    return ScriptedChatModel(script=list(replies))


def _sqlite_thread(path: Path, thread: str) -> None:
    """A deep agent's conversation, checkpointed in SQLite (its messages are a DeltaChannel)."""
    from deepagents import create_deep_agent

    conn = sqlite3.connect(path, check_same_thread=False)
    agent = create_deep_agent(
        model=_model(
            tool_call("write_file", {"file_path": "/a.md", "content": "alpha"}, "w1"),
            AIMessage("first answer"),
        ),
        checkpointer=SqliteSaver(conn),
    )
    agent.invoke({"messages": [HumanMessage("hello")]}, {"configurable": {"thread_id": thread}})
    conn.close()


def test_a_deep_agent_thread_moves_to_redis_and_carries_on(
    tmp_path: Path, redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "checkpoints.db"
    thread = f"t-{uuid.uuid4().hex[:8]}"
    _sqlite_thread(db, thread)
    ns = f"cli{uuid.uuid4().hex[:6]}"
    base = ["--url", redis_url, "--prefix", key_prefix, "--namespace", ns]
    assert main(["checkpoint", "copy", "--from", f"sqlite:{db}", *base, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["threads"], report["skipped"], report["copied"]) == (1, 0, [thread])
    assert main(["checkpoint", "copy", "--from", f"sqlite:{db}", *base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 1  # resumable: nothing to redo
    assert main(["checkpoint", "threads", *base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [thread]

    # the same thread continues on Redis: history, plan and all
    settings = RedisSettings(url=redis_url, key_prefix=key_prefix)
    with redis_agent(
        model=_model(AIMessage("second answer")),
        checkpointer=RedisSaver(settings=settings, namespace=ns),
    ) as agent:
        config = {"configurable": {"thread_id": thread}}
        files = agent.get_state(config).values["files"]  # the state backend's, in the checkpoint
        assert files["/a.md"]["content"] == "alpha"
        result = agent.invoke({"messages": [HumanMessage("again")]}, config)
        contents = [m.content for m in result["messages"] if m.type in ("human", "ai")]
        assert contents == ["hello", "", "first answer", "again", "second answer"]

    # and back to SQLite, text output with progress lines
    back = tmp_path / "back.db"
    assert main(["checkpoint", "copy", "--from", "redis", "--to", f"sqlite:{back}", *base]) == 0
    out = capsys.readouterr()
    assert "copied 1 thread(s)" in out.out
    assert "threads: 1/1" in out.err
    conn = sqlite3.connect(back, check_same_thread=False)
    copied = SqliteSaver(conn).get_tuple({"configurable": {"thread_id": thread}})
    conn.close()
    assert copied is not None
    RedisSaver(settings=settings, namespace=ns).delete_thread(thread)


def test_ordinary_failures_are_one_line(
    tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["checkpoint", "copy", "--url", redis_url, "--from", "mysql://x"]) == 64
    assert "must be redis, sqlite:PATH" in capsys.readouterr().err
    missing = tmp_path / "nope.db"
    assert main(["checkpoint", "copy", "--url", redis_url, "--from", f"sqlite:{missing}"]) == 64
    assert "no SQLite checkpoint database" in capsys.readouterr().err
    status = main(
        [
            "checkpoint",
            "copy",
            "--url",
            redis_url,
            "--from",
            "postgresql://someone:s3cret@127.0.0.1:1/db?connect_timeout=2",
        ]
    )
    err = capsys.readouterr().err
    if importlib.util.find_spec("langgraph.checkpoint.postgres") is None:  # no postgres extra
        assert status == 64  # usage: the message names the extra to install
        assert "pip install 'deepagents-redis-checkpoint[postgres]'" in err
    else:
        assert status == 2  # unreachable, as for Redis
        assert err.startswith("error: PostgreSQL is unreachable")
    assert "Traceback" not in err
    assert "s3cret" not in err
    assert main(["checkpoint", "copy", "--url", redis_url, "--from", "redis"]) == 64


@pytest.mark.parametrize("threads", [[], ["--thread", "t1"]])
def test_a_sqlite_source_without_checkpoints_is_refused_and_left_alone(
    tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str], threads: list[str]
) -> None:
    """A --from SQLite file that holds no LangGraph checkpoints (the application's own
    database, an empty file) ended in a traceback ('no such table: checkpoints'), and with
    --thread SqliteSaver created its tables in the file. It is exit 64, the file as it was."""
    app = tmp_path / "app.db"
    conn = sqlite3.connect(app)
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.commit()
    conn.close()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for path in (app, empty):
        before = path.read_bytes()
        argv = ["checkpoint", "copy", "--url", redis_url, "--from", f"sqlite:{path}", *threads]
        assert main(argv) == 64
        err = capsys.readouterr().err
        assert "holds no LangGraph checkpoints" in err
        assert "Traceback" not in err
        assert path.read_bytes() == before


@pytest.mark.postgres
@pytest.mark.skipif(
    importlib.util.find_spec("langgraph.checkpoint.postgres") is None,
    reason="needs the checkpoint 'postgres' extra (not in the umbrella alone)",
)
def test_copy_from_postgres_into_redis(
    redis_url: str, key_prefix: str, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from deepagents import create_deep_agent
    from langgraph.checkpoint.postgres import PostgresSaver

    thread = f"pg-{uuid.uuid4().hex[:8]}"
    with PostgresSaver.from_conn_string(postgres_url) as pg:
        pg.setup()
        agent = create_deep_agent(model=_model(AIMessage("from postgres")), checkpointer=pg)
        agent.invoke({"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": thread}})
    ns = f"pg{uuid.uuid4().hex[:6]}"
    args = ["--url", redis_url, "--prefix", key_prefix, "--namespace", ns, "--json"]
    assert main(["checkpoint", "copy", "--from", postgres_url, *args]) == 0
    assert json.loads(capsys.readouterr().out)["copied"] == [thread]
    saver = RedisSaver(settings=RedisSettings(url=redis_url, key_prefix=key_prefix), namespace=ns)
    assert saver.get_tuple({"configurable": {"thread_id": thread}}) is not None
    saver.delete_thread(thread)
    saver.close()


def test_a_refused_thread_is_named_and_the_rest_copied(
    tmp_path: Path, redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A thread id Redis cannot hold stopped 'copy' at that thread on every run (a one-line
    error, exit 64, the threads after it never copied); it is named, exit 1, the rest moves."""
    from langgraph.checkpoint.base import empty_checkpoint

    db = tmp_path / "checkpoints.db"
    conn = sqlite3.connect(db, check_same_thread=False)
    source = SqliteSaver(conn)
    threads = ["a-ok", "b\nbad", "c-ok"]
    for thread in threads:
        config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        source.put(config, empty_checkpoint(), {"source": "input", "step": -1}, {})  # type: ignore[arg-type]
    conn.close()
    ns = f"cli{uuid.uuid4().hex[:6]}"
    base = ["--url", redis_url, "--prefix", key_prefix, "--namespace", ns]
    assert main(["checkpoint", "copy", "--from", f"sqlite:{db}", *base, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["copied"] == ["a-ok", "c-ok"]
    assert list(report["refused"]) == ["b\nbad"]
    assert main(["checkpoint", "copy", "--from", f"sqlite:{db}", *base]) == 1
    out = capsys.readouterr().out
    assert "refused thread 'b\\nbad': thread_id holds control" in out
    saver = RedisSaver(settings=RedisSettings(url=redis_url, key_prefix=key_prefix), namespace=ns)
    assert list(saver.threads()) == ["a-ok", "c-ok"]
    for thread in ("a-ok", "c-ok"):
        saver.delete_thread(thread)


def test_checkpoint_sweep_takes_expired_threads_off_the_index(
    redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from langgraph.checkpoint.base import empty_checkpoint

    ns = f"sweep{uuid.uuid4().hex[:6]}"
    saver = RedisSaver(settings=RedisSettings(url=redis_url, key_prefix=key_prefix), namespace=ns)
    for thread in ("a", "b"):
        saver.put(
            {"configurable": {"thread_id": thread, "checkpoint_ns": ""}},
            empty_checkpoint(),
            {"step": 0},
            {},
        )
    raw = saver._connector.client()
    raw.delete(*saver.keys.thread("a").all)  # as its TTL would
    base = ["--url", redis_url, "--prefix", key_prefix, "--namespace", ns]
    assert main(["checkpoint", "sweep", *base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"removed": 1}
    assert main(["checkpoint", "sweep", *base]) == 0
    assert "took 0 expired thread(s) off the index" in capsys.readouterr().out
    assert main(["checkpoint", "threads", *base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == ["b"]
