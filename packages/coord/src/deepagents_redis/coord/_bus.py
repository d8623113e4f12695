"""`EventBus`: durable events on a Stream per topic, consumer groups, live tails (sync + async).

`publish` appends one `Event` (deduplicated by its `idempotencykey`: a re-publish returns the
first entry's id and stores nothing); `read` takes entries for a consumer group (at least
once: `ack` what you handled; `read(pending=True)` gives a restarted consumer what it had not
acknowledged, `claim_stale` hands a live consumer what a dead one left); `tail` follows the
stream live from now or from an id. Topics are trimmed to `maxlen` entries.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Unpack

from deepagents_redis.coord._common import (
    CoordComponent,
    check_count,
    claimed_entries,
    entries,
    fields_of,
    is_stream_id,
    one,
    text,
)
from deepagents_redis.coord._event import EVENT_FIELD, LOG_TASK_FIELD, Event, decode_event
from deepagents_redis.coord._keys import check_name, check_task_id
from deepagents_redis.coord._scripts import GROUP, PUBLISH
from deepagents_redis.coord._settings import CoordOptions
from deepagents_redis.core import (
    Command,
    DeepAgentsRedisError,
    InvalidInputError,
    Operation,
    Script,
    SerializationError,
    arun_operation,
    get_instrumentation,
    run_operation,
)

__all__ = ["EventBus", "Received"]

_MAX_SECONDS = 10 * 365 * 86_400
"""Longest dedupe window: ten years, as for the coord settings' TTLs."""

_CLAIM_ROUNDS = 100
"""Most ``XAUTOCLAIM`` calls of one `claim_stale` (each scans up to 10 x `count` entries)."""

Received = tuple[str, Event]
"""One read entry: `(stream id, Event)`."""


