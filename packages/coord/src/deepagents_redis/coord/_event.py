"""`Event`: the CloudEvents 1.0 envelope of every coord event (ADR 0003 "the envelope").

One stream entry holds one event as a single field ``e``: core's codec bytes, keyed by the
stream's key (so an entry copied to another stream fails its key-hash check), never pickle.
Attributes a newer version adds are kept and re-emitted (`extra="allow"`), never dropped.
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime
from typing import Any, Final

from deepagents_redis.core import Codec, SerializationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "EVENT_FIELD",
    "LOG_TASK_FIELD",
    "SCHEMA_VERSION",
    "TYPE_PREFIX",
    "Event",
    "decode_event",
    "envelope",
]

TYPE_PREFIX: Final = "dev.deepagents-redis."
"""Prefix of our event types: ``dev.deepagents-redis.task.started`` and so on."""

SCHEMA_VERSION: Final = 1
"""Version of this envelope (the ``schemaversion`` extension)."""

EVENT_FIELD: Final = b"e"
"""The one field of a stream entry that carries an event."""

LOG_TASK_FIELD: Final = b"t"
"""The field of a namespace log line that names its task: the line's event is then the task
stream's own bytes (encoded for the task's events key, and checked against it on read)."""


class _EventIds:
    """Event ids: this process's random 64-bit prefix, then a counter, as 32 hex digits.

    Unique like a `uuid4().hex` (same length), without its `getrandom` call per event: a
    worker emits four events per task, and each such call in a worker thread gives up the
    GIL. A forked child draws a prefix of its own.
    """

    def __init__(self) -> None:
        self._reseed()
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._count) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


_IDS: Final = _EventIds()


def new_event_id() -> str:
    """A new unique event id (32 hex digits; see `_EventIds`)."""
    return _IDS.next()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Event(BaseModel):
    """One event, with CloudEvents 1.0 attribute names and our extensions.

    Example:
        >>> e = Event(source="dar://default/planner", type="dev.example.hello", data={"n": 1})
        >>> e.specversion, e.schemaversion
        ('1.0', 1)
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(default_factory=new_event_id)
    """Unique per event; a re-publish with the same `idempotencykey` keeps the first."""
    source: str
    """Who emitted it: ``dar://<namespace>/<agent or worker>``."""
    type: str
    """Reverse-DNS type, e.g. ``dev.deepagents-redis.task.completed``."""
    specversion: str = "1.0"
    """CloudEvents version."""
    time: str = Field(default_factory=_now)
    """RFC 3339 UTC time from the emitter's clock (order comes from the stream id)."""
    subject: str | None = None
    """What the event is about (a task id)."""
    datacontenttype: str = "application/msgpack"
    """How `data` travels (core's codec)."""
    data: Any = None
    """The payload (plain data; LangChain objects through the codec's allowlist)."""
    traceparent: str | None = None
    """W3C trace context, so a consumer's spans join the emitter's trace."""
    tracestate: str | None = None
    """W3C trace state."""
    idempotencykey: str | None = None
    """Publishing again with the same key stores the event once."""
    schemaversion: int = SCHEMA_VERSION
    """Our envelope version."""
    agent: str | None = None
    """Scope: the agent (subagent) name."""
    threadid: str | None = None
    """Scope: the LangGraph thread."""
    taskid: str | None = None
    """Scope: the remote task."""

    def encode(self, codec: Codec, *, key: str) -> bytes:
        """Encode for the stream `key` (its hash is embedded and checked on decode).

        Returns:
            The codec's bytes.
        """
        return codec.encode(self.model_dump(mode="python", exclude_none=True), key=key)


_PLAIN: Final = (str, int, float, bool)


def envelope(
    *,
    source: str,
    event_type: str,
    subject: str,
    agent: str | None,
    data: dict[str, Any] | None,
    trace: dict[str, str],
) -> dict[str, Any] | None:
    """The encoded form of a task event our own code emits, built without pydantic.

    It equals ``Event(...).model_dump(mode="python", exclude_none=True)`` for the same
    attributes (a test compares them), with `subject` as the ``taskid`` too. Validating a
    model we build from our own strings only to dump it again was ~12% of a worker's CPU
    per no-op task (issue 13, cProfile of 3,000 tasks): four events per task.

    Args:
        source: The emitter's ``dar://`` source.
        event_type: The full event type (the ``type`` attribute).
        subject: The task id.
        agent: The agent name.
        data: The payload; ``None`` or empty for none.
        trace: `trace_carrier()`'s headers.

    Returns:
        The dict, or ``None`` when `data` holds anything but flat str/int/float/bool values
        (the caller then builds an `Event`, whose dump converts nested models).
    """
    if data:
        for value in data.values():
            if type(value) not in _PLAIN:  # exact types: a str subclass takes the model path
                return None
    out: dict[str, Any] = {
        "id": new_event_id(),
        "source": source,
        "type": event_type,
        "specversion": "1.0",
        "time": _now(),
        "subject": subject,
        "datacontenttype": "application/msgpack",
    }
    if data:
        out["data"] = dict(data)
    if trace:
        if trace.get("traceparent") is not None:
            out["traceparent"] = trace["traceparent"]
        if trace.get("tracestate") is not None:
            out["tracestate"] = trace["tracestate"]
    out["schemaversion"] = SCHEMA_VERSION
    if agent is not None:
        out["agent"] = agent
    out["taskid"] = subject
    return out


def decode_event(codec: Codec, raw: bytes, *, key: str) -> Event:
    """Decode one entry's ``e`` field read from the stream `key`.

    Args:
        codec: The codec.
        raw: The field's bytes.
        key: The stream it was read from.

    Returns:
        The event.

    Raises:
        SerializationError: Not an event written for this stream (foreign, hostile, damaged).
    """
    value = codec.decode(raw, key=key)
    if not isinstance(value, dict):
        raise SerializationError("stream entry is not an event")
    try:
        return Event.model_validate(value)
    except ValidationError as exc:
        raise SerializationError(
            f"stream entry is not a valid event: {exc.error_count()} errors"
        ) from exc
