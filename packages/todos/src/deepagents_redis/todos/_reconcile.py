"""Reconcile Redis plans with LangGraph checkpoints, and backfill Redis from them.

`TodoReconciler` compares; `TodoBackfill` copies checkpoint todos into Redis.

Both read each thread's *latest* root checkpoint (``checkpoint_ns == ""``) through the
public ``BaseCheckpointSaver`` API (``list(None)`` to find threads, ``get_tuple`` for the
latest), so they work with every saver: in-memory, SQLite, Postgres, and their async
variants (``areconcile``/``arun`` use ``alist``/``aget_tuple``).

Drift kinds (see ``docs/packages/todos.md`` for the alerting story):

==============  ============================================================  ==========
kind            meaning                                                       repaired
==============  ============================================================  ==========
``missing``     the checkpoint has todos, Redis has no plan                   yes
``behind``      Redis is at a lower version than the checkpoint saw:          yes
                acknowledged writes were lost (failover, eviction, restore)
``diverged``    same version (or an unversioned checkpoint), other items      no
``lagging``     Redis is ahead (outside updates not yet pulled by the         no (heals
                thread): normal, not counted as drift                         on next run)
==============  ============================================================  ==========
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from deepagents_redis.core import (
    ConflictError,
    DeepAgentsRedisError,
    InvalidInputError,
    PayloadTooLargeError,
    SerializationError,
    adrive_operation,
    drive_operation,
    get_instrumentation,
)
from deepagents_redis.todos._calls import RepoCall, arepo_step, repo_step
from deepagents_redis.todos._models import TodoList
from deepagents_redis.todos._plan import assign_ids
from deepagents_redis.todos._repository import RedisTodoRepository
from deepagents_redis.todos._scope import _storable
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

__all__ = [
    "ALERT_KINDS",
    "BackfillReport",
    "Drift",
    "DriftKind",
    "Progress",
    "ReconcileReport",
    "ThreadTodos",
    "TodoBackfill",
    "TodoReconciler",
    "aiter_thread_todos",
    "alist_thread_ids",
    "classify",
    "iter_thread_todos",
    "list_thread_ids",
]


_HANDLED = (DeepAgentsRedisError,)
"""Errors the flows record in their report (they come back to them as results)."""

_UNREADABLE = (SerializationError, InvalidInputError, PayloadTooLargeError)
"""Read errors that belong to one thread's plan (bytes under its key that are not a plan, a
scope the repository refuses): the reconciliation reports the thread and goes on. Any other
error (Redis unreachable, a deadline, an unknown outcome) fails the run, as for every
thread it would fail the same way."""

log = logging.getLogger("deepagents_redis.todos")

_THREAD_TAG_CHARS = 256
"""The longest thread id an op id names as it is (a longer one by its digest)."""

DriftKind = Literal["missing", "behind", "diverged", "lagging"]
"""See the module docstring."""

ALERT_KINDS: frozenset[str] = frozenset({"missing", "behind", "diverged"})
"""Drift kinds that mean data was lost or forked (they raise the alert)."""

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called after each thread."""


@dataclass(frozen=True)
class ThreadTodos:
    """The todos of one thread's latest checkpoint.

    Attributes:
        thread_id: The thread.
        todos: ``[{"content", "status"}, ...]`` (None: the thread never had todos).
        version: The plan version the thread last saw (``todos_version``; None when the
            thread never ran with ``RedisTodoMiddleware``).
    """

    thread_id: str
    todos: list[dict[str, str]] | None
    version: int | None


def _thread_todos(tup: CheckpointTuple) -> ThreadTodos:
    values = tup.checkpoint.get("channel_values") or {}
    raw = values.get("todos")
    todos = (
        [{"content": str(t.get("content", "")), "status": str(t.get("status", ""))} for t in raw]
        if isinstance(raw, list)
        else None
    )
    version = values.get("todos_version")
    thread_id = str(tup.config["configurable"]["thread_id"])
    return ThreadTodos(thread_id, todos, version if isinstance(version, int) else None)