class EventBus(CoordComponent):
    """Publish and consume events on named topics of a namespace.

    Args:
        maxlen: Approximate most entries a topic keeps (``XADD MAXLEN ~``).
        dedupe_ttl_seconds: How long an idempotency key is remembered.
        **kwargs: Connection (`connector=` or `url=`...) and `CoordSettings` options.

    Example:
        >>> bus = EventBus.from_url(url, namespace="demo")  # doctest: +SKIP
        >>> bus.publish("builds", Event(source="ci", type="build.done", data={"ok": True}))
    """

    def __init__(
        self,
        *,
        maxlen: int = 10_000,
        dedupe_ttl_seconds: int = 86_400,
        **kwargs: Unpack[CoordOptions],
    ) -> None:
        super().__init__(**kwargs)
        # Ints, checked here: a float TTL reached the publish script as 'PX 1500.0', which
        # the server refused AFTER the script's XADD, so every keyed publish stored its
        # event, raised, and kept no dedupe record (a retry stored it again); a bool or a
        # float maxlen failed each publish with an untyped error.
        if type(maxlen) is not int or maxlen < 1:
            raise InvalidInputError(f"maxlen must be a positive int, not {maxlen!r}")
        if type(dedupe_ttl_seconds) is not int or not 1 <= dedupe_ttl_seconds <= _MAX_SECONDS:
            raise InvalidInputError(
                f"dedupe_ttl_seconds must be a positive int of at most {_MAX_SECONDS}, "
                f"not {dedupe_ttl_seconds!r}"
            )
        self.maxlen = maxlen
        self.dedupe_ttl_seconds = dedupe_ttl_seconds

    def _publish_req(self, topic: str, event: Event) -> Script | Command:
        if not isinstance(event, Event):
            raise InvalidInputError(f"publish takes an Event, not {type(event).__name__}")
        stream = self.keys.topic(topic)
        payload = event.encode(self.codec, key=stream)
        key = event.idempotencykey
        if not key:
            # Nothing to deduplicate: the script would run this one XADD, so send it alone
            # (one command is as atomic, and a hit of the script costs ~15 us more on the
            # server and the wire; issue 13). A retried unkeyed publish appends again either
            # way: deduplication is what the idempotency key is for.
            return Command(("XADD", stream, "MAXLEN", "~", self.maxlen, "*", EVENT_FIELD, payload))
        idem = self.keys.op(self.keys.topic_scope(topic), _dedupe_id(key))
        return Script(
            PUBLISH,
            [stream, idem],
            [payload, self.maxlen, self.dedupe_ttl_seconds * 1000, "1"],
        )

    def publish(self, topic: str, event: Event) -> str:
        """Append `event` to `topic` (once per idempotency key); return its stream id."""
        req = self._publish_req(topic, event)
        return text(
            run_operation(
                self._connector,
                "coord.publish",
                one(req),
                deadline_seconds=self._deadline,
                topic=topic,
            )
        )

    async def apublish(self, topic: str, event: Event) -> str:
        """Async twin of `publish`."""
        req = self._publish_req(topic, event)
        return text(
            await arun_operation(
                self._connector,
                "coord.publish",
                one(req),
                deadline_seconds=self._deadline,
                topic=topic,
            )
        )

    def _decode_entry(self, stream: str, fields: dict[bytes, bytes]) -> Event:
        """One entry's event, checked against the key it was encoded for.

        A namespace log line that names its task (``t``) carries the task stream's own
        event bytes: they are checked against that task's events key, and the event must be
        about that task.
        """
        raw = fields.get(EVENT_FIELD, b"")
        task = fields.get(LOG_TASK_FIELD) if stream == self.keys.log else None
        if task is None:
            return decode_event(self.codec, raw, key=stream)
        task_id = check_task_id(text(task))
        event = decode_event(self.codec, raw, key=self.keys.task(task_id).events)
        if event.taskid != task_id:
            raise SerializationError(f"log line names task {task_id}, its event another")
        return event

    def _decode_rows(
        self, stream: str, rows: Any, foreign: list[str] | None = None
    ) -> list[Received]:
        """Our events of `rows`; foreign entries are skipped (their ids added to `foreign`)."""
        out: list[Received] = []
        for eid, fields in rows or ():
            try:
                out.append((text(eid), self._decode_entry(stream, fields)))
            except (DeepAgentsRedisError, AttributeError) as exc:  # a foreign entry: skipped
                if foreign is not None:
                    foreign.append(text(eid))
                get_instrumentation().count("coord.bad_event", stream="bus")
                import logging

                logging.getLogger("deepagents_redis.coord").warning(
                    "skipping entry %s of %s: not one of our events (%s)", text(eid), stream, exc
                )
        return out

    def _read_op(
        self,
        topic: str,
        group: str,
        consumer: str,
        count: int,
        block_ms: int | None,
        pending: bool = False,
    ) -> Operation[list[Received]]:
        stream = self.keys.topic(topic)
        check_name("group", group)
        check_name("consumer", consumer)
        yield Script(GROUP, [stream], [group])
        args: list[Any] = ["XREADGROUP", "GROUP", group, consumer, "COUNT", count]
        if pending:
            # The consumer's own pending list (never blocks). An entry trimmed from the
            # topic since comes back without fields (nil, or {} as redis-py parses it; a
            # stream entry has at least one), and a foreign one (skipped, logged and
            # counted) is never ours to handle: both are acknowledged, or they would fill
            # every later page of this read.
            reply = yield Command((*args, "STREAMS", stream, "0"))
            rows: list[tuple[str, dict[bytes, bytes]]] = []
            gone: list[str] = []
            for eid, fields in _pending_rows(reply):
                if fields:
                    rows.append((eid, fields_of(fields)))
                else:
                    gone.append(eid)
            out = self._decode_rows(stream, rows, gone)
            if gone:
                yield Command(("XACK", stream, group, *gone))
            return out
        if block_ms is not None:
            args += ["BLOCK", block_ms]
        reply = yield Command((*args, "STREAMS", stream, ">"))
        return self._decode_rows(stream, entries(reply))

    def _claim_op(
        self, topic: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> Operation[list[Received]]:
        stream = self.keys.topic(topic)
        check_name("group", group)
        check_name("consumer", consumer)
        yield Script(GROUP, [stream], [group])
        out: list[Received] = []
        cursor = "0-0"
        for _ in range(_CLAIM_ROUNDS):
            reply = yield Command(
                (
                    "XAUTOCLAIM",
                    stream,
                    group,
                    consumer,
                    min_idle_ms,
                    cursor,
                    "COUNT",
                    count - len(out),
                )
            )
            # trimmed entries: dropped by XAUTOCLAIM itself. A foreign entry (skipped) is
            # acknowledged, as `read(pending=True)` does: left pending it came back to every
            # claim and took a place of `count` (with min_idle=0 the same ones every call,
            # and the stale events behind them never came).
            foreign: list[str] = []
            out += self._decode_rows(stream, claimed_entries(reply), foreign)
            if foreign:
                yield Command(("XACK", stream, group, *foreign))
            cursor = text(reply[0]) if reply else "0-0"
            if cursor == "0-0" or len(out) >= count:
                break
        return out

    def _block_ms(self, block: float | None) -> int | None:
        if block is None:
            return None
        _check_block(block)
        cap = self._connector.settings.socket_timeout / 2
        return max(1, int(min(block, cap) * 1000))

    def read(
        self,
        topic: str,
        *,
        group: str,
        consumer: str,
        count: int = 100,
        block: float | None = None,
        pending: bool = False,
    ) -> list[Received]:
        """Take new entries of `topic` for `group` (each goes to one consumer of the group).

        Args:
            topic: The topic.
            group: Consumer group (created on first use, from the start of the topic).
            consumer: This consumer's name in the group.
            count: Most entries.
            block: Seconds to wait for an entry (capped below the socket timeout).
            pending: Instead of new entries, the ones this consumer read and has not
                acknowledged yet, oldest first (what a restarted consumer reads first; an
                empty list once it has caught up). Never blocks.
        """
        check_count(count)
        return run_operation(
            self._connector,
            "coord.read",
            self._read_op(topic, group, consumer, count, self._block_ms(block), pending),
            deadline_seconds=self._deadline + (block or 0),
        )

    async def aread(
        self,
        topic: str,
        *,
        group: str,
        consumer: str,
        count: int = 100,
        block: float | None = None,
        pending: bool = False,
    ) -> list[Received]:
        """Async twin of `read`."""
        check_count(count)
        return await arun_operation(
            self._connector,
            "coord.read",
            self._read_op(topic, group, consumer, count, self._block_ms(block), pending),
            deadline_seconds=self._deadline + (block or 0),
        )

    def claim_stale(
        self, topic: str, *, group: str, consumer: str, min_idle: float = 60.0, count: int = 100
    ) -> list[Received]:
        """Take over entries other consumers of `group` read and left unacknowledged.

        What a consumer read stays pending in the group until it is acknowledged; when that
        consumer died, nothing else would deliver it again. This hands `consumer` the
        entries pending for at least `min_idle` seconds (``XAUTOCLAIM``), oldest first:
        handle and `ack` them as entries from `read`.

        Args:
            topic: The topic.
            group: The consumer group.
            consumer: The consumer that takes them over.
            min_idle: Seconds an entry must have been pending untouched (longer than a live
                consumer takes to handle one, or it is handled twice).
            count: Most entries.
        """
        check_count(count)
        return run_operation(
            self._connector,
            "coord.claim",
            self._claim_op(topic, group, consumer, _idle_ms(min_idle), count),
            deadline_seconds=self._deadline,
        )

    async def aclaim_stale(
        self, topic: str, *, group: str, consumer: str, min_idle: float = 60.0, count: int = 100
    ) -> list[Received]:
        """Async twin of `claim_stale`."""
        check_count(count)
        return await arun_operation(
            self._connector,
            "coord.claim",
            self._claim_op(topic, group, consumer, _idle_ms(min_idle), count),
            deadline_seconds=self._deadline,
        )

    def _ack_command(self, topic: str, group: str, ids: tuple[str, ...]) -> Command | None:
        """The ``XACK`` of `ids`, None for none; bad arguments raise before anything is sent.

        An empty group name was acknowledged as a group of its own (0, silently); an id that
        is not one (``""``, a name, None) came back as the server's or redis-py's untyped
        error, and an int was taken as the id it spells.
        """
        stream = self.keys.topic(topic)
        check_name("group", group)
        for eid in ids:
            if not is_stream_id(eid):
                raise InvalidInputError(
                    f"ack takes stream ids such as '1700000000000-0' (str), not {eid!r}"
                )
        if not ids:  # an empty read's batch: XACK with no id is an argument error
            return None
        return Command(("XACK", stream, group, *ids))

    def ack(self, topic: str, group: str, *ids: str) -> int:
        """Acknowledge handled entries; return how many were pending (0 for none given).

        Raises:
            InvalidInputError: A bad topic or group name, or an id that is not a stream id
                (before anything is sent).
        """
        cmd = self._ack_command(topic, group, ids)
        if cmd is None:
            return 0
        return int(
            run_operation(
                self._connector,
                "coord.ack",
                one(cmd),
                deadline_seconds=self._deadline,
            )
        )

    async def aack(self, topic: str, group: str, *ids: str) -> int:
        """Async twin of `ack`."""
        cmd = self._ack_command(topic, group, ids)
        if cmd is None:
            return 0
        return int(
            await arun_operation(
                self._connector,
                "coord.ack",
                one(cmd),
                deadline_seconds=self._deadline,
            )
        )

    def _tail_op(
        self, stream: str, after: str, block_ms: int, count: int
    ) -> Operation[tuple[str, list[Received]]]:
        """One read of a tail: the id of the last entry read (`after` for none), our events.

        The cursor moves past every entry read, skipped foreign ones included: moved only
        on the events yielded, a read of foreign entries alone read them again at once, for
        ever (a run of `count` of them hid the events behind it; one at the stream's end
        turned the blocking tail into a busy loop with a warning per read).
        """
        reply = yield Command(
            ("XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", stream, after)
        )
        rows = entries(reply)
        return (rows[-1][0] if rows else after), self._decode_rows(stream, rows)

    def _start(self, stream: str, after: str) -> Operation[str]:
        if after != "$":
            return after
        last = yield Command(("XREVRANGE", stream, "+", "-", "COUNT", 1))
        return text(last[0][0]) if last else "0-0"

    def _tail_args(
        self,
        topic: str,
        after: str,
        block: float,
        count: int,
        stream: str | None,
        stop_when: Callable[[], bool] | None,
    ) -> tuple[str, int]:
        """The key `tail` follows and its block in ms; bad arguments raise at the call.

        They used to reach the first read: an `after` that is no stream id came back as the
        server's untyped "Invalid stream ID", a NaN or None `block` as a ValueError or
        TypeError, and ``count=0`` or a negative one read without a limit.
        """
        if stream is None:
            key = self.keys.topic(topic)
        elif isinstance(stream, str) and stream:
            key = stream
        else:
            raise InvalidInputError(
                f"stream must be a key (a non-empty str) or None, not {stream!r}"
            )
        if after != "$" and not is_stream_id(after):
            raise InvalidInputError(
                f"after must be '$' or a stream id such as '1700000000000-0', not {after!r}"
            )
        _check_block(block)
        check_count(count)
        if stop_when is not None and not callable(stop_when):
            raise InvalidInputError(f"stop_when must be a callable or None, not {stop_when!r}")
        return key, self._block_ms(block) or 1

    def tail(
        self,
        topic: str,
        *,
        after: str = "$",
        block: float = 1.0,
        count: int = 100,
        stream: str | None = None,
        stop_when: Callable[[], bool] | None = None,
    ) -> Iterator[Received]:
        """Follow `topic` live: yield each new entry, forever (stop by breaking out).

        Args:
            topic: The topic.
            after: ``$`` for entries after now, or a stream id to replay from.
            block: Seconds each read waits.
            count: Most entries per read.
            stream: Follow this key instead of the topic's (the namespace's event log).
            stop_when: Checked after every read (also an empty one, at least every `block`
                seconds): the tail ends when it returns True.

        Raises:
            InvalidInputError: A bad argument (at the call, before anything is read).
        """
        key, block_ms = self._tail_args(topic, after, block, count, stream, stop_when)
        return self._tail(key, after, block, block_ms, count, stop_when)

    def _tail(
        self,
        key: str,
        after: str,
        block: float,
        block_ms: int,
        count: int,
        stop_when: Callable[[], bool] | None,
    ) -> Iterator[Received]:
        last = run_operation(
            self._connector, "coord.tail", self._start(key, after), deadline_seconds=self._deadline
        )
        while stop_when is None or not stop_when():
            last, rows = run_operation(
                self._connector,
                "coord.tail",
                self._tail_op(key, last, block_ms, count),
                deadline_seconds=self._deadline + block,
            )
            yield from rows

    def atail(
        self,
        topic: str,
        *,
        after: str = "$",
        block: float = 1.0,
        count: int = 100,
        stream: str | None = None,
        stop_when: Callable[[], bool] | None = None,
    ) -> AsyncIterator[Received]:
        """Async twin of `tail` (``async for``; bad arguments raise at the call)."""
        key, block_ms = self._tail_args(topic, after, block, count, stream, stop_when)
        return self._atail(key, after, block, block_ms, count, stop_when)

    async def _atail(
        self,
        key: str,
        after: str,
        block: float,
        block_ms: int,
        count: int,
        stop_when: Callable[[], bool] | None,
    ) -> AsyncIterator[Received]:
        last = await arun_operation(
            self._connector, "coord.tail", self._start(key, after), deadline_seconds=self._deadline
        )
        while stop_when is None or not stop_when():
            last, rows = await arun_operation(
                self._connector,
                "coord.tail",
                self._tail_op(key, last, block_ms, count),
                deadline_seconds=self._deadline + block,
            )
            for row in rows:
                yield row


def _check_block(block: object) -> None:
    """Check a read's `block` seconds: a finite number, zero or more (not a bool).

    NaN raised a bare ValueError from ``int()``, a string a TypeError, and a negative wait
    was read as 1 ms.
    """
    if (
        isinstance(block, bool)
        or not isinstance(block, int | float)
        or not math.isfinite(block)
        or block < 0
    ):
        raise InvalidInputError(f"block must be zero or positive seconds, not {block!r}")


def _idle_ms(min_idle: float) -> int:
    if (
        isinstance(min_idle, bool)
        or not isinstance(min_idle, int | float)
        or not math.isfinite(min_idle)
        or min_idle < 0
    ):
        raise InvalidInputError("min_idle must be zero or positive seconds")
    return int(min_idle * 1000)


def _pending_rows(reply: Any) -> list[tuple[str, Any]]:
    """An ``XREADGROUP ... 0`` reply as [(entry id, raw fields: empty for a trimmed entry)]."""
    if not reply:
        return []
    streams = reply.items() if isinstance(reply, dict) else reply
    out: list[tuple[str, Any]] = []
    for _name, rows in streams:
        for eid, fields in rows or ():
            out.append((text(eid), fields))
    return out


_KEY_INLINE_MAX = 128
"""Idempotency keys up to this many characters name their dedupe record as they are."""


def _dedupe_id(key: str) -> str:
    """The op id that remembers `key` for a day: the key itself, or its SHA-256 when long.

    The key comes from the publisher (an agent's or a user's id) and its length is not
    bounded; as a Redis key name a megabyte of it is a megabyte held per event for the
    dedupe window. A digest keeps the record small and the deduplication exact; the
    ``#`` keeps a digest from colliding with a short key that happens to look like one.
    """
    if len(key) <= _KEY_INLINE_MAX:
        return f"publish:{key}"
    return "publish#" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
