"""What `TaskClient`, `Worker` and `EventBus` share: settings, keys, codec, events, records."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Unpack

from deepagents_redis.coord._event import TYPE_PREFIX, Event, envelope
from deepagents_redis.coord._keys import CoordKeys, TaskKeys
from deepagents_redis.coord._scripts import TERMINAL
from deepagents_redis.coord._settings import CoordOptions, CoordSettings
from deepagents_redis.core import (
    Codec,
    InvalidInputError,
    Operation,
    RedisComponent,
    SerializationError,
    split_connection,
    trace_carrier,
)

__all__ = [
    "CoordComponent",
    "TaskInfo",
    "check_count",
    "claimed_entries",
    "entries",
    "fields_of",
    "is_stream_id",
    "one",
    "parse_record",
    "text",
]

TASK_FIELDS = (
    "status",
    "agent",
    "attempts",
    "max_attempts",
    "worker",
    "error",
    "created_ms",
    "started_ms",
    "ended_ms",
    "history",
    "cancel",
    "result",
)
"""The record fields `TaskInfo` is read from (one ``HMGET``; the input stays on the server)."""


def text(value: Any) -> str:
    """Bytes from Redis as text (``''`` for nil)."""
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _when(value: Any) -> datetime | None:
    raw = text(value)
    if not raw.isdigit() or raw == "0":
        return None
    try:
        return datetime.fromtimestamp(int(raw) / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        # not a time this package wrote (a record someone else changed): read as unknown,
        # not an OverflowError out of `get`
        return None


def _count(task_id: str, name: str, value: Any) -> int:
    """A record's count field (absent: 0).

    Raises:
        SerializationError: Not a count (a record someone else wrote): `int()` raised a bare
            ValueError out of `get`, `join` and `tasks list`, outside the error tree.
    """
    raw = text(value) or "0"
    if not raw.isdigit() or len(raw) > 18:
        raise SerializationError(f"task {task_id}: {name} is not a count: {raw[:40]!r}")
    return int(raw)


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """What a task is doing, as `TaskClient.get` reads it.

    `status` uses deepagents' vocabulary: ``pending``, ``running``, ``success``, ``error``,
    ``cancelled``, ``timeout``.
    """

    task_id: str
    agent: str
    status: str
    attempts: int
    max_attempts: int
    worker: str | None = None
    error: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cancel_requested: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    """One entry per failed or lost attempt: attempt, worker, error, at_ms."""
    result: Any = None
    """The run's output once `status` is ``success`` (decoded by core's codec)."""

    @property
    def done(self) -> bool:
        """Whether the task reached a status it never leaves."""
        return self.status in TERMINAL


def parse_record(task_id: str, keys: TaskKeys, values: list[Any], codec: Codec) -> TaskInfo | None:
    """Build a `TaskInfo` from the ``HMGET`` of `TASK_FIELDS` (None: no such task).

    Raises:
        SerializationError: A stored result that fails the codec's checks, or a count that
            is not one (a record someone else wrote).
    """
    row = dict(zip(TASK_FIELDS, values, strict=True))
    if row["status"] is None:
        return None
    try:
        history = json.loads(text(row["history"]) or "[]")
    except ValueError as exc:
        raise SerializationError(f"task {task_id}: history is not JSON") from exc
    if not isinstance(history, list):  # cjson writes an empty array as {}
        history = []
    result = None
    if row["result"] is not None:
        result = codec.decode(row["result"], key=keys.record)
    return TaskInfo(
        task_id=task_id,
        agent=text(row["agent"]),
        status=text(row["status"]),
        attempts=_count(task_id, "attempts", row["attempts"]),
        max_attempts=_count(task_id, "max_attempts", row["max_attempts"]),
        worker=text(row["worker"]) or None,
        error=text(row["error"]) or None,
        created_at=_when(row["created_ms"]),
        started_at=_when(row["started_ms"]),
        ended_at=_when(row["ended_ms"]),
        cancel_requested=text(row["cancel"]) == "1",
        history=history,
        result=result,
    )


class CoordComponent(RedisComponent):
    """The connector, coord settings, keys and codec of a client, worker or bus."""

    def __init__(self, **kwargs: Unpack[CoordOptions]) -> None:
        connection, overrides = split_connection(kwargs)
        self._attach(**connection)
        base = overrides.pop("coord_settings", None) or CoordSettings()
        self.coord_settings: CoordSettings = base.with_overrides(**overrides) if overrides else base
        """The coord options in force (settings object, then keyword overrides)."""
        self.keys = CoordKeys(self._connector.keyspace, self.coord_settings.namespace)
        """Key builder of the namespace."""
        # Payloads are bounded by max_input_bytes before encoding is even attempted for
        # strings; the codec's own limit is a backstop for everything else.
        self.codec = Codec(max_size=self.coord_settings.max_input_bytes + 4_096)
        """The codec of inputs, results and events."""

    @property
    def namespace(self) -> str:
        """The coord namespace."""
        return self.coord_settings.namespace

    @property
    def _deadline(self) -> float:
        return self._connector.settings.deadline_seconds

    def _event(self, kind: str, source: str, task_id: str, agent: str, **data: Any) -> Event:
        # the current trace (a worker's run is under its submitter's trace: see `traced`)
        trace = trace_carrier()
        return Event(
            source=f"dar://{self.namespace}/{source}",
            type=f"{TYPE_PREFIX}{kind}",
            subject=task_id,
            taskid=task_id,
            agent=agent,
            data=data or None,
            traceparent=trace.get("traceparent"),
            tracestate=trace.get("tracestate"),
        )

    def _fields(self, kind: str, source: str, task_id: str, agent: str, **data: Any) -> Any:
        """A task event as its encodable dict (`envelope`), or an `Event` for other data."""
        fields = envelope(
            source=f"dar://{self.namespace}/{source}",
            event_type=f"{TYPE_PREFIX}{kind}",
            subject=task_id,
            agent=agent,
            data=data,
            trace=trace_carrier(),
        )
        return fields if fields is not None else self._event(kind, source, task_id, agent, **data)

    def _encode_fields(self, fields: Any, key: str) -> bytes:
        if isinstance(fields, Event):
            return fields.encode(self.codec, key=key)
        return self.codec.encode(fields, key=key)

    def _encoded(
        self, kind: str, source: str, task_id: str, agent: str, keys: TaskKeys, **data: Any
    ) -> bytes:
        return self._encode_fields(self._fields(kind, source, task_id, agent, **data), keys.events)


_STREAM_ID: Final = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")
"""A stream entry id as a caller may give it: ``<ms>-<seq>`` or ``<ms>``."""


def is_stream_id(value: object) -> bool:
    """Whether `value` is a stream entry id the server takes (`_STREAM_ID`, parts < 2**64)."""
    return (
        isinstance(value, str)
        and _STREAM_ID.fullmatch(value) is not None
        and all(int(part) < 2**64 for part in value.split("-"))
    )


def check_count(count: object) -> None:
    """Check a caller's `count` of entries: a positive int.

    0 read everything (``ZRANGE 0 -1`` of every delayed retry; ``XREAD`` and ``XREADGROUP``
    take ``COUNT 0`` as no limit), a negative one did too or went to the server as an error.
    """
    if type(count) is not int or count < 1:
        raise InvalidInputError(f"count must be a positive int, not {count!r}")


def entries(reply: Any) -> list[tuple[str, dict[bytes, bytes]]]:
    """An XREAD/XREADGROUP reply (RESP2 list or RESP3 map) as [(entry id, fields)]."""
    if not reply:
        return []
    streams = reply.items() if isinstance(reply, dict) else reply
    out: list[tuple[str, dict[bytes, bytes]]] = []
    for _name, rows in streams:
        if rows and isinstance(rows[0], list) and rows and not isinstance(rows[0][0], bytes | str):
            rows = rows[0]
        for eid, fields in rows:
            out.append((text(eid), fields_of(fields)))
    return out


def claimed_entries(reply: Any) -> list[tuple[str, dict[bytes, bytes]]]:
    """XAUTOCLAIM's reply as [(entry id, fields)] (deleted entries left out)."""
    rows = reply[1] if reply else []
    return [(text(eid), fields_of(fields)) for eid, fields in rows if fields is not None]


def fields_of(fields: Any) -> dict[bytes, bytes]:
    """An entry's fields as a dict (RESP2 pairs or RESP3 map)."""
    if isinstance(fields, dict):
        return {k if isinstance(k, bytes) else str(k).encode(): v for k, v in fields.items()}
    if isinstance(fields, list):
        return {fields[i]: fields[i + 1] for i in range(0, len(fields) - 1, 2)}
    return {}


def one(request: Any) -> Operation[Any]:
    """An operation of a single request (its reply is the result)."""
    reply = yield request
    return reply
