"""Every key of the coord phase (ADR 0003 "keys and hash tags"), built through `KeySpace`.

Everything one task touches (its record, events, inbox and op records) shares the task's hash
tag, so every write about a task is one script in one Cluster slot. An agent's queue, its
delayed retries, its dead letters, its index of queued tasks and its tasks' enqueue marks
share the queue's tag.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Final

from deepagents_redis.core import InvalidInputError, KeySpace

__all__ = [
    "GROUP",
    "KIND",
    "CoordKeys",
    "QueueKeys",
    "TaskKeys",
    "check_name",
    "check_task_id",
    "is_task_id_bytes",
    "new_task_id",
]

KIND: Final = "coord"
"""The key kind of every coord key."""

GROUP: Final = "workers"
"""The consumer group every worker of a queue reads in."""

_TASK_ID_PATTERN: Final = "[0-9a-f]{32}"
"""A task id: 32 lower-case hex digits (`new_task_id`), the one rule for both forms below."""
_TASK_ID: Final = re.compile(_TASK_ID_PATTERN)
# The same rule for ids as Redis hands them back (bytes), without decoding each member first.
_TASK_ID_BYTES: Final = re.compile(_TASK_ID_PATTERN.encode("ascii"))
_MAX_NAME = 200


def check_name(what: str, value: object) -> str:
    """Validate an untrusted name (namespace, agent, topic): printable text, bounded.

    Args:
        what: What the value names, for the error message.
        value: The value.

    Returns:
        The value.

    Raises:
        InvalidInputError: Not a non-empty printable string of at most 200 characters.
    """
    if not isinstance(value, str) or not value or len(value) > _MAX_NAME:
        raise InvalidInputError(f"{what} must be a non-empty string of at most {_MAX_NAME} chars")
    if not value.isprintable():
        raise InvalidInputError(f"{what} {value!r} holds control or non-printable characters")
    return value


def new_task_id() -> str:
    """A fresh task id (32 lower-case hex digits)."""
    return uuid.uuid4().hex


def check_task_id(task_id: object) -> str:
    """Validate a task id given by a caller (it becomes part of keys).

    Returns:
        The id.

    Raises:
        InvalidInputError: Not 32 lower-case hex digits.
    """
    if not isinstance(task_id, str) or not _TASK_ID.fullmatch(task_id):
        raise InvalidInputError(f"task id {task_id!r} is not 32 lower-case hex digits")
    return task_id


def is_task_id_bytes(raw: bytes) -> bool:
    """Whether `raw`, as Redis returned it, is a task id (the rule of `check_task_id`).

    Args:
        raw: A member or field read from Redis.

    Returns:
        True for 32 lower-case hex digits.
    """
    return _TASK_ID_BYTES.fullmatch(raw) is not None


_KEYS_KEPT: Final = 1_024
"""How many task (and queue) key sets a `CoordKeys` keeps built."""


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The keys of one agent's queue (one hash tag)."""

    scope: str
    stream: str
    """Stream of task ids waiting or running (consumer group `workers`)."""
    delayed: str
    """Sorted set: task id -> when (ms) its retry is due."""
    dlq: str
    """Stream of dead letters."""
    queued: str
    """Sorted set: task id -> ms of its queue entry (at most that), for every task whose
    enqueue mark has no TTL (queued, read or running). The one place a task is found from
    when its entry is gone: a stream deleted under it (an operator, a FLUSH of one key) took
    every entry with it, and with them the pending lists ``XAUTOCLAIM`` reads, so a task
    whose worker then died was on no list at all. The worker's sweep (lost.lua, sweep.lua)
    queues such a task again."""


@dataclass(frozen=True, slots=True)
class TaskKeys:
    """The keys of one task (one hash tag)."""

    scope: str
    record: str
    """Hash: status, attempts, fencing token, lease, input, result."""
    events: str
    """Stream of the task's lifecycle and progress events."""
    inbox: str
    """Stream of follow-up messages (`send`)."""
    done: str
    """List of one item (the status), pushed when the task ends: a waiter blocks on it alone
    (the events stream would also wake it for 'started' and each progress event). A list,
    not a stream: ~150 bytes instead of a stream node's ~4.7 KB, for as long as the ended
    task is kept."""

    @property
    def scripted(self) -> list[str]:
        """The keys the task's lifecycle scripts take: record, events, inbox, done."""
        return [self.record, self.events, self.inbox, self.done]


