"""Copy threads between any two LangGraph checkpointers (PostgreSQL, SQLite, Redis, ...).

Through the public `BaseCheckpointSaver` API only: for each thread, every checkpoint of every
namespace in id order (parents before children), each followed by its pending writes. So a
copy carries the whole parent chain (what `DeltaChannel` histories need), and:

* it is **idempotent**: a put of the same checkpoint id rewrites the same checkpoint, and
  `put_writes` keeps writes already stored for (task, index);
* it is **resumable**: a thread the target already holds whole (every checkpoint's id in
  its namespace, and the newest's writes by task and channel) is skipped, and any other,
  such as one cut off half-way, is copied again (idempotently);
* a thread the target refuses (an id or a value it cannot hold: `InvalidInputError`,
  `SerializationError`) is reported and the copy goes on with the next one, so one odd
  thread never blocks the others (each run would stop at it again).

What the public API does not expose is not carried: a write's ``task_path`` (it only orders
writes of parallel tasks; copied writes sort by task id) and checkpoints the source's TTL
already dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from deepagents_redis.checkpoint._saver import RedisSaver
from deepagents_redis.core import InvalidInputError, SerializationError
from langgraph.checkpoint.base import WRITES_IDX_MAP, BaseCheckpointSaver, CheckpointTuple

__all__ = ["CopyReport", "copy_threads", "thread_ids"]


@dataclass
class CopyReport:
    """What `copy_threads` did."""

    threads: int = 0
    """Threads copied in this run."""
    skipped: int = 0
    """Threads already complete in the target (a resumed run skips them)."""
    checkpoints: int = 0
    """Checkpoints written."""
    writes: int = 0
    """Pending writes written."""
    copied: list[str] = field(default_factory=list)
    """The ids of the threads copied."""
    refused: dict[str, str] = field(default_factory=dict)
    """Threads not copied (or copied in part), each with the reason the saver gave."""


def thread_ids(saver: BaseCheckpointSaver[Any]) -> list[str]:
    """Every thread id a checkpointer holds, sorted.

    `RedisSaver` reads its thread index; LangGraph's SQLite and PostgreSQL savers are asked
    with one ``SELECT DISTINCT``; any other saver is listed (`list(None)`), which loads
    every checkpoint once.

    Args:
        saver: The checkpointer.

    Returns:
        The thread ids.
    """
    threads = getattr(saver, "threads", None)
    if callable(threads):
        return sorted(threads())
    conn = getattr(saver, "conn", None)
    if conn is not None and callable(getattr(conn, "execute", None)):
        rows = conn.execute("SELECT DISTINCT thread_id FROM checkpoints").fetchall()
        return sorted(str(row["thread_id"] if isinstance(row, dict) else row[0]) for row in rows)
    return sorted({str(t.config["configurable"]["thread_id"]) for t in saver.list(None)})


def _config(thread: str, tup: CheckpointTuple, checkpoint_id: str | None) -> Any:
    configurable = {
        "thread_id": thread,
        "checkpoint_ns": tup.config["configurable"]["checkpoint_ns"],
    }
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _grouped(writes: Iterable[tuple[str, str, Any]]) -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    """A checkpoint's pending writes as the `put_writes` calls that stored them.

    A saver stores a write at index ``WRITES_IDX_MAP[channel]`` for the special channels
    (error, interrupt, ...) and at its position in the call otherwise. One call per task
    with everything in it would move a task's normal writes up by one per special write
    before them (an interrupt sorts first, at -3), and a later `put_writes` of the same
    writes, as LangGraph makes when it runs the task again, would then add them a second
    time instead of finding them. So per task: its normal writes in their order, in one
    call (indexes 0, 1, ... as LangGraph writes them), then its special writes, in another.
    """
    normal: dict[str, list[tuple[str, Any]]] = {}
    special: dict[str, list[tuple[str, Any]]] = {}
    for task_id, channel, value in writes:
        into = special if channel in WRITES_IDX_MAP else normal
        into.setdefault(task_id, []).append((channel, value))
    for task_id in dict.fromkeys([*normal, *special]):
        if task_id in normal:
            yield task_id, normal[task_id]
        if task_id in special:
            yield task_id, special[task_id]


def _write_keys(tup: CheckpointTuple) -> Counter[tuple[str, str]]:
    return Counter((str(task), str(channel)) for task, channel, _ in tup.pending_writes or [])


def _ids_in(target: BaseCheckpointSaver[Any], thread: str) -> set[tuple[str, str]]:
    """The (namespace, checkpoint id) of every checkpoint `target` holds for `thread`.

    `RedisSaver` answers from its index (ids only, no checkpoint read); another saver is
    listed.
    """
    if isinstance(target, RedisSaver):
        return target._checkpoint_ids(thread)
    return {
        (str(tup.config["configurable"]["checkpoint_ns"]), str(tup.checkpoint["id"]))
        for tup in target.list({"configurable": {"thread_id": thread}})
    }


def _complete(target: BaseCheckpointSaver[Any], thread: str, tuples: list[CheckpointTuple]) -> bool:
    """Whether `target` holds the whole copy of `tuples` (one thread, oldest first).

    The newest checkpoint with (at least) each of its writes, by task and channel, and every
    checkpoint's id in its namespace. The newest with as many writes was taken as proof: a
    target thread that holds it with other writes (its own, a fork's) or without older
    checkpoints (pruned, or written by something else) was skipped, and never completed.
    """
    newest = tuples[-1]
    there = target.get_tuple(_config(thread, newest, newest.checkpoint["id"]))
    if there is None or _write_keys(newest) - _write_keys(there):
        return False
    wanted = {
        (str(tup.config["configurable"]["checkpoint_ns"]), str(tup.checkpoint["id"]))
        for tup in tuples
    }
    return wanted <= _ids_in(target, thread)


def copy_threads(
    source: BaseCheckpointSaver[Any],
    target: BaseCheckpointSaver[Any],
    *,
    threads: Iterable[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CopyReport:
    """Copy threads from one checkpointer to another (idempotent and resumable).

    Args:
        source: Where the threads are (e.g. a `PostgresSaver`).
        target: Where they go (e.g. a `RedisSaver`, or the reverse).
        threads: Only these thread ids (default: every thread of the source).
        progress: Called with ``(threads done, threads in all)`` after each thread.

    Returns:
        What was copied.

    Raises:
        InvalidInputError: `threads` is a str or bytes (one id, not a sequence of them).

    Example:
        >>> with PostgresSaver.from_conn_string(pg_url) as pg:  # doctest: +SKIP
        ...     copy_threads(pg, RedisSaver(url=redis_url))
    """
    if isinstance(threads, str | bytes):
        # a str is a sequence of its characters: copy_threads(src, dst, threads="ab")
        # copied threads "a" and "b" (whichever the source had), not "ab"
        raise InvalidInputError("threads must be a sequence of thread ids, not a str")
    # as text, as savers name them (a thread id 7 is thread "7"): sorting ids of mixed types
    # raised an untyped TypeError
    wanted = sorted({str(t) for t in threads}) if threads is not None else thread_ids(source)
    report = CopyReport()
    for done, thread in enumerate(wanted, start=1):
        try:
            _copy_thread(source, target, thread, report)
        except (InvalidInputError, SerializationError) as exc:
            # this thread's data, not the savers: the rest can still move
            report.refused[thread] = str(exc)
        if progress is not None:
            progress(done, len(wanted))
    return report


def _copy_thread(
    source: BaseCheckpointSaver[Any],
    target: BaseCheckpointSaver[Any],
    thread: str,
    report: CopyReport,
) -> None:
    config: Any = {"configurable": {"thread_id": thread}}
    tuples = sorted(source.list(config), key=lambda t: t.checkpoint["id"])
    if not tuples:
        return
    if _complete(target, thread, tuples):
        report.skipped += 1
        return
    for tup in tuples:
        parent = (tup.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        stored = target.put(
            _config(thread, tup, parent),
            tup.checkpoint,
            tup.metadata,
            dict(tup.checkpoint["channel_versions"]),
        )
        report.checkpoints += 1
        for task_id, writes in _grouped(tup.pending_writes or []):
            target.put_writes(stored, writes, task_id)
            report.writes += len(writes)
    report.threads += 1
    report.copied.append(thread)