def _root_config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def list_thread_ids(checkpointer: BaseCheckpointSaver[Any]) -> list[str]:
    """Every thread id with a root checkpoint, in first-seen order.

    Args:
        checkpointer: The saver.

    Returns:
        The thread ids.
    """
    seen: dict[str, None] = {}
    for tup in checkpointer.list(None):
        conf = tup.config.get("configurable") or {}
        if conf.get("checkpoint_ns", "") == "" and "thread_id" in conf:
            seen.setdefault(str(conf["thread_id"]), None)
    return list(seen)


async def alist_thread_ids(checkpointer: BaseCheckpointSaver[Any]) -> list[str]:
    """Async `list_thread_ids`.

    Args:
        checkpointer: The saver.

    Returns:
        The thread ids.
    """
    seen: dict[str, None] = {}
    async for tup in checkpointer.alist(None):
        conf = tup.config.get("configurable") or {}
        if conf.get("checkpoint_ns", "") == "" and "thread_id" in conf:
            seen.setdefault(str(conf["thread_id"]), None)
    return list(seen)


def iter_thread_todos(
    checkpointer: BaseCheckpointSaver[Any], thread_ids: Iterable[str] | None = None
) -> Iterator[ThreadTodos]:
    """The latest todos of each thread.

    Args:
        checkpointer: The saver.
        thread_ids: Only these threads (default: every thread).

    Yields:
        One `ThreadTodos` per thread that has a checkpoint.
    """
    ids = list_thread_ids(checkpointer) if thread_ids is None else list(thread_ids)
    for thread_id in ids:
        tup = checkpointer.get_tuple(_root_config(thread_id))
        if tup is not None:
            yield _thread_todos(tup)


async def aiter_thread_todos(
    checkpointer: BaseCheckpointSaver[Any], thread_ids: Iterable[str] | None = None
) -> AsyncIterator[ThreadTodos]:
    """Async `iter_thread_todos`.

    Args:
        checkpointer: The saver.
        thread_ids: Only these threads (default: every thread).

    Yields:
        One `ThreadTodos` per thread that has a checkpoint.
    """
    ids = await alist_thread_ids(checkpointer) if thread_ids is None else list(thread_ids)
    for thread_id in ids:
        tup = await checkpointer.aget_tuple(_root_config(thread_id))
        if tup is not None:
            yield _thread_todos(tup)


