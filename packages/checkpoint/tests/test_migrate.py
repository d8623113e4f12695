"""`copy_threads`: SQLite and PostgreSQL to Redis and back, idempotent and resumable."""

from __future__ import annotations

import sqlite3
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deepagents_redis.checkpoint import RedisSaver, copy_threads, thread_ids
from deepagents_redis.core import InvalidInputError, RedisConnector
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

sys.path.insert(0, str(Path(__file__).parent))
from test_graph import _counter_graph, _nested_graph


def _dump(saver: BaseCheckpointSaver[Any], thread: str) -> list[tuple[Any, ...]]:
    """Everything a thread holds, in a form two savers can be compared on."""
    rows = []
    for tup in saver.list({"configurable": {"thread_id": thread}}):
        conf = tup.config["configurable"]
        parent = (tup.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        checkpoint = {k: v for k, v in tup.checkpoint.items() if k != "channel_values"}
        rows.append(
            (
                conf["checkpoint_ns"],
                conf["checkpoint_id"],
                parent,
                tup.metadata,
                checkpoint,
                tup.checkpoint["channel_values"],
                sorted(map(repr, tup.pending_writes or [])),
            )
        )
    return sorted(rows, key=lambda row: (row[1], row[0]))


def _populate(saver: BaseCheckpointSaver[Any]) -> dict[str, str]:
    """Three threads: finished, interrupted inside a subgraph, and a branched history."""
    tag = uuid.uuid4().hex[:6]
    threads = {"done": f"done-{tag}", "waiting": f"waiting-{tag}", "forked": f"forked-{tag}"}
    _counter_graph(saver).invoke({"log": []}, {"configurable": {"thread_id": threads["done"]}})
    _nested_graph(saver).invoke({"log": []}, {"configurable": {"thread_id": threads["waiting"]}})
    graph = _counter_graph(saver)
    config = {"configurable": {"thread_id": threads["forked"]}}
    graph.invoke({"log": []}, config)
    past = next(s for s in graph.get_state_history(config) if s.next == ("b",))
    graph.invoke(None, graph.update_state(past.config, {"log": ["edited"]}))
    return threads


@pytest.fixture
def sqlite_saver(tmp_path: Path) -> Iterator[SqliteSaver]:
    conn = sqlite3.connect(tmp_path / "checkpoints.db", check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def test_sqlite_to_redis_and_back(
    sqlite_saver: SqliteSaver, connector: RedisConnector, tmp_path: Path
) -> None:
    threads = _populate(sqlite_saver)
    redis_saver = RedisSaver(connector=connector, namespace=f"m{uuid.uuid4().hex[:8]}")
    seen: list[tuple[int, int]] = []
    report = copy_threads(sqlite_saver, redis_saver, progress=lambda d, t: seen.append((d, t)))
    assert (report.threads, report.skipped) == (3, 0)
    assert seen[-1] == (3, 3)
    assert report.writes > 0  # the interrupted thread's pending writes came along
    for thread in threads.values():
        assert _dump(redis_saver, thread) == _dump(sqlite_saver, thread)
    assert sorted(thread_ids(redis_saver)) == sorted(threads.values())

    # the copied thread resumes on Redis where it stopped on SQLite
    done = _nested_graph(redis_saver).invoke(
        Command(resume="ok"), {"configurable": {"thread_id": threads["waiting"]}}
    )
    assert done["log"][-2:] == ["inner:ok", "after"]

    # and back, into a fresh SQLite database
    back = SqliteSaver(sqlite3.connect(tmp_path / "back.db", check_same_thread=False))
    copy_threads(redis_saver, back)
    for thread in threads.values():
        assert _dump(back, thread) == _dump(redis_saver, thread)
    back.conn.close()
    for thread in threads.values():
        redis_saver.delete_thread(thread)


def test_a_copy_is_idempotent_and_resumes(
    sqlite_saver: SqliteSaver, connector: RedisConnector
) -> None:
    threads = _populate(sqlite_saver)
    redis_saver = RedisSaver(connector=connector, namespace=f"m{uuid.uuid4().hex[:8]}")
    first = copy_threads(sqlite_saver, redis_saver, threads=[threads["done"]])
    assert first.copied == [threads["done"]]
    again = copy_threads(sqlite_saver, redis_saver)  # the rest, skipping what is there
    assert (again.threads, again.skipped) == (2, 1)
    # a copy cut off half-way: the newest checkpoint of a thread never arrived
    newest = redis_saver.get_tuple({"configurable": {"thread_id": threads["forked"]}})
    assert newest is not None
    keys = redis_saver.keys.thread(threads["forked"])
    connector.client().hdel(keys.checkpoints, keys.field("%_", newest.checkpoint["id"]))
    resumed = copy_threads(sqlite_saver, redis_saver)
    assert (resumed.threads, resumed.skipped) == (1, 2)
    for thread in threads.values():
        assert _dump(redis_saver, thread) == _dump(sqlite_saver, thread)
        redis_saver.delete_thread(thread)


psycopg = pytest.importorskip("psycopg", reason="needs the checkpoint 'postgres' extra")
postgres_saver = pytest.importorskip(
    "langgraph.checkpoint.postgres", reason="needs the checkpoint 'postgres' extra"
)


@pytest.fixture
def pg_saver(postgres_url: str) -> Iterator[Any]:
    with postgres_saver.PostgresSaver.from_conn_string(postgres_url) as pg:
        pg.setup()
        yield pg


@pytest.mark.postgres
def test_postgres_to_redis_and_back(pg_saver: Any, connector: RedisConnector) -> None:
    threads = _populate(pg_saver)
    redis_saver = RedisSaver(connector=connector, namespace=f"m{uuid.uuid4().hex[:8]}")
    assert copy_threads(pg_saver, redis_saver).threads == 3
    for thread in threads.values():
        assert _dump(redis_saver, thread) == _dump(pg_saver, thread)
    # the reverse: a thread that lived on Redis moves to PostgreSQL
    extra = f"redis-born-{uuid.uuid4().hex[:6]}"
    _counter_graph(redis_saver).invoke({"log": []}, {"configurable": {"thread_id": extra}})
    assert copy_threads(redis_saver, pg_saver, threads=[extra]).threads == 1
    assert _dump(pg_saver, extra) == _dump(redis_saver, extra)
    for thread in [*threads.values(), extra]:
        redis_saver.delete_thread(thread)


def test_a_thread_the_target_refuses_does_not_stop_the_others(
    sqlite_saver: SqliteSaver, connector: RedisConnector
) -> None:
    """A thread id Redis cannot hold (a newline; longer than 1,024 characters) stopped the
    whole copy at that thread, on every run: the threads after it never moved. It is
    reported, and the others are copied."""
    tag = uuid.uuid4().hex[:6]
    good = [f"a-{tag}", f"c-{tag}"]
    bad = [f"b-{tag}\nline", "b" + "x" * 1_100]
    for thread in [*good, *bad]:
        _counter_graph(sqlite_saver).invoke({"log": []}, {"configurable": {"thread_id": thread}})
    redis_saver = RedisSaver(connector=connector, namespace=f"m{uuid.uuid4().hex[:8]}")
    report = copy_threads(sqlite_saver, redis_saver)
    assert report.copied == good
    assert sorted(report.refused) == sorted(bad)
    assert all("thread_id" in reason for reason in report.refused.values())
    assert sorted(redis_saver.threads()) == good
    for thread in good:
        assert _dump(redis_saver, thread) == _dump(sqlite_saver, thread)
    again = copy_threads(sqlite_saver, redis_saver)  # resumed: still reported, nothing redone
    assert (again.threads, again.skipped, sorted(again.refused)) == (0, 2, sorted(bad))
    for thread in good:
        redis_saver.delete_thread(thread)


@pytest.mark.parametrize("target_kind", ["memory", "redis"])
def test_a_copy_keeps_each_writes_index_when_special_writes_come_first(
    connector: RedisConnector, target_kind: str
) -> None:
    """A task's writes were copied in one `put_writes` call in the source's order, where an
    interrupt (index -3) sorts first: its normal writes moved from 0, 1 to 1, 2, so the same
    writes put again (as LangGraph does when the task runs again) were stored twice."""
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.memory import InMemorySaver

    source = InMemorySaver()
    thread = f"mixed-{uuid.uuid4().hex[:6]}"
    config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    stored = source.put(config, empty_checkpoint(), {"step": 0}, {})
    normal = [("a", 1), ("b", 2)]
    source.put_writes(stored, normal, "task-1")
    source.put_writes(stored, [("__interrupt__", "why")], "task-1")
    source.put_writes(stored, [("__error__", "boom")], "task-2")
    target: Any = InMemorySaver() if target_kind == "memory" else RedisSaver(connector=connector)
    copy_threads(source, target, threads=[thread])
    if isinstance(target, InMemorySaver):  # the stored indexes themselves
        assert target.writes == source.writes
    copied = target.get_tuple(config)
    assert len(copied.pending_writes) == 4
    target.put_writes(copied.config, normal, "task-1")  # the task's writes, once more
    assert sorted(map(repr, target.get_tuple(config).pending_writes)) == sorted(
        map(repr, source.get_tuple(config).pending_writes)
    )


def test_threads_given_as_one_str_are_refused_and_ids_are_text(connector: RedisConnector) -> None:
    """A str is a sequence of its characters: threads="ab" copied threads "a" and "b"."""
    tag = uuid.uuid4().hex[:6]
    source = RedisSaver(connector=connector, namespace=f"src-{tag}")
    target = RedisSaver(connector=connector, namespace=f"dst-{tag}")
    graph = _counter_graph(source)
    for thread in ("a", "b", "ab", "7"):
        graph.invoke({"log": []}, {"configurable": {"thread_id": thread}})
    for wrong in ("ab", b"ab"):
        with pytest.raises(InvalidInputError):
            copy_threads(source, target, threads=wrong)  # type: ignore[arg-type]
    assert list(target.threads()) == []
    report = copy_threads(source, target, threads=[7, "ab"])  # type: ignore[list-item]
    assert report.copied == ["7", "ab"]
    assert list(target.threads()) == ["7", "ab"]


@pytest.mark.parametrize("into", ["redis", "sqlite"])
def test_resume_copies_a_target_that_holds_the_newest_but_not_the_whole_thread(
    sqlite_saver: SqliteSaver, connector: RedisConnector, tmp_path: Path, into: str
) -> None:
    """A resumed copy skipped a thread when the target held the source's newest checkpoint
    with as many writes: a target that lost older checkpoints (pruned, or written by
    something else) or that holds other writes for the newest was never completed. Now
    every checkpoint's id and the newest's writes, by task and channel, must be there."""
    threads = _populate(sqlite_saver)
    thread = threads["waiting"]  # a subgraph namespace, and pending writes on the newest
    if into == "redis":
        target: Any = RedisSaver(connector=connector, namespace=f"m{uuid.uuid4().hex[:8]}")
    else:
        target = SqliteSaver(sqlite3.connect(tmp_path / "t.db", check_same_thread=False))
    config: Any = {"configurable": {"thread_id": thread}}
    tuples = sorted(sqlite_saver.list(config), key=lambda t: t.checkpoint["id"])
    newest = tuples[-1]
    assert newest.pending_writes
    assert len({t.config["configurable"]["checkpoint_ns"] for t in tuples}) == 2

    def put_newest(writes: list[tuple[str, str, Any]]) -> None:
        conf = {
            "configurable": {
                "thread_id": thread,
                "checkpoint_ns": newest.config["configurable"]["checkpoint_ns"],
            }
        }
        stored = target.put(
            conf, newest.checkpoint, newest.metadata, dict(newest.checkpoint["channel_versions"])
        )
        for task_id, channel, value in writes:
            target.put_writes(stored, [(channel, value)], task_id)

    # 1. only the newest, with its writes: the older checkpoints are missing
    put_newest(list(newest.pending_writes))
    report = copy_threads(sqlite_saver, target, threads=[thread])
    assert (report.threads, report.skipped) == (1, 0)
    assert _dump(target, thread) == _dump(sqlite_saver, thread)
    # 2. every checkpoint, the newest with as many writes but other ones (other tasks)
    target.delete_thread(thread)
    for tup in tuples[:-1]:
        parent = (tup.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        conf = {
            "configurable": {
                "thread_id": thread,
                "checkpoint_ns": tup.config["configurable"]["checkpoint_ns"],
                **({"checkpoint_id": parent} if parent else {}),
            }
        }
        target.put(conf, tup.checkpoint, tup.metadata, dict(tup.checkpoint["channel_versions"]))
    put_newest([(f"other-{i}", ch, v) for i, (_, ch, v) in enumerate(newest.pending_writes)])
    report = copy_threads(sqlite_saver, target, threads=[thread])
    assert (report.threads, report.skipped) == (1, 0)
    got = target.get_tuple({"configurable": {**newest.config["configurable"]}})
    assert got is not None
    assert {w[0] for w in newest.pending_writes} <= {w[0] for w in got.pending_writes or []}
    # 3. now whole: skipped
    again = copy_threads(sqlite_saver, target, threads=[thread])
    assert (again.threads, again.skipped) == (0, 1)
    target.delete_thread(thread)
    if into == "sqlite":
        target.conn.close()
