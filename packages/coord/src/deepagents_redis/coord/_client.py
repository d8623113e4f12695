"""`TaskClient`: submit work to remote workers, follow it, cancel it (sync and asyncio).

Every method is written once, as an operation (core's driver runs it on the sync or the
asyncio client). Submitting is two scripts in two slots, ordered so a crash between them is
repaired by the retry (ADR 0003 "keys and hash tags"):

1. ``coord_create`` writes the task record in the task's slot, once: the task id of a submit
   with an ``idempotency_key`` is derived from the key, so a repeat finds the record and
   returns the same id (a different agent or input under the same key is an error);
2. ``coord_enqueue`` adds the id to the agent's queue once (a mark keyed by the task id), if
   the backlog has room; else the submit waits up to `timeout` or removes the record it
   created and raises `BackpressureError`.

The record is created with a TTL (longer than the submit may take) that goes once the task
is queued: in the enqueue's own call on a single server, by a third call (``coord_confirm``)
on a Cluster, and at the latest when a worker claims the task. A submit that never queued its
task (failed for good, refused while a same-key submit kept the record, its process died)
leaves a record that expires instead of one pending on no queue for good.

Waiting for a result blocks on the task's end list (``BLMOVE`` of its one item onto itself),
which the script that ends the task fills: the wait wakes once, when the task has ended, with
no pub/sub and no polling (the events stream would also wake it for 'started' and progress).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from typing import Any, Final, Literal, NamedTuple, Unpack

from deepagents_redis.coord._common import (
    TASK_FIELDS,
    CoordComponent,
    TaskInfo,
    check_count,
    is_stream_id,
    parse_record,
    text,
)
from deepagents_redis.coord._errors import ResultTimeoutError, TaskFailedError, UnknownAgentError
from deepagents_redis.coord._event import EVENT_FIELD, Event, decode_event
from deepagents_redis.coord._keys import TaskKeys, check_name, check_task_id, new_task_id
from deepagents_redis.coord._scripts import (
    ABANDON,
    CANCEL,
    CONFIRM,
    CREATE,
    DEQUEUE,
    ENQUEUE,
    RESET,
    SEND,
    TERMINAL,
    UNRESET,
)
from deepagents_redis.coord._settings import CoordOptions
from deepagents_redis.core import (
    BackpressureError,
    Chain,
    Command,
    Idempotent,
    InvalidInputError,
    NotFoundError,
    Operation,
    OutcomeUnknownError,
    PayloadTooLargeError,
    Pipeline,
    Script,
    SerializationError,
    Sleep,
    arun_operation,
    get_instrumentation,
    jittered_backoff,
    new_op_id,
    run_operation,
    trace_carrier,
)

__all__ = ["TaskClient", "UpdateStrategy"]

log = logging.getLogger("deepagents_redis.coord")

_SOURCE: Final = "client"
_SUBMITTED_MEMO: Final = 4_096

_OUTCOME_FIELDS: Final = ("status", "error", "result")
"""What `result()` reads of a task record: a third of `TASK_FIELDS`, less to parse per wait."""


class _Outcome(NamedTuple):
    """A task's end as `result()` needs it (a `TaskInfo` would read the whole record)."""

    task_id: str
    status: str
    error: str | None
    result: Any

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


"""Most task ids a client remembers creating (see `TaskClient._submitted`)."""

UpdateStrategy = Literal["enqueue", "interrupt"]
"""How a follow-up reaches a running task (deepagents' ``update_strategy``)."""


def _check_after(after: object) -> str:
    """Check an `events` cursor: a stream id, or one of the spellings of "from the start".

    Anything else went to ``XRANGE`` as it was, and the server's "Invalid stream ID" came
    back as a bare `DeepAgentsRedisError` instead of a bad-argument error.
    """
    if not isinstance(after, str) or (
        after not in ("", "0", "0-0", "-") and not is_stream_id(after)
    ):
        raise InvalidInputError(
            f"after must be a stream id such as '1700000000000-0', not {after!r}"
        )
    return after