def _payload(todos: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    return [item.as_payload() for item in assign_ids([], todos)]


def _op_id(kind: str, thread_id: str, todos: Sequence[dict[str, str]], version: int) -> str:
    """A fresh op id per write (the repository resends it on its own retries).

    It used to be a function of (thread, todos, version): a later backfill or repair of the
    same todos at the same version, after the plan was lost again, replayed the first one's
    op record and reported "written" while nothing was written (issue 8 defect 4). Nothing
    needs it deterministic: each write carries ``expected_version``, so a second run of the
    same job gets ``ConflictError`` instead of applying twice. The readable part lands in
    the change log.
    """
    digest = hashlib.sha256(json.dumps(list(todos), sort_keys=True).encode()).hexdigest()[:8]
    return f"{kind}:{_thread_tag(thread_id)}:{version}:{digest}:{uuid.uuid4().hex}"


def _thread_tag(thread_id: Any) -> str:
    r"""The thread as an op id names it: as it is, or its digest when that cannot be stored.

    The repository refuses an op id over ``MAX_TAG_CHARS`` or holding a lone surrogate, and
    the thread id was put in raw: a thread with a long id (over ~1,000 characters) or one
    decoded from a JSON ``"\ud800"`` was ``failed`` by every backfill and repair, while the
    middleware runs such a thread (its keys encode the id, its actor cuts or escapes it).
    """
    text = str(thread_id)
    if len(text) <= _THREAD_TAG_CHARS and _storable(text):
        return text
    return "sha256-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# -- reconcile ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """One thread whose checkpoint and Redis plan disagree.

    Attributes:
        thread_id: The thread.
        scope: The plan scope compared with it.
        kind: See `DriftKind`.
        checkpoint_todos: The checkpoint's todos.
        checkpoint_version: The plan version the checkpoint saw (None: unversioned).
        redis_todos: The plan's items (content and status).
        redis_version: The plan's version.
        repaired: Whether this run wrote the checkpoint's todos to Redis.
        error: Why a repair failed, if it did.
    """

    thread_id: str
    scope: str
    kind: DriftKind
    checkpoint_todos: list[dict[str, str]]
    checkpoint_version: int | None
    redis_todos: list[dict[str, str]]
    redis_version: int
    repaired: bool = False
    error: str | None = None


@dataclass
class ReconcileReport:
    """What a reconciliation found.

    Attributes:
        checked: Threads with todos in their checkpoint.
        in_sync: Threads whose plan matches.
        drifts: Every disagreement, lagging ones included.
        unreadable: ``(thread_id, why)`` for threads whose plan could not be read (bytes
            under its key that are not a plan this package wrote, or a scope the repository
            refuses). They need a human, like alert-kind drift; the run goes on past them.
    """

    checked: int = 0
    in_sync: int = 0
    drifts: list[Drift] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def alerts(self) -> list[Drift]:
        """Drifts that mean lost or forked data (``missing``, ``behind``, ``diverged``)."""
        return [d for d in self.drifts if d.kind in ALERT_KINDS]

    @property
    def repaired(self) -> int:
        """How many drifts were repaired."""
        return sum(1 for d in self.drifts if d.repaired)

    def counts(self) -> dict[str, int]:
        """Drifts per kind.

        Returns:
            ``{kind: count}`` for every kind (zeros included).
        """
        out = {"missing": 0, "behind": 0, "diverged": 0, "lagging": 0}
        for d in self.drifts:
            out[d.kind] += 1
        return out


def classify(entry: ThreadTodos, plan: TodoList) -> DriftKind | None:
    """Classify one thread against its plan.

    Args:
        entry: The thread's checkpoint todos.
        plan: The Redis plan.

    Returns:
        The drift kind, or None when they agree.
    """
    todos = entry.todos or []
    if todos == plan.as_langchain():
        return None
    if plan.version == 0:
        return "missing"
    if entry.version is not None and plan.version < entry.version:
        return "behind"
    if entry.version is not None and plan.version > entry.version:
        return "lagging"
    return "diverged"


class TodoReconciler:
    """Compares Redis plans with the latest checkpoint of each thread.

    After each run it counts ``todos.reconcile.drift`` (attrs ``kind``) and
    ``todos.reconcile.checked`` through core's instrumentation and logs one WARNING line
    (logger ``deepagents_redis.todos._reconcile``) when any alert-kind drift is found: alert on
    that counter being above zero (see the docs' alerting section).

    Example:
        >>> report = TodoReconciler(repo, saver).reconcile(repair=True)  # doctest: +SKIP
        >>> report.counts()  # doctest: +SKIP
        {'missing': 0, 'behind': 1, 'diverged': 0, 'lagging': 3}
    """

    def __init__(
        self,
        repository: RedisTodoRepository,
        checkpointer: BaseCheckpointSaver[Any],
        *,
        scope_for_thread: Callable[[str], str] | None = None,
    ) -> None:
        """Create a reconciler.

        Args:
            repository: Where the plans live.
            checkpointer: Where the threads live.
            scope_for_thread: Maps a thread id to its plan scope (default: the thread id,
                as ``RedisTodoMiddleware`` scopes plans by default).
        """
        self.repository = repository
        """Where the plans live."""
        self.checkpointer = checkpointer
        """Where the threads live."""
        self.scope_for_thread = scope_for_thread or (lambda thread_id: thread_id)
        """Thread id -> plan scope."""

    def _drift(self, entry: ThreadTodos, plan: TodoList, kind: DriftKind) -> Drift:
        return Drift(
            thread_id=entry.thread_id,
            scope=plan.scope,
            kind=kind,
            checkpoint_todos=entry.todos or [],
            checkpoint_version=entry.version,
            redis_todos=plan.as_langchain(),
            redis_version=plan.version,
        )

    def _finish(self, report: ReconcileReport) -> ReconcileReport:
        inst = get_instrumentation()
        inst.count("todos.reconcile.checked", report.checked)
        for kind, count in report.counts().items():
            if count:
                inst.count("todos.reconcile.drift", count, kind=kind)
        if report.unreadable:
            inst.count("todos.reconcile.unreadable", len(report.unreadable))
            log.warning(
                "todos: %d plan(s) could not be read and were not compared (first: thread "
                "%r: %s); see `deepagents-redis todos reconcile`",
                len(report.unreadable),
                *report.unreadable[0],
            )
        if report.alerts:
            counts = report.counts()
            log.warning(
                "todos drift: %d plan(s) out of step with their checkpoints "
                "(missing=%d behind=%d diverged=%d; repaired=%d); see "
                "`deepagents-redis todos reconcile`",
                len(report.alerts),
                counts["missing"],
                counts["behind"],
                counts["diverged"],
                report.repaired,
            )
        return report

    def _flow(
        self, entries: list[ThreadTodos], repair: bool, progress: Progress | None
    ) -> Generator[RepoCall, Any, ReconcileReport]:
        """The reconciliation, written once: run on the repository's sync or async methods."""
        report = ReconcileReport()
        for done, entry in enumerate(entries, 1):
            if entry.todos is not None:
                report.checked += 1
                plan = yield ("get", (self.scope_for_thread(entry.thread_id),), {})
                if isinstance(plan, _UNREADABLE):
                    # One poisoned or unaddressable plan used to end the run: every thread
                    # after it went unchecked (and unrepaired) until a human found it.
                    why = f"{type(plan).__name__}: {plan}"
                    report.unreadable.append((entry.thread_id, why))
                    if progress is not None:
                        progress(done, len(entries))
                    continue
                if isinstance(plan, BaseException):
                    raise plan  # Redis itself failed: every later read would too
                kind = classify(entry, plan)
                if kind is None:
                    report.in_sync += 1
                else:
                    drift = self._drift(entry, plan, kind)
                    if repair and kind in ("missing", "behind"):
                        done_ = yield (
                            "replace",
                            (drift.scope, _payload(drift.checkpoint_todos)),
                            {
                                "expected_version": drift.redis_version,
                                "op_id": _op_id(
                                    "repair",
                                    entry.thread_id,
                                    drift.checkpoint_todos,
                                    drift.redis_version,
                                ),
                                "actor": "reconcile",
                            },
                        )
                        if isinstance(done_, BaseException):
                            drift = _with(drift, error=str(done_))
                        else:
                            drift = _with(drift, repaired=True)
                    report.drifts.append(drift)
            if progress is not None:
                progress(done, len(entries))
        return self._finish(report)

    def reconcile(
        self,
        *,
        repair: bool = False,
        thread_ids: Iterable[str] | None = None,
        progress: Progress | None = None,
    ) -> ReconcileReport:
        """Compare every thread (or ``thread_ids``) with its plan.

        Args:
            repair: Write the checkpoint's todos to Redis for ``missing`` and ``behind``
                drift (versioned: a plan that moves meanwhile is left alone and reported).
            thread_ids: Only these threads.
            progress: Called after each thread.

        Returns:
            The report.
        """
        entries = list(iter_thread_todos(self.checkpointer, thread_ids))
        return drive_operation(
            self._flow(entries, repair, progress), repo_step(self.repository, _HANDLED)
        )

    async def areconcile(
        self,
        *,
        repair: bool = False,
        thread_ids: Iterable[str] | None = None,
        progress: Progress | None = None,
    ) -> ReconcileReport:
        """Async `reconcile` (async saver and async Redis client).

        Args:
            repair: As `reconcile`.
            thread_ids: Only these threads.
            progress: Called after each thread.

        Returns:
            The report.
        """
        entries = [e async for e in aiter_thread_todos(self.checkpointer, thread_ids)]
        return await adrive_operation(
            self._flow(entries, repair, progress), arepo_step(self.repository, _HANDLED)
        )


def _with(drift: Drift, **changes: Any) -> Drift:
    from dataclasses import replace

    return replace(drift, **changes)


# -- backfill -----------------------------------------------------------------------------


@dataclass
class BackfillReport:
    """What a backfill did (or, with ``dry_run``, would do).

    Attributes:
        threads: Threads scanned.
        with_todos: Threads whose latest checkpoint has a non-empty todo list.
        written: Plans written to Redis (with ``dry_run``: that would be written).
        already_present: Threads skipped because Redis already has their plan.
        failed: ``(thread_id, error)`` for threads that could not be written.
        dry_run: Whether nothing was written.
    """

    threads: int = 0
    with_todos: int = 0
    written: int = 0
    already_present: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        """One line for humans.

        Returns:
            The summary.
        """
        verb = "would write" if self.dry_run else "wrote"
        return (
            f"scanned {self.threads} thread(s), {self.with_todos} with todos: {verb} "
            f"{self.written}, already in Redis {self.already_present}, failed {len(self.failed)}"
        )


class TodoBackfill:
    """Copies each thread's checkpoint todos into Redis, once.

    Safe to run twice and alongside live agents: a plan is written only when Redis has
    none for that scope (``replace`` expecting version 0, with an op id derived from the
    thread and its todos), so an existing or concurrently created plan is never
    overwritten.
    """

    def __init__(
        self,
        repository: RedisTodoRepository,
        checkpointer: BaseCheckpointSaver[Any],
        *,
        scope_for_thread: Callable[[str], str] | None = None,
    ) -> None:
        """Create a backfill.

        Args:
            repository: Where the plans go.
            checkpointer: Where the threads are read from.
            scope_for_thread: Maps a thread id to its plan scope (default: the thread id).
        """
        self.repository = repository
        """Where the plans go."""
        self.checkpointer = checkpointer
        """Where the threads are read from."""
        self.scope_for_thread = scope_for_thread or (lambda thread_id: thread_id)
        """Thread id -> plan scope."""

    def _flow(
        self, entries: list[ThreadTodos], dry_run: bool, progress: Progress | None
    ) -> Generator[RepoCall, Any, BackfillReport]:
        """The backfill, written once: run on the repository's sync or async methods."""
        report = BackfillReport(dry_run=dry_run)
        for done, entry in enumerate(entries, 1):
            report.threads += 1
            if entry.todos:
                report.with_todos += 1
                scope = self.scope_for_thread(entry.thread_id)
                reply = yield ("get", (scope,), {})
                if not isinstance(reply, BaseException) and reply.version:
                    report.already_present += 1
                elif not isinstance(reply, BaseException) and dry_run:
                    report.written += 1
                elif not isinstance(reply, BaseException):
                    reply = yield (
                        "replace",
                        (scope, _payload(entry.todos)),
                        {
                            "expected_version": 0,
                            "op_id": _op_id("backfill", entry.thread_id, entry.todos, 0),
                            "actor": "backfill",
                        },
                    )
                    if not isinstance(reply, BaseException):
                        report.written += 1
                if isinstance(reply, ConflictError):
                    report.already_present += 1
                elif isinstance(reply, BaseException):
                    report.failed.append((entry.thread_id, str(reply)))
            if progress is not None:
                progress(done, len(entries))
        get_instrumentation().count("todos.backfill.written", report.written, dry_run=dry_run)
        return report

    def run(self, *, dry_run: bool = False, progress: Progress | None = None) -> BackfillReport:
        """Backfill every thread.

        Args:
            dry_run: Read only: count what would be written.
            progress: Called after each thread.

        Returns:
            The report.
        """
        entries = list(iter_thread_todos(self.checkpointer))
        return drive_operation(
            self._flow(entries, dry_run, progress), repo_step(self.repository, _HANDLED)
        )

    async def arun(
        self, *, dry_run: bool = False, progress: Progress | None = None
    ) -> BackfillReport:
        """Async `run` (async saver and async Redis client).

        Args:
            dry_run: Read only: count what would be written.
            progress: Called after each thread.

        Returns:
            The report.
        """
        entries = [e async for e in aiter_thread_todos(self.checkpointer)]
        return await adrive_operation(
            self._flow(entries, dry_run, progress), arepo_step(self.repository, _HANDLED)
        )