class CoordKeys:
    """Key builder of one namespace.

    Args:
        keyspace: The connector's key space (prefix, schema version).
        namespace: The coord namespace (untrusted: encoded by `KeySpace`).
    """

    __slots__ = ("_ks", "_log", "_queues", "_tasks", "namespace")

    def __init__(self, keyspace: KeySpace, namespace: str) -> None:
        self._ks = keyspace
        self.namespace = check_name("namespace", namespace)
        # Recently built keys: a submit -> result builds one task's keys three times and a
        # queue's once (~10 µs each, issue 13's coord profile). Bounded; cleared when full.
        self._tasks: dict[str, TaskKeys] = {}
        self._queues: dict[str, QueueKeys] = {}
        # the log key goes with every claim and finish on a single server: built once
        self._log = self._ks.key(KIND, f"{self.namespace}/log", "events")

    @property
    def keyspace(self) -> KeySpace:
        """The key space."""
        return self._ks

    def queue(self, agent: str) -> QueueKeys:
        """The keys of `agent`'s queue."""
        keys = self._queues.get(agent) if type(agent) is str else None
        if keys is not None:
            return keys
        scope = f"{self.namespace}/q/{check_name('agent', agent)}"
        keys = QueueKeys(
            scope=scope,
            stream=self._ks.key(KIND, scope, "tasks"),
            delayed=self._ks.key(KIND, scope, "delayed"),
            dlq=self._ks.key(KIND, scope, "dlq"),
            queued=self._ks.key(KIND, scope, "queued"),
        )
        if len(self._queues) >= _KEYS_KEPT:
            self._queues.clear()
        self._queues[agent] = keys
        return keys

    def task(self, task_id: str) -> TaskKeys:
        """The keys of one task."""
        keys = self._tasks.get(task_id) if type(task_id) is str else None
        if keys is not None:
            return keys
        scope = f"{self.namespace}/t/{check_task_id(task_id)}"
        # the scope (a task id: the hash tag) encoded once for the four keys (client and
        # worker each build them once per task)
        task = self._ks.scoped(KIND, scope)
        keys = TaskKeys(
            scope=scope,
            record=task.key("task"),
            events=task.key("events"),
            inbox=task.key("inbox"),
            done=task.key("done"),
        )
        if len(self._tasks) >= _KEYS_KEPT:
            self._tasks.clear()
        self._tasks[task_id] = keys
        return keys

    def op(self, scope: str, op_id: str) -> str:
        """The op-id key of a retry-safe write in `scope`'s slot."""
        return self._ks.op_key(scope, op_id)

    def mark(self, queue: QueueKeys, task_id: str) -> str:
        """The enqueue mark of `task_id` on `queue` (in its slot).

        The mark holds the entry id the task is queued as now. Submit's enqueue writes it
        once; every script that queues the task again (a hand-back, a due retry, an
        operator's retry) moves it to the new entry, so a cancel can take the task off the
        queue wherever it was put.
        """
        return self._ks.op_key(queue.scope, f"enqueue:{task_id}")

    @property
    def registry(self) -> str:
        """Sorted set: agent name -> when (ms) a worker last announced it."""
        return self._ks.key(KIND, f"{self.namespace}/reg", "agents")

    @property
    def workers(self) -> str:
        """Sorted set: worker id -> when (ms) it last heartbeated (same tag as `registry`)."""
        return self._ks.key(KIND, f"{self.namespace}/reg", "workers")

    @property
    def log(self) -> str:
        """The namespace's global event log (a live tail, trimmed hard)."""
        return self._log

    def topic(self, topic: str) -> str:
        """The stream of an `EventBus` topic."""
        scope = f"{self.namespace}/bus/{check_name('topic', topic)}"
        return self._ks.key(KIND, scope, "events")

    def topic_scope(self, topic: str) -> str:
        """The scope (hash tag) of a topic, for its idempotency keys."""
        return f"{self.namespace}/bus/{check_name('topic', topic)}"