def _check_seconds(what: str, value: object) -> None:
    """Check a number of seconds a caller gives (None passes: no limit).

    NaN made an operation's deadline NaN, reported as RedisUnavailableError ("deadline
    exceeded") as if the server were down; a bool read as 0 or 1 second.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidInputError(f"{what} must be a number of seconds or None, not {value!r}")


_PENDING_TTL_SPARE_MS: Final = 60_000
"""How much longer than its submit may take a new record lives unqueued (a submit's last
calls may still be on their way when its deadline passes)."""
_MAX_TTL_MS: Final = 10 * 365 * 86_400_000
"""Longest TTL handed to the server (a longer one is out of ``PEXPIRE``'s range)."""


def _pending_ttl_ms(deadline: float, wait: float | None) -> int:
    """The TTL of a new task's record until its submit queued it (see create.lua).

    Longer than the whole submit may take (its deadline plus its wait for room), so only a
    submit that did not get as far as queueing the task leaves a record that expires.
    """
    ms = (deadline + max(wait or 0.0, 0.0)) * 1000 + _PENDING_TTL_SPARE_MS
    return int(min(ms, _MAX_TTL_MS))


def _check_strategy(strategy: str) -> None:
    if strategy not in ("enqueue", "interrupt"):
        raise InvalidInputError(f"strategy must be 'enqueue' or 'interrupt', not {strategy!r}")


class TaskClient(CoordComponent):
    """Submit tasks to workers of a namespace and follow them.

    Args:
        check_agents: Refuse to submit to an agent no worker has announced
            (`UnknownAgentError` naming the known ones). Off: tasks wait for a worker.
        **kwargs: The connection, as every component takes it (`connector=`, or the
            conveniences `url=`, `settings=`, `client=`, `async_client=`), `coord_settings=`,
            and any `CoordSettings` field as an override (`namespace=`, `max_backlog=`...).

    Example:
        >>> with TaskClient.from_url(url, namespace="demo") as tasks:  # doctest: +SKIP
        ...     task_id = tasks.submit("researcher", {"messages": [...]})
        ...     print(tasks.result(task_id, timeout=60))
    """

    def __init__(self, *, check_agents: bool = True, **kwargs: Unpack[CoordOptions]) -> None:
        super().__init__(**kwargs)
        self._check_agents = check_agents
        self._known: set[str] = set()
        # The tasks this client created: waiting on one starts with the blocking read, not
        # with a first look at the record (one round trip less on the submit -> result
        # path). Bounded; a miss only costs that first look.
        self._submitted: OrderedDict[str, None] = OrderedDict()
        self._submitted_lock = threading.Lock()

    def _note_submitted(self, task_id: str) -> None:
        with self._submitted_lock:
            self._submitted[task_id] = None
            while len(self._submitted) > _SUBMITTED_MEMO:
                self._submitted.popitem(last=False)

    def _take_submitted(self, task_id: str) -> bool:
        with self._submitted_lock:
            return self._submitted.pop(task_id, False) is None

    # ------------------------------------------------------------------ submit

    def _prepare(
        self, agent: str, input: Any, idempotency_key: str | None, run_timeout: float | None
    ) -> tuple[str, bytes, str, str, bool]:
        check_name("agent", agent)
        if idempotency_key is not None:
            check_name("idempotency_key", idempotency_key)
            task_id = hashlib.sha256(
                f"{self.namespace}\0{idempotency_key}".encode("utf-8", "surrogatepass")
            ).hexdigest()[:32]
        else:
            task_id = new_task_id()
        _check_seconds("run_timeout", run_timeout)
        if run_timeout is not None and not run_timeout > 0:
            raise InvalidInputError("run_timeout must be positive seconds")
        keys = self.keys.task(task_id)
        payload = self.codec.encode(input, key=keys.record)
        if len(payload) > self.coord_settings.max_input_bytes:
            raise PayloadTooLargeError(len(payload), self.coord_settings.max_input_bytes)
        # What makes a repeat "the same request": the agent, the input and an explicit
        # run_timeout (without it, another limit read as a repeat and ran under the first
        # one); the settings' default is the client's, not the request's, like max_attempts.
        # A submit without run_timeout keeps the digest it always had (records made
        # before are still recognised); the second NUL keeps the two forms apart (an agent
        # name is printable, a payload starts with the codec's envelope byte).
        head = agent.encode("utf-8", "surrogatepass") + b"\0"
        if run_timeout is not None:
            head += f"\0run_timeout={float(run_timeout)!r}\0".encode()
        digest = hashlib.sha1(head + payload, usedforsecurity=False).hexdigest()
        timeout = run_timeout or self.coord_settings.task_timeout_seconds
        fresh = idempotency_key is None  # a new random id: no earlier record can exist
        return task_id, payload, digest, "" if timeout is None else repr(float(timeout)), fresh

    def _submit_op(
        self,
        agent: str,
        prepared: tuple[str, bytes, str, str, bool],
        wait: float | None,
        check: bool,
    ) -> Operation[str]:
        task_id, payload, digest, timeout, fresh = prepared
        opts = self.coord_settings
        if check and agent not in self._known:
            score = yield Command(("ZSCORE", self.keys.registry, agent))
            if score is None:
                known = yield Command(("ZRANGE", self.keys.registry, 0, -1))
                raise UnknownAgentError(agent, sorted(text(k) for k in known), self.namespace)
            self._known.add(agent)
        keys = self.keys.task(task_id)
        event = self._encoded("task.submitted", _SOURCE, task_id, agent, keys)
        create_keys = [keys.record, keys.events, keys.inbox]
        create_args = [
            agent,
            payload,
            digest,
            opts.max_attempts,
            event,
            opts.events_maxlen,
            timeout,
            json.dumps(trace) if (trace := trace_carrier()) else "",
            _pending_ttl_ms(self._deadline, wait),
        ]
        queue = self.keys.queue(agent)
        mark = self.keys.mark(queue, task_id)
        enqueue_keys = [queue.stream, queue.delayed, mark, queue.queued]
        # The record lives with the TTL its create gave it until the task is queued: on a
        # single server the enqueue removes it in the same call (it may touch any slot), on
        # a Cluster a last call does (`CONFIRM`). A submit that never gets that far (its
        # enqueue failed for good or was refused, its process died) leaves a record that
        # expires, not one pending on no queue for good.
        single = self._connector.cluster_hint is False
        if single:
            enqueue_keys += [keys.record, keys.events, keys.inbox]
        enqueue_args = [task_id, opts.max_backlog, opts.result_ttl_seconds * 1000]
        first: Any = None
        if fresh:
            # A new task id: create and enqueue in one round trip (core's `Chain`: one script
            # on one server, so no worker can see the entry before the record; one call each,
            # in order, across Cluster slots). No earlier record can exist, so the enqueue
            # that follows the create is the one the loop below would make.
            (created, status, same, _event_id), first = yield Chain(
                [
                    Script(CREATE, create_keys, create_args),
                    Script(ENQUEUE, enqueue_keys, enqueue_args),
                ]
            )
            # This submit made the record even when the create reads "there already": that
            # is its own call re-sent after a lost reply (nobody else knows a random id). It
            # must still remove the record when the backlog stays full (it left a pending
            # record, with no TTL, on no queue).
            created = 1
        else:
            created, status, same, _event_id = yield Script(CREATE, create_keys, create_args)
        if not same:
            raise InvalidInputError(
                f"idempotency key already used for another agent, input or run_timeout"
                f" (task {task_id})"
            )
        if text(status) != "pending":
            return task_id  # an earlier submit with this key: started or finished already
        if created:
            self._note_submitted(task_id)
        until = None if wait is None else time.monotonic() + wait
        attempt = 0
        while True:
            if first is not None:
                reply, first = first, None
            else:
                reply = yield Script(ENQUEUE, enqueue_keys, enqueue_args)
            if int(reply[0]) == 1:
                if not single:
                    kept = yield Script(CONFIRM, [keys.record, keys.events, keys.inbox])
                    if not int(kept):
                        # its TTL ran out before this call (a submit slower than its own
                        # deadline): the entry is dropped by the worker that reads it
                        raise OutcomeUnknownError(
                            f"task {task_id} expired before its submit ended; submit again"
                        )
                return task_id
            left = None if until is None else until - time.monotonic()
            if left is None or left <= 0:
                if created:
                    self._take_submitted(task_id)
                    yield Script(
                        ABANDON, [keys.record, keys.events], [digest, "1" if fresh else ""]
                    )
                raise BackpressureError(int(reply[1]), int(reply[2]))
            attempt += 1
            yield Sleep(min(left, jittered_backoff(attempt, 0.02, 0.5) + 0.005))

    def submit(
        self,
        agent: str,
        input: Any,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        run_timeout: float | None = None,
    ) -> str:
        """Queue `input` for `agent` and return the task id (at once: the run is remote).

        Args:
            agent: Which agent runs it (a name a `Worker` serves).
            input: The run's input (plain data; LangChain messages through the codec).
            idempotency_key: Submitting again with the same key (and the same agent, input
                and run_timeout) returns the same task id and runs nothing more (kept
                `result_ttl_seconds` after the task ends).
            timeout: How long to wait for room when the agent's backlog is full; None
                raises `BackpressureError` at once.
            run_timeout: Longest run of one attempt (default `task_timeout_seconds`).

        Returns:
            The task id (32 hex digits).

        Raises:
            UnknownAgentError: No worker serves `agent` (with `check_agents`).
            PayloadTooLargeError: The encoded input is over `max_input_bytes`.
            BackpressureError: The backlog stayed full.
            InvalidInputError: The idempotency key was used for another agent, input or
                run_timeout.
        """
        _check_seconds("timeout", timeout)
        prepared = self._prepare(agent, input, idempotency_key, run_timeout)
        return run_operation(
            self._connector,
            "coord.submit",
            self._submit_op(agent, prepared, timeout, self._check_agents),
            deadline_seconds=self._deadline + (timeout or 0.0),
            agent=agent,
        )

    async def asubmit(
        self,
        agent: str,
        input: Any,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the sync twin's API
        run_timeout: float | None = None,
    ) -> str:
        """Async twin of `submit` (same arguments, same errors).

        Returns:
            The task id.
        """
        _check_seconds("timeout", timeout)
        prepared = self._prepare(agent, input, idempotency_key, run_timeout)
        return await arun_operation(
            self._connector,
            "coord.submit",
            self._submit_op(agent, prepared, timeout, self._check_agents),
            deadline_seconds=self._deadline + (timeout or 0.0),
            agent=agent,
        )

    # ------------------------------------------------------------------ read

    def _get_op(self, task_id: str) -> Operation[TaskInfo]:
        keys = self.keys.task(task_id)
        values = yield Command(("HMGET", keys.record, *TASK_FIELDS))
        return self._record(task_id, keys, values)

    def _input_op(self, task_id: str) -> Operation[Any]:
        keys = self.keys.task(task_id)
        raw = yield Command(("HGET", keys.record, "input"))
        if raw is None:
            raise NotFoundError(f"no task {task_id} in namespace {self.namespace!r}")
        return self.codec.decode(raw, key=keys.record)

    def task_input(self, task_id: str) -> Any:
        """The input a task was submitted with (what `get` leaves on the server).

        Raises:
            NotFoundError: No such task.
        """
        check_task_id(task_id)
        return run_operation(
            self._connector,
            "coord.input",
            self._input_op(task_id),
            deadline_seconds=self._deadline,
        )

    async def atask_input(self, task_id: str) -> Any:
        """Async twin of `task_input`."""
        check_task_id(task_id)
        return await arun_operation(
            self._connector,
            "coord.input",
            self._input_op(task_id),
            deadline_seconds=self._deadline,
        )

    def _record(self, task_id: str, keys: TaskKeys, values: list[Any]) -> TaskInfo:
        """The task read from its record's `TASK_FIELDS` values, or `NotFoundError`."""
        info = parse_record(task_id, keys, values, self.codec)
        if info is None:
            raise NotFoundError(f"no task {task_id} in namespace {self.namespace!r}")
        return info

    def get(self, task_id: str) -> TaskInfo:
        """Read a task's status, attempts, errors and (once done) result.

        Raises:
            NotFoundError: No such task (never submitted, or expired after it ended).
        """
        check_task_id(task_id)
        return run_operation(
            self._connector, "coord.get", self._get_op(task_id), deadline_seconds=self._deadline
        )

    async def aget(self, task_id: str) -> TaskInfo:
        """Async twin of `get`."""
        check_task_id(task_id)
        return await arun_operation(
            self._connector, "coord.get", self._get_op(task_id), deadline_seconds=self._deadline
        )

    def _brief(self, task_id: str, keys: TaskKeys, values: list[Any]) -> _Outcome:
        """The task's outcome from the ``HMGET`` of `_OUTCOME_FIELDS`, or `NotFoundError`."""
        status, error, result = values
        if status is None:
            raise NotFoundError(f"no task {task_id} in namespace {self.namespace!r}")
        value = None if result is None else self.codec.decode(result, key=keys.record)
        return _Outcome(task_id, text(status), text(error) or None, value)

    def _wait_op(
        self, task_id: str, timeout: float | None, *, brief: bool = False
    ) -> Operation[Any]:
        """Wait for the task's end: its `TaskInfo`, or with `brief` only its `_Outcome`.

        The outcome (status, error, result) is what `result()` needs: a third of the
        record to read and parse per wait.
        """
        keys = self.keys.task(task_id)
        fields, read = (_OUTCOME_FIELDS, self._brief) if brief else (TASK_FIELDS, self._record)
        until = None if timeout is None else time.monotonic() + timeout
        # One blocking read stays under the socket timeout, so a slow answer is never
        # mistaken for a dead connection.
        block_cap = max(0.05, min(1.0, self._connector.settings.socket_timeout / 2))
        status = "pending"
        # A task this client just created exists: its wait blocks right away, without a
        # first look. Any other is looked at first, so an unknown id fails at once.
        looked = not self._take_submitted(task_id)
        if looked:
            info = read(task_id, keys, (yield Command(("HMGET", keys.record, *fields))))
            if info.done:
                return info
            status = info.status
        while True:
            left = None if until is None else until - time.monotonic()
            if left is not None and left <= 0:
                if not looked:
                    # No time left before the first look (`timeout=0`, "is it done yet?"):
                    # look once, or a task that has ended would be reported still pending.
                    looked = True
                    info = read(task_id, keys, (yield Command(("HMGET", keys.record, *fields))))
                    if info.done:
                        return info
                    status = info.status
                raise ResultTimeoutError(f"task {task_id} is still {status} after {timeout}s")
            block = block_cap if left is None else min(block_cap, left)
            # The script that ends the task pushes the one item of its end list; moving
            # that item onto the same list leaves it there, so every waiter wakes, once,
            # when the task has ended (an ended task answers at once). The record is read
            # in the same round trip, after the wait returns.
            ended, values = yield Pipeline(
                [
                    ("BLMOVE", keys.done, keys.done, "LEFT", "LEFT", f"{max(block, 0.001):.3f}"),
                    ("HMGET", keys.record, *fields),
                ]
            )
            info = read(task_id, keys, values)
            looked = True
            if info.done:
                return info
            status = info.status
            if ended is not None:
                # an end the record does not show (only something else writing these keys
                # can do that): do not spin on it
                yield Sleep(block)

    @staticmethod
    def _outcome(info: TaskInfo | _Outcome) -> Any:
        if info.status != "success":
            raise TaskFailedError(info.task_id, info.status, info.error)
        return info.result

    def join(self, task_id: str, *, timeout: float | None = None) -> TaskInfo:
        """Wait until the task ends and return its `TaskInfo` (whatever the status).

        Raises:
            ResultTimeoutError: Still running after `timeout` seconds (it keeps running).
            NotFoundError: No such task.
        """
        check_task_id(task_id)
        _check_seconds("timeout", timeout)
        info: TaskInfo = run_operation(
            self._connector,
            "coord.join",
            self._wait_op(task_id, timeout),
            deadline_seconds=None if timeout is None else self._deadline + timeout,
        )
        return info

    async def ajoin(self, task_id: str, *, timeout: float | None = None) -> TaskInfo:  # noqa: ASYNC109 - the sync twin's API
        """Async twin of `join`."""
        check_task_id(task_id)
        _check_seconds("timeout", timeout)
        return await arun_operation(
            self._connector,
            "coord.join",
            self._wait_op(task_id, timeout),
            deadline_seconds=None if timeout is None else self._deadline + timeout,
        )

    def result(self, task_id: str, *, timeout: float | None = None) -> Any:
        """Wait for the task and return its result.

        Raises:
            TaskFailedError: It ended with ``error``, ``cancelled`` or ``timeout``.
            ResultTimeoutError: Still running after `timeout` seconds.
            NotFoundError: No such task.
        """
        check_task_id(task_id)
        _check_seconds("timeout", timeout)
        return self._outcome(
            run_operation(
                self._connector,
                "coord.join",
                self._wait_op(task_id, timeout, brief=True),
                deadline_seconds=None if timeout is None else self._deadline + timeout,
            )
        )

    async def aresult(self, task_id: str, *, timeout: float | None = None) -> Any:  # noqa: ASYNC109 - the sync twin's API
        """Async twin of `result`."""
        check_task_id(task_id)
        _check_seconds("timeout", timeout)
        return self._outcome(
            await arun_operation(
                self._connector,
                "coord.join",
                self._wait_op(task_id, timeout, brief=True),
                deadline_seconds=None if timeout is None else self._deadline + timeout,
            )
        )

    def _events_op(
        self, task_id: str, after: str, count: int
    ) -> Operation[list[tuple[str, Event]]]:
        keys = self.keys.task(task_id)
        start = "-" if after in ("", "0", "0-0", "-") else f"({after}"
        rows = yield Command(("XRANGE", keys.events, start, "+", "COUNT", count))
        out: list[tuple[str, Event]] = []
        for eid, fields in rows or ():
            raw = fields.get(EVENT_FIELD) if isinstance(fields, dict) else None
            if raw is None:  # someone else's XADD: a bare KeyError before
                raise SerializationError(f"entry {text(eid)} of task {task_id} is not an event")
            try:
                out.append((text(eid), decode_event(self.codec, raw, key=keys.events)))
            except SerializationError as exc:
                # name the entry, so a caller can page past it (`after=`)
                raise SerializationError(f"entry {text(eid)} of task {task_id}: {exc}") from exc
        return out

    def events(
        self, task_id: str, *, after: str = "-", count: int = 1_000
    ) -> list[tuple[str, Event]]:
        """The task's lifecycle and progress events, oldest first: `(stream id, Event)`.

        Args:
            task_id: The task.
            after: Only events after this stream id (``-``: from the start).
            count: Most events returned.

        Raises:
            InvalidInputError: `after` is not a stream id, or `count` not a positive int.
            SerializationError: An entry that is not one of our events (someone else wrote
                it); the message names the entry's id, so `after=` it reads on.
        """
        check_task_id(task_id)
        _check_after(after)
        check_count(count)
        return run_operation(
            self._connector,
            "coord.events",
            self._events_op(task_id, after, count),
            deadline_seconds=self._deadline,
        )

    async def aevents(
        self, task_id: str, *, after: str = "-", count: int = 1_000
    ) -> list[tuple[str, Event]]:
        """Async twin of `events`."""
        check_task_id(task_id)
        _check_after(after)
        check_count(count)
        return await arun_operation(
            self._connector,
            "coord.events",
            self._events_op(task_id, after, count),
            deadline_seconds=self._deadline,
        )

    # ------------------------------------------------------------------ control

    def _cancel_op(self, task_id: str) -> Operation[str]:
        keys = self.keys.task(task_id)
        info = yield from self._get_op(task_id)
        done = self._encoded("task.cancelled", _SOURCE, task_id, info.agent, keys)
        asked = self._encoded("task.cancel_requested", _SOURCE, task_id, info.agent, keys)
        status = yield Script(
            CANCEL,
            keys.scripted,
            [
                done,
                asked,
                self.coord_settings.events_maxlen,
                self.coord_settings.result_ttl_seconds * 1000,
            ],
        )
        if text(status) == "cancelled":
            # Ended before it ran (or its worker died): off the queue now (another slot, so
            # a second call), or it would hold a place in the backlog until a worker with a
            # free slot read it, and a producer cancelling stale work under overload could
            # not make room. A dead worker's entry is only deleted: the next reclaim drops it.
            queue = self.keys.queue(info.agent)
            mark = self.keys.mark(queue, task_id)
            yield Script(
                DEQUEUE,
                [queue.stream, queue.delayed, mark, queue.queued],
                [task_id, self.coord_settings.result_ttl_seconds * 1000],
            )
        return text(status)

    def cancel(self, task_id: str) -> str:
        """Cancel a task: at once if it waits, within about a heartbeat if it runs.

        A running task whose worker stopped heartbeating (it died, or lost Redis) and whose
        lease ran out ends ``cancelled`` at once, with that attempt in its history as
        ``worker stopped heartbeating``; its worker, should it come back, can write nothing
        more (its fencing token moved on). Within the lease (up to `lease_seconds` after the
        last heartbeat) a dead worker cannot be told from a live one: the call answers
        ``cancelling``, and the task ends when another worker takes its entry over, or at
        a `cancel` made again once the lease ran out.

        Returns:
            ``cancelled`` (it had not started, or its lease ran out), ``cancelling`` (its
            worker will stop it), or the status it had already ended with.

        Raises:
            NotFoundError: No such task.
        """
        check_task_id(task_id)
        return run_operation(
            self._connector,
            "coord.cancel",
            self._cancel_op(task_id),
            deadline_seconds=self._deadline,
        )

    async def acancel(self, task_id: str) -> str:
        """Async twin of `cancel`."""
        check_task_id(task_id)
        return await arun_operation(
            self._connector,
            "coord.cancel",
            self._cancel_op(task_id),
            deadline_seconds=self._deadline,
        )

    def _send_op(self, task_id: str, message: Any, strategy: str) -> Operation[str]:
        keys = self.keys.task(task_id)
        info = yield from self._get_op(task_id)
        body = self.codec.encode(message, key=keys.inbox)
        if len(body) > self.coord_settings.max_input_bytes:
            raise PayloadTooLargeError(len(body), self.coord_settings.max_input_bytes)
        event = self._encoded("task.message", _SOURCE, task_id, info.agent, keys, strategy=strategy)
        # By op id: a plain script whose reply was lost is re-sent by the client's retry,
        # and the task got the follow-up twice. The record only has to outlive this call's
        # retries.
        entry = yield Idempotent(
            SEND,
            self.keys.op(keys.scope, f"send:{new_op_id()}"),
            [keys.record, keys.inbox, keys.events],
            [body, event, self.coord_settings.events_maxlen, strategy],
            op_ttl_ms=600_000,
        )
        return text(entry)

    def send(self, task_id: str, message: Any, *, strategy: UpdateStrategy = "enqueue") -> str:
        """Send a follow-up message to a task that has not finished (its inbox).

        The two strategies are deepagents' `update_strategy`:

        * ``enqueue``: the follow-up waits for the current run. A runnable agent (a deep
          agent) is run again with its conversation plus the new messages when its run ends;
          a callable agent reads them through its `TaskContext` (`amessages`).
        * ``interrupt``: the worker stops the current run within about a heartbeat (an async
          run is cancelled; a sync one stops at its next step, and its `TaskContext` is
          marked cancelled) and starts the follow-up once: a runnable with the conversation
          so far (its state after the last step it finished) plus the new messages. The
          stopped run gets a stale fencing token, so it can write nothing more, no result
          either. The attempt is the same one (it does not count as a failure).

        A task that has not started yet takes waiting follow-ups into its first run, with
        either strategy.

        Returns:
            The inbox entry id.

        Raises:
            NotFoundError: No such task.
            InvalidInputError: The task has ended, or an unknown strategy.
        """
        check_task_id(task_id)
        _check_strategy(strategy)
        return run_operation(
            self._connector,
            "coord.send",
            self._send_op(task_id, message, strategy),
            deadline_seconds=self._deadline,
        )

    async def asend(
        self, task_id: str, message: Any, *, strategy: UpdateStrategy = "enqueue"
    ) -> str:
        """Async twin of `send`."""
        check_task_id(task_id)
        _check_strategy(strategy)
        return await arun_operation(
            self._connector,
            "coord.send",
            self._send_op(task_id, message, strategy),
            deadline_seconds=self._deadline,
        )

    # ------------------------------------------------------------------ admin

    def _retry_op(self, task_id: str) -> Operation[str]:
        keys = self.keys.task(task_id)
        info = yield from self._get_op(task_id)
        event = self._encoded("task.reset", _SOURCE, task_id, info.agent, keys)
        # By op id: re-sent by the client's retry after a lost reply, a plain script found
        # the task it had just reset pending and refused it, leaving it on no queue.
        before = yield Idempotent(
            RESET,
            self.keys.op(keys.scope, f"reset:{new_op_id()}"),
            keys.scripted,
            [event, self.coord_settings.events_maxlen],
            op_ttl_ms=600_000,
        )
        queue = self.keys.queue(info.agent)
        # A mark of this retry's own: the task goes on the queue again even though it was
        # queued before (and once, however often this call is retried); the task's mark
        # follows the new entry, for a cancel.
        mark = self.keys.op(queue.scope, f"enqueue:{task_id}:{new_task_id()}")
        reply = yield Script(
            ENQUEUE,
            [queue.stream, queue.delayed, mark, queue.queued, self.keys.mark(queue, task_id)],
            [
                task_id,
                self.coord_settings.max_backlog,
                self.coord_settings.result_ttl_seconds * 1000,
            ],
        )
        if int(reply[0]) != 1:
            # The record was reset first (a queue entry of a task still 'error' would be
            # dropped by the worker that read it); refused, put the task back as it ended,
            # or it would stay pending on no queue, run by nothing and refused a new retry.
            refused = self._encoded(
                "task.reset_refused", _SOURCE, task_id, info.agent, keys, reason="backpressure"
            )
            # By op id: re-sent after a lost reply, a plain script found the task put back
            # already and answered 0, and the refused retry read as queued.
            undone = yield Idempotent(
                UNRESET,
                self.keys.op(keys.scope, f"unreset:{new_op_id()}"),
                keys.scripted,
                [*before, refused, self.coord_settings.events_maxlen],
                op_ttl_ms=600_000,
            )
            if int(undone) == 1:
                raise BackpressureError(int(reply[1]), int(reply[2]))
        return task_id

    def retry(self, task_id: str) -> str:
        """Run a failed task again with a fresh set of attempts (``tasks retry``).

        Raises:
            NotFoundError: No such task.
            InvalidInputError: The task did not fail (only ``error`` and ``timeout`` restart).
            BackpressureError: The agent's backlog is full: the task is left as it ended.
        """
        check_task_id(task_id)
        return run_operation(
            self._connector, "coord.retry", self._retry_op(task_id), deadline_seconds=self._deadline
        )

    async def aretry(self, task_id: str) -> str:
        """Async twin of `retry`."""
        check_task_id(task_id)
        return await arun_operation(
            self._connector, "coord.retry", self._retry_op(task_id), deadline_seconds=self._deadline
        )

    def _agents_op(self) -> Operation[list[str]]:
        names = yield Command(("ZRANGE", self.keys.registry, 0, -1))
        return sorted(text(n) for n in names)

    def agents(self) -> list[str]:
        """The agents workers have announced in this namespace."""
        return run_operation(
            self._connector, "coord.agents", self._agents_op(), deadline_seconds=self._deadline
        )

    async def aagents(self) -> list[str]:
        """Async twin of `agents`."""
        return await arun_operation(
            self._connector, "coord.agents", self._agents_op(), deadline_seconds=self._deadline
        )

    def _workers_op(self) -> Operation[list[str]]:
        since = int((time.time() - 3 * self.coord_settings.lease_seconds) * 1000)
        names = yield Command(("ZRANGE", self.keys.workers, since, "+inf", "BYSCORE"))
        return sorted(text(n) for n in names)

    def workers(self) -> list[str]:
        """Workers of this namespace that heartbeated within three leases."""
        return run_operation(
            self._connector, "coord.workers", self._workers_op(), deadline_seconds=self._deadline
        )

    async def aworkers(self) -> list[str]:
        """Async twin of `workers`."""
        return await arun_operation(
            self._connector, "coord.workers", self._workers_op(), deadline_seconds=self._deadline
        )

    def _listed_agents(self, agent: str | None) -> Operation[list[str]]:
        """`agent` (checked), or every announced agent."""
        if agent is not None:
            return [check_name("agent", agent)]
        return (yield from self._agents_op())

    def _dead_op(self, agent: str | None, count: int) -> Operation[list[dict[str, Any]]]:
        out: list[dict[str, Any]] = []
        for name in (yield from self._listed_agents(agent)):
            queue = self.keys.queue(name)
            rows = yield Command(("XREVRANGE", queue.dlq, "+", "-", "COUNT", count))
            for eid, fields in rows:
                letter = self._letter(queue.dlq, text(eid), fields)
                if letter is not None:
                    # the listing's own id and agent win over keys a letter may carry
                    out.append({**letter, "id": text(eid), "agent": name})
        return out

    def _letter(self, dlq: str, eid: str, fields: Any) -> dict[str, Any] | None:
        """One entry of a dead letters stream, or None (logged, counted) if it is not ours.

        Anyone can append to the stream: one entry without our field, with bytes that do not
        decode or with a value that is no mapping broke the whole listing (``tasks dlq``),
        so it is skipped, as `EventBus.read` skips foreign events.
        """
        raw = fields.get(EVENT_FIELD) if isinstance(fields, dict) else None
        try:
            letter = None if raw is None else self.codec.decode(raw, key=dlq)
        except SerializationError:
            letter = None
        if isinstance(letter, dict):
            return letter
        get_instrumentation().count("coord.bad_event", stream="dlq")
        log.warning("skipping entry %s of %s: not a dead letter", eid, dlq)
        return None

    def dead_letters(self, agent: str | None = None, *, count: int = 100) -> list[dict[str, Any]]:
        """The newest dead letters of one agent (or of every announced agent).

        Each holds ``task_id``, ``agent``, ``error``, ``reason`` and ``history``. An entry
        that is not a dead letter (someone else wrote it) is skipped, logged and counted.

        Raises:
            InvalidInputError: A bad agent name, or `count` is not a positive int.
        """
        check_count(count)
        return run_operation(
            self._connector,
            "coord.dead_letters",
            self._dead_op(agent, count),
            deadline_seconds=self._deadline,
        )

    async def adead_letters(
        self, agent: str | None = None, *, count: int = 100
    ) -> list[dict[str, Any]]:
        """Async twin of `dead_letters`."""
        check_count(count)
        return await arun_operation(
            self._connector,
            "coord.dead_letters",
            self._dead_op(agent, count),
            deadline_seconds=self._deadline,
        )

    def _active_op(self, agent: str | None, count: int) -> Operation[list[dict[str, Any]]]:
        out: list[dict[str, Any]] = []
        for name in (yield from self._listed_agents(agent)):
            queue = self.keys.queue(name)
            rows, delayed = yield Pipeline(
                [
                    ("XRANGE", queue.stream, "-", "+", "COUNT", count),
                    ("ZRANGE", queue.delayed, 0, count - 1, "WITHSCORES"),
                ]
            )
            seen = set()
            for _eid, fields in rows:
                task_id = text(fields.get(b"t"))
                if task_id and task_id not in seen:
                    seen.add(task_id)
                    out.append({"task_id": task_id, "agent": name, "queued": "queue"})
            for member, _score in delayed:
                out.append({"task_id": text(member), "agent": name, "queued": "retry"})
        return out

    def active(self, agent: str | None = None, *, count: int = 100) -> list[dict[str, Any]]:
        """Tasks on the queues (waiting or running) and waiting for a retry (``tasks list``).

        Args:
            agent: One agent's queue, or every announced agent's.
            count: Most entries read from each agent's queue, and most delayed retries.

        Raises:
            InvalidInputError: A bad agent name, or `count` is not a positive int.
        """
        check_count(count)
        return run_operation(
            self._connector,
            "coord.active",
            self._active_op(agent, count),
            deadline_seconds=self._deadline,
        )

    async def aactive(self, agent: str | None = None, *, count: int = 100) -> list[dict[str, Any]]:
        """Async twin of `active`."""
        check_count(count)
        return await arun_operation(
            self._connector,
            "coord.active",
            self._active_op(agent, count),
            deadline_seconds=self._deadline,
        )
