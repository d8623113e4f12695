"""`RedisSaver`: LangGraph's checkpointer on plain Redis, Valkey and Redis Cluster.

Each call is one operation for core's driver (BRIEF §2), written once and run on the sync or
the asyncio client: a put is one script in the thread's slot, a get is one script, a list is
one script per page of the thread's index. Every script is given the thread's eight fixed keys
and touches no other. Layout: `_keys`; scripts: `_scripts`; stored frames and their checks:
`_serde`.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import random
import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, Final, TypeVar, Unpack

import msgpack
from deepagents_redis.checkpoint._keys import (
    CheckpointKeys,
    ThreadKeys,
    check_checkpoint_id,
    thread_id_of,
)
from deepagents_redis.checkpoint._scripts import (
    DELETE,
    HISTORY,
    PUT,
    PUT_WRITES,
    READ,
    RUN_INDEX,
)
from deepagents_redis.checkpoint._serde import canonical, default_serde, dump, load
from deepagents_redis.checkpoint._settings import CheckpointOptions, CheckpointSettings
from deepagents_redis.core import (
    Command,
    EvictionGuard,
    InvalidInputError,
    Operation,
    Pipeline,
    RedisComponent,
    Script,
    SerializationError,
    Snapshot,
    arun_operation,
    run_operation,
    split_connection,
)
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

__all__ = ["RedisSaver"]

T = TypeVar("T")

_PAGE = 32
_FILTER_TEXT_MAX: Final = 64
"""Longest metadata text an index record holds as it is; a longer one is held as a digest."""
_ANY: Final = "?"
"""What an index record holds for a metadata value with no canonical text: any filter on
its key passes it to the exact check (no canonical text, or digest, starts with ``?``)."""
"""Most checkpoints one list call brings back (their bytes, not the scan, are the cost)."""
_MEMO_MAX = 50_000
_IDS_PAGE: Final = 1_000
_EMPTY = b"empty\n"
_clock = time.monotonic
"""When this process last sent an index entry (tests move it instead of waiting)."""


def _corrupt(rest: str) -> SerializationError:
    """A script's ``CORRUPT <what>`` reply: bytes under our keys that we did not write."""
    return SerializationError(rest.split(" script:", 1)[0])


_WORDS: Final = {"CORRUPT": _corrupt}


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _want(left: int | None) -> int:
    """How many checkpoints to ask one list page for."""
    return _PAGE if left is None else min(left, _PAGE)


def _filter_text(text: str) -> str:
    """What an index record holds (and a filter sends) for a metadata value's `canonical` text.

    The metadata is in the body already: a big value written again into the record, which
    every delete and history walk reads, stored it twice. A long text is held as ``#`` and
    its SHA-1 (a canonical text never starts with ``#``): the server's match stays exact
    for short values, and for long ones lets through at worst a collision, which the exact
    check in Python drops.
    """
    if len(text) <= _FILTER_TEXT_MAX:
        return text
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass"), usedforsecurity=False)
    return "#" + digest.hexdigest()


def _check_limit(limit: object) -> None:
    """A `list` limit is None or an int (0 or less lists nothing, as in `InMemorySaver`).

    Anything else reached Redis as a page size (``limit=2.5``: the server's own "value is not
    an integer" error, untyped); a bool is refused too, as a flag passed by mistake.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise InvalidInputError(f"limit must be an int or None, not {type(limit).__name__}")


def _ns_range(ecns: str, below: str | None) -> tuple[str, str]:
    """Lex bounds (hi, lo) of one namespace in the ``ns`` index, below checkpoint `below`.

    Its members are ``ecns<TAB>cid`` and an encoded namespace holds no control character, so
    ``[ecns<TAB>`` .. ``(ecns<LF>`` is exactly that namespace.
    """
    hi = f"({ecns}\t{below}" if below else f"({ecns}\n"
    return hi, f"[{ecns}\t"


def _unpacked(reply: Any) -> list[Any]:
    """A script's one-msgpack reply (see `READ`/`HISTORY`), as nested lists of bytes."""
    try:
        value = msgpack.unpackb(reply, raw=True, use_list=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:  # not ours: a bug or a proxy
        raise SerializationError("a checkpoint script reply is not msgpack") from exc
    if not isinstance(value, list) or not value:
        raise SerializationError("a checkpoint script reply has an unexpected shape")
    return value


def _read_reply(reply: Any) -> list[Any]:
    """READ's reply (``read.lua``): its msgpack head, each inline entry's blobs put back in place.

    The blobs come after the head as plain bulk strings, ``n`` per inline entry in entry
    order (the entry's fifth part): packed into the head, each cost the server a copy.
    """
    if not isinstance(reply, list) or not reply:
        raise SerializationError("a checkpoint script reply has an unexpected shape")
    head = _unpacked(reply[0])
    at = 1
    for entry in head[1:]:
        if not isinstance(entry, list) or len(entry) < 6:
            raise SerializationError("a checkpoint script reply has an unexpected shape")
        n = entry[4]
        if type(n) is int:
            if n < 0 or at + n > len(reply):
                raise SerializationError("a checkpoint script reply has an unexpected shape")
            entry[4] = reply[at : at + n]
            at += n
    if at != len(reply):
        raise SerializationError("a checkpoint script reply has an unexpected shape")
    return head


def _record(raw: Any, what: str) -> tuple[str, list[bytes], str]:
    """An index record (see `_keys`) as (parent, blob refs, erun)."""
    try:
        rec = msgpack.unpackb(raw, raw=True, use_list=True)
        parent, refs, erun, filters = rec
        # every part as put writes it: a ref that is an int went to bytes(ref), which
        # allocates that many zero bytes (4 GB for a record naming 4000000000)
        if (
            not isinstance(parent, bytes)
            or not isinstance(refs, list)
            or not all(isinstance(ref, bytes) for ref in refs)
            or not isinstance(erun, bytes)
            or not isinstance(filters, dict)
        ):
            raise TypeError("not a record")
        return _text(parent), refs, _text(erun)
    except (ValueError, TypeError, UnicodeDecodeError, msgpack.UnpackException) as exc:
        raise SerializationError(f"{what}: the index record is malformed") from exc


def _body(raw: Any, what: str) -> tuple[bytes, bytes]:
    """A body (see `_keys`) as its (checkpoint, metadata) frames."""
    try:
        frames = msgpack.unpackb(raw, raw=False, use_list=True, max_bin_len=len(raw))
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise SerializationError(f"{what}: the stored checkpoint is malformed") from exc
    if (
        not isinstance(frames, list)
        or len(frames) != 2
        or not all(isinstance(frame, bytes) for frame in frames)
    ):
        raise SerializationError(f"{what}: the stored checkpoint is malformed")
    return frames[0], frames[1]


def _check_write(name: bytes, raw: Any, what: str) -> None:
    """Check a stored pending write (``idx<TAB>task`` name, value) as `RedisSaver._writes` does.

    copy_thread checks each write this way, then copies its bytes.

    Raises:
        SerializationError: It is not (someone else's bytes).
    """
    idx_b, sep, task_b = name.partition(b"\t")
    try:
        int(idx_b)
        task_b.decode("utf-8")
        channel, task_path, _frame = msgpack.unpackb(
            raw, raw=False, strict_map_key=True, max_bin_len=len(raw)
        )
    except (ValueError, TypeError, UnicodeDecodeError, msgpack.UnpackException) as exc:
        raise SerializationError(f"{what}: a pending write is malformed") from exc
    if not sep or not isinstance(channel, str) or not isinstance(task_path, str):
        raise SerializationError(f"{what}: a pending write is malformed")


def _ids(ids: Sequence[str], what: str) -> Sequence[str]:
    """A sequence of thread or run ids, never one id.

    A str is a sequence of its characters, and a prune or delete of those would hit other
    threads (LangGraph's PostgresSaver refuses it too).

    Raises:
        InvalidInputError: `ids` is a str or bytes.
    """
    if isinstance(ids, str | bytes):
        raise InvalidInputError(f"{what} must be a sequence of ids, not a str")
    return ids


def _check_batch(batch: object) -> None:
    if type(batch) is not int or batch < 1:
        raise InvalidInputError(f"batch must be a positive int, not {batch!r}")


def _run_of(config: RunnableConfig) -> str | None:
    """The run id of `put_writes`' config, where `get_checkpoint_metadata` finds a put's."""
    for part in (config.get("metadata"), config.get("configurable")):
        run_id = part.get("run_id") if isinstance(part, dict) else None
        if run_id is not None and not isinstance(run_id, (str, int, float)):
            run_id = None
        if run_id is not None:
            return str(run_id).replace("\u0000", "") or None
    return None


def _thread_entry(index: str, thread: str | bytes) -> tuple[Any, ...]:
    """The ZADD naming `thread` in the thread index.

    Score 0 for every thread: `threads()` pages the index by lex range, which Redis defines
    only when all members share one score (scored by creation time, threads created in
    another order than their names were skipped past the first page). Setting the score
    (not NX) also levels an entry an earlier build scored by time.
    """
    return ("ZADD", index, 0, thread)


def _utf8(text: str) -> bool:
    """Whether `text` can go to Redis (UTF-8 holds no lone surrogate)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _thread_name(member: bytes) -> str | None:
    """The thread id a thread index member names, or None when no thread can have it.

    `put` writes only ids `thread_id_of` accepts, as UTF-8: anything else is someone else's
    bytes, with no thread behind it.
    """
    try:
        return thread_id_of(member.decode("utf-8"))
    except (UnicodeDecodeError, InvalidInputError):
        return None


def _pairs(flat: Any) -> dict[bytes, bytes]:
    if isinstance(flat, dict):  # RESP3 maps, should a script reply ever arrive as one
        return {bytes(k): v for k, v in flat.items()}
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}


@dataclass(slots=True)
class _Where:
    """A config's thread and checkpoint namespace, checked."""

    thread_value: Any
    """The ``thread_id`` as the caller gave it (echoed back in configs)."""
    thread: str
    cns: str | None
    cid: str | None
    keys: ThreadKeys


@dataclass(slots=True)
class _Copy:
    """A `copy_thread` under way: its threads and where the next page starts."""

    source: str
    src: ThreadKeys
    dst_thread: str
    dst: ThreadKeys
    bound: str | bytes = "-"
    """Lower lex bound of the next page of the source's index (exclusive after the first)."""
    indexed: bool = False
    runs: set[str] = dataclasses.field(default_factory=set)
    """Encoded runs already named in the cross-thread run index."""


class RedisSaver(RedisComponent, BaseCheckpointSaver[str]):
    """A LangGraph checkpointer on plain Redis 7+, Valkey and Redis Cluster (no modules).

    Every key of one thread shares a hash tag, so a checkpoint and its blobs, writes and index
    entries are written by one script in one slot; `list` pages through a per-thread index
    newest first, with metadata filters evaluated on the server. Values go through LangGraph's
    serializer without pickle; hostile bytes are a `SerializationError`.

    Args:
        checkpoint_settings: Saver options; keyword `options` override them.
        serde: Your serializer (e.g. LangGraph's `EncryptedSerializer`); default: LangGraph's
            `JsonPlusSerializer` with no pickle fallback and the strict msgpack allowlist.
        **options: The connection (`connector=`, a shared one the caller closes, or the
            conveniences `url=`, `settings=`, `client=`, `async_client=`, from which the
            saver builds one it owns), then any `CheckpointSettings` field (`namespace`,
            `ttl_seconds`, ...); see `CheckpointOptions`.

    Example:
        >>> saver = RedisSaver(url="redis://localhost:6379/0")  # doctest: +SKIP
        >>> graph = builder.compile(checkpointer=saver)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        checkpoint_settings: CheckpointSettings | None = None,
        serde: SerializerProtocol | None = None,
        **options: Unpack[CheckpointOptions],
    ) -> None:
        BaseCheckpointSaver.__init__(self, serde=serde or default_serde())
        self._strict = serde is None
        connection, overrides = split_connection(options)
        self._attach(**connection)
        base = checkpoint_settings or CheckpointSettings()
        self.checkpoint_settings: CheckpointSettings = (
            base.with_overrides(**overrides) if overrides else base
        )
        """The saver options in force."""
        self.keys = CheckpointKeys(self._connector.keyspace, self.checkpoint_settings.namespace)
        """Key builder of the namespace."""
        self._eviction = EvictionGuard(
            "conversation checkpoints",
            self.checkpoint_settings.eviction_check,
            logger="deepagents_redis.checkpoint",
        )
        # Threads and (run, thread) pairs already in the cross-thread indexes, with when this
        # process sent them, so a put pays for them once per process (with a TTL, once per
        # half TTL: see `_indexes`), not per call.
        self._indexed: dict[Any, float] = {}
        # Each thread's eight keys, built once (encoding and joining them cost ~5 us per
        # call, paid by every put, put_writes and get of a conversation).
        self._thread_keys: dict[str, ThreadKeys] = {}

    # ------------------------------------------------------------------ plumbing
    @property
    def _deadline(self) -> float | None:
        own = self.checkpoint_settings.deadline_seconds
        return own if own is not None else self._connector.settings.deadline_seconds

    @property
    def _ttl(self) -> str:
        ttl = self.checkpoint_settings.ttl_seconds
        return "" if ttl is None else str(ttl * 1000)

    @property
    def _read_ttl(self) -> str:
        return self._ttl if self.checkpoint_settings.refresh_on_read else ""

    def _run(self, name: str, op: Operation[T]) -> T:
        return run_operation(
            self._connector,
            f"checkpoint.{name}",
            op,
            deadline_seconds=self._deadline,
            words=_WORDS,
        )

    async def _arun(self, name: str, op: Operation[T]) -> T:
        return await arun_operation(
            self._connector,
            f"checkpoint.{name}",
            op,
            deadline_seconds=self._deadline,
            words=_WORDS,
        )

    def _where(self, config: RunnableConfig | None, *, need_ns: bool = False) -> _Where:
        conf = (config or {}).get("configurable") or {}
        if "thread_id" not in conf:
            raise InvalidInputError("config['configurable'] has no thread_id")
        thread = thread_id_of(conf["thread_id"])
        cns = conf.get("checkpoint_ns")
        if cns is None and need_ns:
            cns = ""
        if cns is not None and not isinstance(cns, str):
            raise InvalidInputError("configurable.checkpoint_ns must be a str")
        # An empty id names no checkpoint: the newest, as InMemorySaver and PostgresSaver
        # read it (`if checkpoint_id := get_checkpoint_id(config)`).
        cid = conf.get("checkpoint_id") or None
        if cid is not None:
            cid = check_checkpoint_id(cid)
        keys = self._thread_keys.get(thread)
        if keys is None:
            if len(self._thread_keys) >= _MEMO_MAX:
                self._thread_keys.clear()
            keys = self._thread_keys[thread] = self.keys.thread(thread)
        return _Where(conf["thread_id"], thread, cns, cid, keys)

    def _remember(self, marker: Any, every: float | None = None) -> bool:
        """Whether `marker` is new to this process, or was sent `every` seconds ago or more.

        A true answer notes it as sent now.
        """
        now = _clock()
        sent = self._indexed.get(marker)
        if sent is not None and (every is None or now - sent < every):
            return False
        if len(self._indexed) >= _MEMO_MAX:
            self._indexed.clear()
        self._indexed[marker] = now
        return True

    def _indexes(
        self, cmds: Sequence[tuple[Any, ...]], runs: Sequence[tuple[str, Sequence[str]]]
    ) -> Operation[None]:
        """Write thread index commands `cmds`, then name each run's threads in its index.

        A run's index is a key of its own (``ckpt-run:{<ns>/<run>}``). With a TTL it expires
        too (it outlived its threads: one key per run, forever), after twice the TTL,
        renewed at least every half TTL while this process writes the run: so it lives more
        than a TTL past the run's last write, as long as the checkpoints `delete_for_runs`
        looks it up for (unless reads keep them alive longer: `refresh_on_read`).

        The set and its TTL are two commands, so with a TTL each run's pair goes in a MULTI
        of its own (one slot): sent in a plain pipeline, a failure between them (a connection
        cut after the SADD, a refused PEXPIRE) left a run index that lived forever. A MULTI
        refused at queue time applies nothing; one sent again applies the same.
        """
        ttl = self.checkpoint_settings.ttl_seconds
        if ttl is None:  # one SADD per run: nothing to keep together
            cmds = [*cmds, *(("SADD", self.keys.run(run), *threads) for run, threads in runs)]
            if cmds:
                yield Pipeline(cmds)
            return
        if cmds:
            yield Pipeline(cmds)
        ms = 2_000 * ttl
        for run, threads in runs:
            key = self.keys.run(run)
            yield Snapshot(
                [("SADD", key, *threads), ("PEXPIRE", key, ms)],
                Script(RUN_INDEX, [key], [ms, *threads]),
            )

    # ------------------------------------------------------------------ encode / decode
    def _put_args(
        self,
        where: _Where,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        parent: str | None,
    ) -> tuple[list[Any], list[Any], str]:
        """PUT's ARGV without the blobs (see ``put.lua``), the blob pairs, and the run id."""
        cid = check_checkpoint_id(checkpoint["id"])
        stored: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = stored.pop("channel_values", None) or {}
        run_id = metadata.get("run_id")
        erun = self.keys.enc(str(run_id)) if run_id else ""
        body = msgpack.packb(
            [dump(self.serde, stored), dump(self.serde, metadata)], use_bin_type=True
        )
        filters: dict[str, str] = {}
        for key, value in metadata.items():
            # filter keys are str: another key type is never matched, and as str(key) it
            # could hide the str key it prints as ({'1': 2, 1: 1}); a str subclass (an enum)
            # is stored, and compared, as its str value
            if not isinstance(key, str):
                continue
            # A value with no canonical text (a Decimal, a datetime, a dict holding one...)
            # may still equal a filter value that has one (Decimal(1) == 1, as
            # InMemorySaver compares): it is held as ANY, which every filter on its key
            # lets through to the exact check in Python (without it the server found no
            # field and matched only a filter of None: such checkpoints went missing).
            text = canonical(value)
            filters[key if type(key) is str else str.__str__(key)] = (
                _ANY if text is None else _filter_text(text)
            )
        refs = [self.keys.blob_ref(ch, ver) for ch, ver in stored["channel_versions"].items()]
        # no bin type: Lua's cmsgpack reads this record (strings only)
        try:
            record = msgpack.packb([parent or "", refs, erun, filters], use_bin_type=False)
        except UnicodeEncodeError:
            # A metadata value holding a lone surrogate, which UTF-8 cannot hold (LangGraph's
            # serializer stores "?" in its place; a key holding one it refuses, before this):
            # no text for the server to match, the exact check in Python decides (a filter
            # holding one is not sent either).
            filters = {k: v if _utf8(v) else _ANY for k, v in filters.items()}
            record = msgpack.packb([parent or "", refs, erun, filters], use_bin_type=False)
        blobs: list[Any] = []
        for channel, version in new_versions.items():
            blobs += [
                self.keys.blob_ref(channel, version),
                dump(self.serde, values[channel]) if channel in values else _EMPTY,
            ]
        ecns = self.keys.enc(where.cns or "")
        return [ecns, cid, self._ttl, erun, body, record], blobs, str(run_id) if run_id else ""

    def _tuple(self, where: _Where, thread_value: Any, entry: Any) -> CheckpointTuple:
        cid_b, ecns_b, body, record, blob_values, write_flat = entry
        try:
            cid, ecns = _text(cid_b), _text(ecns_b)
            cns = self.keys.dec(ecns)
        except (UnicodeDecodeError, InvalidInputError) as exc:
            # an index entry no put writes (someone else's bytes): the key decoder's
            # InvalidInputError is about the caller's input, and this is not
            raise SerializationError(
                f"checkpoint {where.thread!r}: an index entry names no checkpoint namespace"
            ) from exc
        what = f"checkpoint {where.thread!r}/{cns!r}/{cid}"
        c_raw, m_raw = _body(body, what)
        parent, refs, _erun = _record(record, what)
        checkpoint = load(self.serde, c_raw, what=what, strict=self._strict)
        metadata = load(self.serde, m_raw or None, what=what + " metadata", strict=self._strict)
        versions = checkpoint.get("channel_versions") if isinstance(checkpoint, dict) else None
        # a channel that is not a str went to the key encoder (InvalidInputError, as if the
        # caller had passed it): put refuses such a checkpoint, so the bytes are not ours
        if not isinstance(versions, dict) or not all(isinstance(ch, str) for ch in versions):
            raise SerializationError(f"{what}: not a checkpoint")
        if not isinstance(metadata, dict):
            raise SerializationError(f"{what}: metadata is not a mapping")
        # the blobs come aligned with the refs stored at put time ('' for a missing blob)
        blobs = dict(zip(refs, blob_values, strict=False))
        values: dict[str, Any] = {}
        for channel, version in checkpoint["channel_versions"].items():
            raw = blobs.get(self.keys.blob_ref(channel, version).encode())
            if not raw or raw == _EMPTY:
                continue
            values[channel] = load(
                self.serde, raw, what=f"{what} channel {channel!r}", strict=self._strict
            )
        checkpoint["channel_values"] = values
        configurable = {"thread_id": thread_value, "checkpoint_ns": cns}
        return CheckpointTuple(
            config={"configurable": {**configurable, "checkpoint_id": cid}},
            checkpoint=checkpoint,  # type: ignore[arg-type]
            metadata=metadata,  # type: ignore[arg-type]
            parent_config=(
                {"configurable": {**configurable, "checkpoint_id": parent}} if parent else None
            ),
            pending_writes=self._writes(_pairs(write_flat), what),
        )

    def _writes(
        self, rows: dict[bytes, bytes], what: str, only: set[str] | None = None
    ) -> list[PendingWrite]:
        """Decode pending writes in `writes_sort_key` order (only `only`'s channels, if set)."""
        ordered: list[tuple[tuple[str, str, int], PendingWrite]] = []
        for field, raw in rows.items():
            idx_b, sep, task_b = field.partition(b"\t")
            try:
                idx = int(idx_b)
                channel, task_path, frame = msgpack.unpackb(
                    raw, raw=False, strict_map_key=True, max_bin_len=len(raw)
                )
                task_id = task_b.decode("utf-8")
            except (ValueError, TypeError, UnicodeDecodeError, msgpack.UnpackException) as exc:
                raise SerializationError(f"{what}: a pending write is malformed") from exc
            if not sep or not isinstance(channel, str) or not isinstance(task_path, str):
                raise SerializationError(f"{what}: a pending write is malformed")
            if only is not None and channel not in only:
                continue
            value = load(self.serde, frame, what=f"{what} write {channel!r}", strict=self._strict)
            ordered.append((writes_sort_key(task_path, task_id, idx), (task_id, channel, value)))
        ordered.sort(key=lambda pair: pair[0])
        return [write for _, write in ordered]

    # ------------------------------------------------------------------ operations
    def _put_op(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Operation[RunnableConfig]:
        where = self._where(config, need_ns=True)
        meta = get_checkpoint_metadata(config, metadata)
        args, blobs, run_id = self._put_args(where, checkpoint, meta, new_versions, where.cid)
        # The cross-thread indexes first: a crash after them leaves an index entry with no
        # thread behind it (skipped on read), never a thread the indexes do not know.
        thread_cmds = self._thread_index(where.thread)
        ttl = self.checkpoint_settings.ttl_seconds
        runs: list[tuple[str, Sequence[str]]] = []
        if run_id and self._remember(
            ("run", run_id, where.thread), None if ttl is None else ttl / 2
        ):
            runs = [(run_id, [where.thread])]
        named_run = bool(runs)
        yield from self._indexes(thread_cmds, runs)
        reply = yield from self._put_script(where, args, blobs)
        # The script tells a thread (or run) that had no checkpoint before it; should this
        # process have skipped the index for it, another one deleted the thread since (e.g. a
        # conversation reset under a stable id): name it again, or threads(), list(None), the
        # migration's copy and delete_for_runs would miss it. A new thread is named again
        # even when the index was written just before the script: `sweep_threads` may have
        # taken that name off in between (it saw no thread yet), and it relies on every
        # thread's creation being followed by an index write (see `_sweep_page_op`).
        late: list[tuple[Any, ...]] = []
        if int(reply[0]):
            late += self._thread_index(where.thread, force=True)
        # Likewise a run this thread had no checkpoint of is named again after the script,
        # even when it was named just before: `delete_for_runs` may have taken the name off
        # in between (it saw none of the run in this thread yet; see `_forget_run_op`).
        late_runs: list[tuple[str, Sequence[str]]] = []
        if run_id and int(reply[1]):
            if not named_run:
                self._remember(("run", run_id, where.thread), 0)
            late_runs = [(run_id, [where.thread])]
        yield from self._indexes(late, late_runs)
        return {
            "configurable": {
                "thread_id": where.thread_value,
                "checkpoint_ns": where.cns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    def _thread_index(self, thread: str, *, force: bool = False) -> list[tuple[Any, ...]]:
        """The command naming `thread` in the thread index, if this process has not yet."""
        if not self._remember(("thread", thread), 0 if force else None):
            return []
        return [_thread_entry(self.keys.threads, thread)]

    def _put_script(self, where: _Where, args: list[Any], blobs: list[Any]) -> Operation[Any]:
        """PUT with `blobs` inside it, or around it when they are big; PUT's reply."""
        inline = Script(PUT, where.keys.all, [*args, *blobs])
        if sum(len(blob) for blob in blobs[1::2]) <= self.checkpoint_settings.script_blob_bytes:
            return (yield inline)
        # Big blobs go around the script (see `CheckpointSettings.script_blob_bytes`): an
        # HSET of them, then the script without them, in one MULTI. Each blob's field
        # names an immutable channel version, so repeating the HSET (a retry, or the
        # fallback after NOSCRIPT) rewrites the same bytes.
        keys = where.keys
        fields = [
            part
            for ref, blob in zip(blobs[::2], blobs[1::2], strict=True)
            for part in (f"{args[0]}\t{ref}", blob)
        ]
        cmds: list[tuple[Any, ...]] = [("HSET", keys.blobs, *fields), *self._expire(keys.blobs)]
        cmds.append(("EVALSHA", PUT.sha, len(keys.all), *keys.all, *args))
        how, reply = yield Snapshot(cmds, inline)
        return reply[-1] if how == "multi" else reply

    def _expire(self, key: str) -> list[tuple[Any, ...]]:
        """The thread's TTL on `key`, for a MULTI that writes `key` before its script.

        The HSET of such a MULTI runs even when its script does not (``NOSCRIPT``, then a
        fallback call that fails; an error reply): it created the key of a new thread (or
        of one deleted meanwhile) with no TTL, and with no checkpoint to name its fields
        nothing ever deleted it. With it the key expires as the thread's others do (the
        script sets the same TTL on all eight when it runs).
        """
        ttl = self._ttl
        return [("PEXPIRE", key, ttl)] if ttl else []

    def _put_writes_op(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> Operation[None]:
        where = self._where(config, need_ns=True)
        if where.cid is None:
            raise InvalidInputError("put_writes needs configurable.checkpoint_id")
        if not isinstance(task_id, str) or not isinstance(task_path, str):
            raise InvalidInputError("task_id and task_path must be str")
        if not writes:
            return
        field = where.keys.field(self.keys.enc(where.cns or ""), where.cid)
        run_id = _run_of(config)
        if run_id:
            # refused before anything is written, as `put` refuses it: its run index is
            # named after the script, and a run id no key can hold failed there, with the
            # writes and their member stored (a run `delete_for_runs` then refuses)
            self.keys.run(run_id)
        args: list[Any] = [field, self._ttl, self.keys.enc(run_id) if run_id else ""]
        size = 0
        try:
            # A str UTF-8 cannot hold (a lone surrogate) would fail in redis-py's encoder,
            # untyped, as the request went out; the frames below refuse it in the channel.
            task_id.encode()
            task_path.encode()
            for idx, (channel, value) in enumerate(writes):
                if not isinstance(channel, str):
                    raise InvalidInputError("a write's channel must be a str")
                slot = WRITES_IDX_MAP.get(channel, idx)
                frame = msgpack.packb(
                    [channel, task_path, dump(self.serde, value)], use_bin_type=True
                )
                args += [f"{slot}\t{task_id}", frame, "1" if slot < 0 else "0"]
                size += len(frame)
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                "task_id, task_path and channel names must be UTF-8 encodable (no lone surrogates)"
            ) from exc
        inline = Script(PUT_WRITES, where.keys.all, args)
        if size <= self.checkpoint_settings.script_blob_bytes:
            reply = yield inline
        else:
            reply = yield from self._big_writes(where, args, inline)
        # Writes with no checkpoint to name them (their put has not landed, or their
        # checkpoint was deleted): the script named them under their run, and the run's
        # index is written after it, as a put's late one (see `_put_op`), so
        # `delete_for_runs` deletes them with the run. A checkpoint that exists keeps its
        # own run's writes under it: nothing to name. The thread index is not written
        # here: writes may land before their thread's first put (LangGraph's async
        # durability), and a sweep takes a named thread with no checkpoint whole.
        if run_id and int(reply[1]):
            self._remember(("run", run_id, where.thread), 0)
            yield from self._indexes([], [(run_id, [where.thread])])

    def _big_writes(self, where: _Where, args: list[Any], inline: Script) -> Operation[Any]:
        """PUT_WRITES with its big values around it, in one MULTI; the script's reply."""
        field = args[0]
        # Big values go around the script (see `CheckpointSettings.script_blob_bytes`): the
        # script lists the names (and drops a field no list names: the value of a call whose
        # script never ran, see ``put_writes.lua``), then each value goes as the HSET
        # (special writes: replaced) or HSETNX (the first write per task and index stays)
        # the script would run, in one MULTI. Repeating it (a retry, the fallback after
        # NOSCRIPT) stores the same thing once. The script first: after it, an HSETNX whose
        # field held such a value kept that value instead of this call's.
        keys = where.keys
        names: list[Any] = args[:3]
        cmds: list[tuple[Any, ...]] = [("EVALSHA", PUT_WRITES.sha, len(keys.all), *keys.all)]
        for i in range(3, len(args), 3):
            name, frame, replace = args[i : i + 3]
            cmds.append(
                ("HSET" if replace == "1" else "HSETNX", keys.writes, f"{field}\t{name}", frame)
            )
            names += [name, "", "2"]
        cmds[0] += tuple(names)
        cmds += self._expire(keys.writes)
        how, reply = yield Snapshot(cmds, inline)
        return reply[0] if how == "multi" else reply

    def _read_op(self, where: _Where, args: list[Any]) -> Operation[list[Any]]:
        """One READ call: its cursor, then its entries with every blob in place.

        `args` are READ's ARGV (``read.lua``) without ``inline_max``, which goes before the
        filters. Blobs past `CheckpointSettings.script_blob_bytes` come as sizes: one HMGET reads
        them. They are immutable (each field names one channel version), so a blob of the
        size the script saw is that blob; one that changed or went between the two round
        trips (the thread deleted, pruned or expired meanwhile) makes the call run again
        with every blob inside the script, as one atomic read.
        """
        head, filters = args[:7], args[7:]
        limit = self.checkpoint_settings.script_blob_bytes
        reply = _read_reply((yield Script(READ, where.keys.all, [*head, limit, *filters])))
        deferred = [entry for entry in reply[1:] if len(entry) == 7]
        if deferred:
            fields: list[bytes] = []
            wanted: list[tuple[list[Any], int, int]] = []  # entry, ref index, size
            for entry in deferred:
                ecns = bytes(entry[1])
                what = (
                    f"checkpoint {where.thread!r}/{ecns.decode('utf-8', 'replace')}/"
                    f"{bytes(entry[0]).decode('utf-8', 'replace')}"
                )
                _parent, refs, _erun = _record(entry[3], what)
                sizes = entry[4]
                if not isinstance(sizes, list) or len(sizes) != len(refs):
                    raise SerializationError(f"{what}: a read reply has an unexpected shape")
                entry[4] = [b""] * len(refs)
                for i, (ref, size) in enumerate(zip(refs, sizes, strict=True)):
                    if size:
                        fields.append(ecns + b"\t" + ref)
                        wanted.append((entry, i, size))
                del entry[6]
            values = (yield Command(("HMGET", where.keys.blobs, *fields))) if fields else []
            for (entry, i, size), value in zip(wanted, values, strict=True):
                if value is None or len(value) != size:
                    reply = _read_reply((yield Script(READ, where.keys.all, [*head, "", *filters])))
                    break
                entry[4][i] = value
        return reply

    def _get_op(self, config: RunnableConfig) -> Operation[CheckpointTuple | None]:
        where = self._where(config, need_ns=True)
        ecns = self.keys.enc(where.cns or "")
        if where.cid is not None:
            reply = yield from self._read_op(
                where, ["id", ecns, where.cid, "", 1, 1, self._read_ttl]
            )
            return self._tuple(where, where.thread_value, reply[1]) if len(reply) > 1 else None
        hi: str | bytes
        hi, lo = _ns_range(ecns, None)
        while True:  # newest first, past index entries whose checkpoint is gone
            reply = yield from self._read_op(
                where,
                ["scan", ecns, hi, lo, 1, self.checkpoint_settings.scan_batch, self._read_ttl],
            )
            if len(reply) > 1:
                return self._tuple(where, where.thread_value, reply[1])
            if not reply[0]:
                return None
            hi = b"(" + bytes(reply[0])  # as stored: see `_page_op`

    def _page_op(
        self,
        where: _Where,
        hi: str | bytes,
        lo: str,
        want: int,
        filters: list[str],
    ) -> Operation[tuple[bytes, list[Any]]]:
        """One page of `list`: the thread's index, or one namespace's range, from `hi` to `lo`.

        The cursor comes back as the member's stored bytes: the last member a call looked
        at may be one no put writes (a read drops it), and as text one not UTF-8 stopped
        `list`, `get_tuple` and `copy_thread` with an untyped UnicodeDecodeError.
        """
        ecns = "" if where.cns is None else self.keys.enc(where.cns)
        reply = yield from self._read_op(
            where,
            [
                "scan",
                ecns,
                hi,
                lo,
                want,
                self.checkpoint_settings.scan_batch,
                self._read_ttl,
                *filters,
            ],
        )
        return bytes(reply[0]), list(reply[1:])

    def _bounds(self, where: _Where, before_id: str | None) -> tuple[str, str] | None:
        """The lex bounds (hi, lo) of a list's first page; None when nothing can match.

        `before_id` is excluded. A config's ``checkpoint_id`` narrows the range to that
        checkpoint's members: the scan read (and the client decoded) every checkpoint of
        the thread to keep the one it named.
        """
        cid = where.cid
        if cid is not None and before_id is not None and cid >= before_id:
            return None  # ids are ASCII: str order is the index's byte order
        if where.cns is None:  # members 'cid<TAB>ecns': '(cid' is below all of cid's
            if cid is not None:
                return f"({cid}\n", f"[{cid}\t"
            return ("(" + before_id if before_id else "+"), "-"
        ecns = self.keys.enc(where.cns)
        if cid is not None:  # exactly one member
            return f"[{ecns}\t{cid}", f"[{ecns}\t{cid}"
        hi, lo = _ns_range(ecns, before_id)
        return hi, lo

    def _history_op(
        self, config: RunnableConfig, channels: Sequence[str]
    ) -> Operation[dict[str, DeltaChannelHistory]]:
        """`get_delta_channel_history` in one script call per `scan_batch` ancestors."""
        where = self._where(config, need_ns=True)
        ecns = self.keys.enc(where.cns or "")
        by_ech = {self.keys.enc(ch): ch for ch in channels}
        remaining = set(channels)
        collected: dict[str, list[PendingWrite]] = {ch: [] for ch in channels}
        seeds: dict[str, Any] = {}
        mode, start = "after", (where.cid or "").encode()
        while remaining:
            head = [ecns, mode, start, self.checkpoint_settings.scan_batch]
            reply = yield from self._history_call(where, ecns, head, list(by_ech))
            for cid_b, write_flat, seed_flat in reply[1:]:
                cid = bytes(cid_b).decode("utf-8", "replace")  # named in errors only
                what = f"checkpoint {where.thread!r}/{where.cns!r}/{cid}"
                # newest ancestor first; within one, writes newest first (as the base walk)
                for write in reversed(self._writes(_pairs(write_flat), what, only=remaining)):
                    collected[write[1]].append(write)
                for ech, blob in _pairs(seed_flat).items():
                    channel = by_ech[_text(ech)]
                    if channel in remaining:
                        seeds[channel] = load(
                            self.serde,
                            blob,
                            what=f"{what} channel {channel!r}",
                            strict=self._strict,
                        )
                        remaining.discard(channel)
            if not reply[0]:
                break
            mode, start = "from", bytes(reply[0])  # as stored: see `_page_op`
        result: dict[str, DeltaChannelHistory] = {}
        for channel in channels:
            entry: DeltaChannelHistory = {"writes": list(reversed(collected[channel]))}
            if channel in seeds:
                entry["seed"] = seeds[channel]
            result[channel] = entry
        return result

    def _history_call(
        self, where: _Where, ecns: str, head: list[Any], channels: list[str]
    ) -> Operation[list[Any]]:
        """One HISTORY call, its ancestors with every write value and seed in place.

        Values past `CheckpointSettings.script_blob_bytes` come as sizes (see ``history.lua``)
        and one pipeline of two HMGETs reads them; as for `_read_op`, a value of another
        size than the script saw (the thread changed between the round trips) makes the
        call run again with every value inside the script.
        """
        limit = self.checkpoint_settings.script_blob_bytes
        keys = where.keys
        reply = _unpacked((yield Script(HISTORY, keys.all, [*head, limit, *channels])))
        deferred = [entry for entry in reply[1:] if len(entry) == 4]
        if not deferred:
            return reply
        prefix = ecns.encode()
        w_fields: list[bytes] = []
        b_fields: list[bytes] = []
        sizes: list[int] = []
        for entry in deferred:
            cid_b, write_sizes, seed_sizes, _ = entry
            f = prefix + b"\t" + bytes(cid_b)
            w_fields += [f + b"\t" + bytes(name) for name in write_sizes[::2]]
            b_fields += [prefix + b"\t" + bytes(ref) for ref in seed_sizes[1::3]]
            sizes += [*write_sizes[1::2]]
        sizes += [size for entry in deferred for size in entry[2][2::3]]
        cmds: list[tuple[Any, ...]] = []
        if w_fields:
            cmds.append(("HMGET", keys.writes, *w_fields))
        if b_fields:
            cmds.append(("HMGET", keys.blobs, *b_fields))
        got = yield Pipeline(cmds)
        values = [v for part in got for v in part]
        if any(v is None or len(v) != n for v, n in zip(values, sizes, strict=True)):
            return _unpacked((yield Script(HISTORY, keys.all, [*head, "", *channels])))
        writes, blobs = iter(values[: len(w_fields)]), iter(values[len(w_fields) :])
        for entry in deferred:
            cid_b, write_sizes, seed_sizes, _ = entry
            entry[:] = [
                cid_b,
                [part for name in write_sizes[::2] for part in (name, next(writes))],
                [part for ech in seed_sizes[::3] for part in (ech, next(blobs))],
            ]
        return reply

    def _index_page_op(self, after: bytes, count: int) -> Operation[builtins.list[bytes]]:
        """One page of the thread index as stored (bytes), after member `after`."""
        bound = b"(" + after if after else b"-"
        reply = yield Command(("ZRANGE", self.keys.threads, bound, "+", "BYLEX", "LIMIT", 0, count))
        return [bytes(member) for member in reply]

    def _checkpoint_ids(self, thread_id: str) -> set[tuple[str, str]]:
        """(namespace, checkpoint id) of every checkpoint the thread's index names.

        For `copy_threads`' resume check: ids only, from the index, a page of 1,000 members
        per call (no checkpoint, blob or write is read). A member no put writes is skipped.
        """
        keys = self.keys.thread(thread_id_of(thread_id))
        found: set[tuple[str, str]] = set()
        bound = b"-"
        while True:
            page = self._run("copy_thread", self._ids_page_op(keys, bound))
            for member in page:
                cid, sep, ecns = member.partition(b"\t")
                try:
                    if sep:
                        found.add((self.keys.dec(ecns.decode()), cid.decode()))
                except (UnicodeDecodeError, InvalidInputError):
                    pass  # someone else's bytes: names no checkpoint (reads drop it too)
            if len(page) < _IDS_PAGE:
                return found
            bound = b"(" + page[-1]

    @staticmethod
    def _ids_page_op(keys: ThreadKeys, bound: bytes) -> Operation[builtins.list[bytes]]:
        reply = yield Command(("ZRANGE", keys.index, bound, "+", "BYLEX", "LIMIT", 0, _IDS_PAGE))
        return [bytes(member) for member in reply]

    def _threads_op(self, after: str, count: int) -> Operation[builtins.list[str]]:
        """One page of thread ids after `after`.

        Raises:
            SerializationError: A member no thread can be named (not UTF-8, or an id `put`
                refuses): bytes someone else wrote into our index; `sweep_threads` takes
                them off.
        """
        page = yield from self._index_page_op(after.encode(), count)
        names: builtins.list[str] = []
        for member in page:
            name = _thread_name(member)
            if name is None:
                raise SerializationError(
                    f"the thread index of namespace {self.keys.namespace!r} holds "
                    f"{member[:60]!r}, which no thread can be named; sweep_threads() "
                    "(or 'deepagents-redis checkpoint sweep') takes it off"
                )
            names.append(name)
        return names

    def _sweep_page_op(self, after: bytes, count: int) -> Operation[tuple[list[bytes], int]]:
        """Take the names of threads with no checkpoint left off one page of the index.

        Race-free against a put creating the thread at the same time, though the index is
        in another slot (no script can hold both): names with no thread behind them are
        taken off, then looked at again, and put back if a thread appeared meanwhile. A
        thread that appears after that second look was created after the removal, and
        every put that creates a thread writes its name after the thread (see `_put_op`).
        The page is handled as stored bytes: a member no thread can be named (not UTF-8,
        an id `put` refuses) has nothing behind it and is taken off as it is.

        Returns:
            The page (to go on after its last member) and how many names were taken off.
        """
        page = yield from self._index_page_op(after, count)
        names = {member: _thread_name(member) for member in page}
        heads: dict[bytes, str | None] = {
            member: None if name is None else self.keys.thread(name).index
            for member, name in names.items()
        }
        named = [member for member in page if heads[member] is not None]
        seen = (yield Pipeline([("EXISTS", heads[member]) for member in named])) if named else []
        gone = [member for member, there in zip(named, seen, strict=True) if not int(there)]
        gone += [member for member in page if heads[member] is None]
        if not gone:
            return page, 0
        yield Command(("ZREM", self.keys.threads, *gone))
        looked = [member for member in gone if heads[member] is not None]
        again = (yield Pipeline([("EXISTS", heads[m]) for m in looked])) if looked else []
        back = [member for member, there in zip(looked, again, strict=True) if int(there)]
        if back:
            yield Pipeline([_thread_entry(self.keys.threads, member) for member in back])
        left: list[ThreadKeys] = []
        for member in gone:
            name = names[member]
            if member not in back and name is not None:
                self._indexed.pop(("thread", name), None)
                left.append(self.keys.thread(name))
        # Keys a thread with no checkpoint still has (a big put's HSET whose script never
        # ran, on a new thread: see `_expire`) are reached by nothing once its name is off
        # the index; without a TTL they were kept for good. One look per page, and one
        # call (atomic with its own check) per thread that has some.
        counts = (yield Pipeline([("EXISTS", *keys.all[1:]) for keys in left])) if left else []
        for keys, count in zip(left, counts, strict=True):
            if int(count):
                yield Script(DELETE, keys.all, ["leftover", 1, ""])
        return page, len(gone) - len(back)

    def _delete_thread_op(self, thread_id: str) -> Operation[None]:
        thread = thread_id_of(thread_id)
        keys = self.keys.thread(thread)
        runs: set[str] = set()
        while True:  # one call unless the thread names more runs than a batch
            reply = yield Script(
                DELETE, keys.all, ["all", self.checkpoint_settings.delete_batch, ""]
            )
            runs.update(run for erun in reply[2:] if (run := self._run_name(erun)) is not None)
            if not int(reply[1]):
                break
        # the cross-thread indexes last (a crash before this leaves entries that point at
        # nothing, which readers skip)
        ordered = sorted(runs)
        cmds: list[tuple[Any, ...]] = [("ZREM", self.keys.threads, thread)]
        cmds += [("SREM", self.keys.run(run), thread) for run in ordered]
        yield Pipeline(cmds)
        self._indexed.pop(("thread", thread), None)
        # Another process may have written the thread again since the script unlinked it
        # (a conversation reset under a stable id: the next turn comes at once) and named
        # it, names this removal just took off. Look again, as `sweep_threads` does: a
        # thread created after this look names itself after its put (see `_put_op`).
        if not int((yield Command(("EXISTS", keys.index)))):
            return
        back: list[tuple[Any, ...]] = [_thread_entry(self.keys.threads, thread)]
        if ordered:
            # which of the runs this thread has checkpoints of again (one lex range each)
            found = yield Pipeline(
                [
                    ("ZRANGE", keys.runs, f"[{erun}\t", f"({erun}\n", "BYLEX", "LIMIT", 0, 1)
                    for erun in (self.keys.enc(run) for run in ordered)
                ]
            )
            yield from self._indexes(
                back, [(run, [thread]) for run, hit in zip(ordered, found, strict=True) if hit]
            )
            return
        yield Pipeline(back)

    def _run_name(self, erun: Any) -> str | None:
        """The run id an encoded run names, or None for bytes no put wrote (no run to clean).

        A run id no key can hold (over the key component limit) is none either: `put` and
        `put_writes` refuse it before they write, so no index of it exists; building its
        key raised InvalidInputError, blaming the caller for foreign bytes (a run list or
        member planted in the thread), after the delete and before the thread's others.
        """
        try:
            run = self.keys.dec(_text(erun))
            self.keys.run(run)
        except (UnicodeDecodeError, InvalidInputError):
            return None
        return run

    @staticmethod
    def _runs_plan(run_ids: Sequence[str]) -> builtins.list[str]:
        """`delete_for_runs`' run ids, all checked before anything is deleted."""
        checked = builtins.list(_ids(run_ids, "run_ids"))
        for run_id in checked:
            if not isinstance(run_id, str) or not run_id:
                raise InvalidInputError("run ids must be non-empty str")
        return checked

    def _run_threads_op(
        self, run_id: str
    ) -> Operation[tuple[builtins.list[str], builtins.list[Any]]]:
        """The threads run `run_id` wrote to (its cross-thread index), and its members."""
        members = builtins.list((yield Command(("SMEMBERS", self.keys.run(run_id)))))
        names = (_thread_name(m if isinstance(m, bytes) else str(m).encode()) for m in members)
        # a member put never writes has no thread behind it (taken off with the others)
        return sorted(name for name in names if name is not None), members

    def _forget_run_op(
        self, run_id: str, threads: Sequence[str], members: Sequence[Any]
    ) -> Operation[None]:
        """Take the members a `delete_for_runs` handled off the run's index, race-free.

        Only those (a thread the run wrote to since the index was read keeps its name),
        then each is looked at again and named back if the run wrote to it since its
        delete (a cancelled run's last step landing meanwhile): as `sweep_threads`, with
        `put` naming a run after its script when the thread had none of it.
        """
        run_key = self.keys.run(run_id)
        if not members:
            return
        yield Command(("SREM", run_key, *members))
        if not threads:
            return
        erun = self.keys.enc(run_id)
        found = yield Pipeline(
            [
                (
                    "ZRANGE",
                    self.keys.thread(thread).runs,
                    f"[{erun}\t",
                    f"({erun}\n",
                    "BYLEX",
                    "LIMIT",
                    0,
                    1,
                )
                for thread in threads
            ]
        )
        back = [thread for thread, hit in zip(threads, found, strict=True) if hit]
        if back:
            yield from self._indexes([], [(run_id, back)])

    def _delete_run_op(self, run_id: str, thread: str) -> Operation[None]:
        """Delete run `run_id`'s checkpoints of one thread, `delete_batch` per script.

        Then the cross-thread indexes follow: the thread leaves the index of each other run
        whose last member here went with them (orphan writes of that run under a deleted
        checkpoint), and the thread index when no checkpoint is left (as `delete_thread`
        takes it off: `threads()` listed a thread with nothing in it until a sweep).
        """
        keys = self.keys.thread(thread)
        batch = self.checkpoint_settings.delete_batch
        others: set[str] = set()
        while True:
            reply = yield Script(DELETE, keys.all, ["run", batch, self.keys.enc(run_id)])
            others.update(run for erun in reply[2:] if (run := self._run_name(erun)) is not None)
            if int(reply[0]) < batch:
                break
        yield from self._unname_op(thread, others, emptied=not int(reply[1]))

    def _unname_op(self, thread: str, runs: Collection[str], *, emptied: bool) -> Operation[None]:
        """Take `thread` off each of `runs`' indexes (and the thread index if `emptied`).

        After a delete left the thread nothing of those runs (or no checkpoint), race-free.

        Those indexes are in other slots than the thread, so no script deletes and unnames
        at once: the names go after the delete, then the thread is looked at again and named
        back in each index whose run (or any checkpoint) it holds again (a put meanwhile), as
        `sweep_threads` and `delete_for_runs` do; a put that lands after that look names its
        thread and run after its script (see `_put_op`). A crash in between leaves a name
        with nothing behind it, which readers skip and `delete_for_runs` / `sweep_threads`
        take off.
        """
        ordered = sorted(runs)
        cmds: list[tuple[Any, ...]] = [("SREM", self.keys.run(run), thread) for run in ordered]
        if emptied:
            cmds.append(("ZREM", self.keys.threads, thread))
            self._indexed.pop(("thread", thread), None)
        if not cmds:
            return
        yield Pipeline(cmds)
        keys = self.keys.thread(thread)
        looks: list[tuple[Any, ...]] = [
            ("ZRANGE", keys.runs, f"[{erun}\t", f"({erun}\n", "BYLEX", "LIMIT", 0, 1)
            for erun in (self.keys.enc(run) for run in ordered)
        ]
        if emptied:
            looks.append(("EXISTS", keys.index))
        found = yield Pipeline(looks)
        back = [_thread_entry(self.keys.threads, thread)] if emptied and int(found[-1]) else []
        again = [(run, [thread]) for run, hit in zip(ordered, found, strict=False) if hit]
        if back or again:
            yield from self._indexes(back, again)

    def _delete_runs_ops(
        self, run_id: str, threads: Sequence[str], members: Sequence[Any]
    ) -> Iterator[Operation[Any]]:
        """`delete_for_runs` of one run: one operation per thread, then its index.

        Each operation has its own deadline, so a run that wrote to many threads is deleted
        whatever their number.
        """
        for thread in threads:
            yield self._delete_run_op(run_id, thread)
        yield self._forget_run_op(run_id, threads, members)

    @staticmethod
    def _prune_plan(thread_ids: Sequence[str], strategy: str) -> builtins.list[str]:
        """`prune`'s thread ids, all checked before anything is deleted."""
        if strategy not in ("keep_latest", "delete"):
            raise InvalidInputError(
                f"prune strategy must be 'keep_latest' or 'delete', not {strategy!r}"
            )
        return [thread_id_of(t) for t in _ids(thread_ids, "thread_ids")]

    def _keep_latest_steps(
        self, thread: str, *, check: bool
    ) -> Generator[Operation[Any], Any, bool]:
        """keep_latest of one thread (or its check) as operations; whether it uses a DeltaChannel.

        Bounded work per call (BRIEF §3 "Lua"): one script deleted every old checkpoint of
        the thread at once, blocking the server for as long as the thread was long. Now each
        call looks at `delete_batch` checkpoints, then the unused blobs are dropped
        `delete_batch` fields per call; each call is its own operation (and deadline), atomic,
        and a call sent again goes on from where its batch began. Run by `_drive`/`_adrive`.
        """
        keys = self.keys.thread(thread)
        batch = self.checkpoint_settings.delete_batch
        mode, cursor = ("keep_check" if check else "keep_latest"), ""
        # runs whose last member in the thread went (see `_unname_op`)
        gone: set[str] = set()
        while True:
            found, cursor_b, *eruns = yield self._script_op(keys, [mode, batch, cursor])
            if int(found) < 0:
                return True
            gone.update(run for erun in eruns if (run := self._run_name(erun)) is not None)
            cursor = _text(cursor_b)
            if not cursor:
                break
        if check:
            return False
        # The blobs last, once no old checkpoint is left to name them (each batch above
        # would otherwise walk its namespaces' records again for the blobs it freed).
        # Then the writes of checkpoints that have no record (put_writes stores writes for
        # any id; see ``keep_wgc`` in ``delete.lua``): no index names them, so without this
        # they stayed until the thread's TTL or delete.
        for gc in ("keep_gc", "keep_wgc"):
            cursor = "0"
            while True:
                _n, cursor_b, *eruns = yield self._script_op(keys, [gc, batch, cursor])
                gone.update(run for erun in eruns if (run := self._run_name(erun)) is not None)
                cursor = _text(cursor_b)
                if cursor == "0":
                    break
        # The thread off the cross-thread index of each run it has nothing of any more (a
        # delete_for_runs of that run looked it up, and found nothing, for good).
        if gone:
            yield self._unname_op(thread, gone, emptied=False)
        return False

    @staticmethod
    def _script_op(keys: ThreadKeys, args: builtins.list[Any]) -> Operation[Any]:
        """One DELETE call as an operation of its own."""
        return (yield Script(DELETE, keys.all, args))

    def _drive(self, name: str, steps: Generator[Operation[Any], Any, T]) -> T:
        """Run each operation `steps` yields, sending it the result; what `steps` returns."""
        try:
            op = next(steps)
            while True:
                op = steps.send(self._run(name, op))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _adrive(self, name: str, steps: Generator[Operation[Any], Any, T]) -> T:
        """Async twin of `_drive`."""
        try:
            op = next(steps)
            while True:
                op = steps.send(await self._arun(name, op))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    @staticmethod
    def _delta_refused(delta: Sequence[str]) -> NotImplementedError:
        return NotImplementedError(
            f"keep_latest can't prune threads that use a DeltaChannel: {', '.join(delta)}"
        )

    def _copy_plan(self, source: str, target: str) -> _Copy:
        """A copy's two threads, checked (before anything is read or written)."""
        src = self.keys.thread(thread_id_of(source))
        dst_thread = thread_id_of(target)
        dst = self.keys.thread(dst_thread)
        if src.head == dst.head:
            raise InvalidInputError("copy_thread: source and target are the same thread")
        return _Copy(source, src, dst_thread, dst)

    def _copy_page_op(self, copy: _Copy) -> Operation[bool]:
        """Copy one page of the source, oldest first; whether pages are left.

        Oldest first, so parents are written before their children: a copy cut off part
        way (a lost server, a deadline) leaves the target a consistent older state, never
        a head whose ancestors are missing (a `DeltaChannel` rebuilt from them would come
        back short, with no error). One operation per page, as `list` pages: the deadline
        bounds a page, so a thread of any size can be copied.
        """
        src, dst, dst_thread = copy.src, copy.dst, copy.dst_thread
        reply = _read_reply(
            (
                yield Script(
                    READ,
                    src.all,
                    [
                        "up",
                        "",
                        copy.bound,
                        "+",
                        _PAGE,
                        self.checkpoint_settings.scan_batch,
                        "",
                        "",  # every blob inside the script (copied through PUT's ARGV)
                    ],
                )
            )
        )
        for cid_b, ecns_b, body, record, blob_values, write_flat in reply[1:]:
            try:
                cid, ecns = _text(cid_b), _text(ecns_b)
                self.keys.dec(ecns)
            except (UnicodeDecodeError, InvalidInputError) as exc:
                # as `_tuple` reports it: a thread `list` cannot read is not copied either
                raise SerializationError(
                    f"checkpoint {copy.source!r}: an index entry names no checkpoint namespace"
                ) from exc
            what = f"checkpoint {copy.source!r}/{ecns}/{cid}"
            _parent, refs, erun = _record(record, what)
            # Bytes no put wrote are refused as `list` refuses them, not copied on into the
            # target (which could then not be read either): the body's frames and each
            # write's name and frames (the values inside them are the serializer's: copied
            # as they are, never loaded here).
            _body(body, what)
            writes = _pairs(write_flat)
            for name, value in writes.items():
                _check_write(bytes(name), value, what)
            blob_flat = [
                part
                for ref, value in zip(refs, blob_values, strict=False)
                if value
                for part in (ref, value)
            ]
            first = not copy.indexed
            if first:
                copy.indexed = True
                yield Command(_thread_entry(self.keys.threads, dst_thread))
            run = self._run_name(erun) if erun else None
            if erun and run is None:  # decoding it raised InvalidInputError: not the caller's
                raise SerializationError(
                    f"checkpoint {copy.source!r}/{ecns}/{cid}: the index record names no run"
                )
            if run is not None and erun not in copy.runs:  # once per run, not per checkpoint
                copy.runs.add(erun)
                yield from self._indexes([], [(run, [dst_thread])])
            args = [ecns, cid, self._ttl, erun, body, record]
            put = yield Script(PUT, dst.all, [*args, *blob_flat])
            # A put that created the target names it after it exists, as put does: the first
            # one, and any later one (a delete_thread of the target between two puts took its
            # name off, and the thread the next put created again was in no thread index).
            if int(put[0]):
                yield Command(_thread_entry(self.keys.threads, dst_thread))
            # The target's first checkpoint of a run: named again after it exists, as put
            # names it (a delete_for_runs between the index write above and this put saw
            # none of the run in the target, and took the name off: the copied checkpoint
            # was then in no run index, and no later delete_for_runs found it).
            if run is not None and int(put[1]):
                yield from self._indexes([], [(run, [dst_thread])])
            if writes:
                # no run: the checkpoint was put just above, with its own run's member
                triples: list[Any] = [dst.field(ecns, cid), self._ttl, ""]
                for name, value in writes.items():
                    # LangGraph's put_writes rule, as `copy_threads` and a put_writes of the
                    # same writes keep it: a write the target holds for (task, index) stays,
                    # a special one (index < 0: '<idx><TAB><task>' starts with '-') is
                    # replaced. Replacing every one overwrote the target's own writes for
                    # that task (a fork that ran on) with the source's.
                    triples += [name, value, "1" if name[:1] == b"-" else "0"]
                yield Script(PUT_WRITES, dst.all, triples)
        if not reply[0]:
            return False
        copy.bound = b"(" + bytes(reply[0])  # as stored: see `_page_op`
        return True

    # ------------------------------------------------------------------ list
    def _list_plan(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
    ) -> tuple[str | None, list[str], Callable[[CheckpointTuple], bool]]:
        """The `before` bound, server-side filter pairs and the exact Python check."""
        before_id = (get_checkpoint_id(before) if before else None) or None  # "" bounds nothing
        if before_id is not None:
            before_id = check_checkpoint_id(before_id)
        pairs: list[str] = []
        for key, value in (filter or {}).items():
            if not isinstance(key, str):
                raise InvalidInputError("filter keys must be str")
            text = canonical(value)
            if text is not None and _utf8(key) and _utf8(text):
                pairs += [key, _filter_text(text)]
            # else the exact check below decides alone (a str UTF-8 cannot hold is in no
            # stored metadata, whose serializer refuses it: it matches nothing, as in
            # InMemorySaver; sent to Redis it failed in redis-py's encoder, untyped)
        wanted = dict(filter or {})
        config_id = get_checkpoint_id(config) if config else None

        def keep(tup: CheckpointTuple) -> bool:
            if config_id and tup.config["configurable"]["checkpoint_id"] != config_id:
                return False
            # InMemorySaver's own comparison, operands in its order (``True == 1``: see
            # `canonical`, which lets those through the server's text match)
            return all(v == tup.metadata.get(k) for k, v in wanted.items())  # type: ignore[misc]

        return before_id, pairs, keep

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """List checkpoints newest first, from the thread's index (see `alist`).

        Args:
            config: The thread (and, with ``checkpoint_ns``, one namespace; with
                ``checkpoint_id``, that checkpoint). None lists every thread.
            filter: Metadata key/value pairs every result has (checked on the server).
            before: Only checkpoints older than this config's checkpoint.
            limit: At most this many (0 or less: none).

        Yields:
            Checkpoint tuples.

        Raises:
            InvalidInputError: `limit` is not an int or None.
        """
        _check_limit(limit)
        before_id, pairs, keep = self._list_plan(config, filter, before)
        left = limit
        for where in self._wheres(config):
            bounds = self._bounds(where, before_id)
            if bounds is None:
                continue
            bound: str | bytes = bounds[0]
            lo = bounds[1]
            while left is None or left > 0:
                op = self._page_op(where, bound, lo, _want(left), pairs)
                cursor, entries = self._run("list", op)
                tuples, left = self._accept(where, entries, keep, left)
                yield from tuples
                if not cursor:
                    break
                bound = b"(" + cursor

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async twin of `list` (the asyncio client; nothing blocks the loop).

        Args:
            config: The thread (see `list`).
            filter: Metadata key/value pairs every result has.
            before: Only checkpoints older than this config's checkpoint.
            limit: At most this many (0 or less: none).

        Yields:
            Checkpoint tuples.

        Raises:
            InvalidInputError: `limit` is not an int or None.
        """
        _check_limit(limit)
        before_id, pairs, keep = self._list_plan(config, filter, before)
        left = limit
        async for where in self._awheres(config):
            bounds = self._bounds(where, before_id)
            if bounds is None:
                continue
            bound: str | bytes = bounds[0]
            lo = bounds[1]
            while left is None or left > 0:
                op = self._page_op(where, bound, lo, _want(left), pairs)
                cursor, entries = await self._arun("list", op)
                tuples, left = self._accept(where, entries, keep, left)
                for tup in tuples:
                    yield tup
                if not cursor:
                    break
                bound = b"(" + cursor

    def _accept(
        self,
        where: _Where,
        entries: Sequence[Any],
        keep: Callable[[CheckpointTuple], bool],
        left: int | None,
    ) -> tuple[builtins.list[CheckpointTuple], int | None]:
        """A page's tuples that pass the exact check, within the limit; the limit left."""
        out: builtins.list[CheckpointTuple] = []
        for entry in entries:
            tup = self._tuple(where, where.thread_value, entry)
            if keep(tup) and (left is None or left > 0):
                left = None if left is None else left - 1
                out.append(tup)
        return out, left

    def _wheres(self, config: RunnableConfig | None) -> Iterator[_Where]:
        if config is not None:
            yield self._where(config)
            return
        for thread in self.threads():
            yield self._where({"configurable": {"thread_id": thread}})

    async def _awheres(self, config: RunnableConfig | None) -> AsyncIterator[_Where]:
        if config is not None:
            yield self._where(config)
            return
        after = ""
        while True:
            threads = await self._arun("threads", self._threads_op(after, 100))
            for thread in threads:
                yield self._where({"configurable": {"thread_id": thread}})
            if len(threads) < 100:
                return
            after = threads[-1]

    def threads(self) -> Iterator[str]:
        """Every thread id of the namespace, in lexicographic order (from its thread index).

        Yields:
            Thread ids (a thread whose TTL ran out is named until `sweep_threads` runs;
            `list` on it is empty).

        Raises:
            SerializationError: The index holds a member no thread can be named (bytes
                someone else wrote there); `sweep_threads` takes it off.
        """
        after = ""
        while True:
            page = self._run("threads", self._threads_op(after, 100))
            yield from page
            if len(page) < 100:
                return
            after = page[-1]

    def sweep_threads(self, *, batch: int = 100) -> int:
        """Take threads that no longer exist off the namespace's thread index.

        With a TTL a thread's keys expire on their own, but its name in the thread index
        (another slot on a Cluster) stays until this runs, so `threads()` and
        ``checkpoint copy`` still list it and the index grows with every thread id ever
        written. Safe to run at any time, from any process, while agents write: a thread
        created during the sweep keeps its name. One call per page of `batch` names.
        Keys left of a thread that has no checkpoint (the values a big put wrote around
        its script when the script never ran) go with its name. Pending writes of a thread
        that has no checkpoint (its first put has not landed yet) are not named in the
        index, so a sweep never takes them from under that put; `delete_thread`,
        `delete_for_runs` and the TTL remove them.

        Args:
            batch: Names looked at per call.

        Returns:
            How many names were taken off.

        Raises:
            InvalidInputError: `batch` is not a positive int.
        """
        _check_batch(batch)
        removed, after = 0, b""
        while True:
            page, gone = self._run("sweep_threads", self._sweep_page_op(after, batch))
            removed += gone
            if len(page) < batch:
                return removed
            after = page[-1]

    async def asweep_threads(self, *, batch: int = 100) -> int:
        """Async twin of `sweep_threads`."""
        _check_batch(batch)
        removed, after = 0, b""
        while True:
            page, gone = await self._arun("sweep_threads", self._sweep_page_op(after, batch))
            removed += gone
            if len(page) < batch:
                return removed
            after = page[-1]

    # ------------------------------------------------------------------ the protocol
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint `config` names, or the thread's newest (one script call).

        Args:
            config: ``thread_id``, optional ``checkpoint_ns`` and ``checkpoint_id``.

        Returns:
            The tuple, its pending writes in `writes_sort_key` order; None if absent.
        """
        return self._run("get", self._get_op(config))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async twin of `get_tuple`.

        Args:
            config: ``thread_id``, optional ``checkpoint_ns`` and ``checkpoint_id``.

        Returns:
            The tuple, or None.
        """
        return await self._arun("get", self._get_op(config))

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint, its new channel blobs and index entries atomically.

        Args:
            config: The thread, namespace and parent checkpoint.
            checkpoint: The checkpoint.
            metadata: Its metadata.
            new_versions: Channels whose values changed (their blobs are written).

        Returns:
            The config of the stored checkpoint.
        """
        if not self._eviction.done:
            self._eviction.check(self._connector.client())
        return self._run("put", self._put_op(config, checkpoint, metadata, new_versions))

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async twin of `put`.

        Args:
            config: The thread, namespace and parent checkpoint.
            checkpoint: The checkpoint.
            metadata: Its metadata.
            new_versions: Channels whose values changed.

        Returns:
            The config of the stored checkpoint.
        """
        if not self._eviction.done:
            await self._eviction.acheck(
                await self._connector.aclient(), gate=self._connector.async_gate()
            )
        return await self._arun("put", self._put_op(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes; a write already stored for (task, index) is kept.

        Args:
            config: The checkpoint the writes belong to.
            writes: ``(channel, value)`` pairs.
            task_id: The task.
            task_path: The task's path (orders writes, as LangGraph replays them).
        """
        self._run("put_writes", self._put_writes_op(config, writes, task_id, task_path))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async twin of `put_writes`.

        Args:
            config: The checkpoint the writes belong to.
            writes: ``(channel, value)`` pairs.
            task_id: The task.
            task_path: The task's path.
        """
        await self._arun("put_writes", self._put_writes_op(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, write and blob of a thread (bounded script calls).

        Args:
            thread_id: The thread.
        """
        self._run("delete_thread", self._delete_thread_op(thread_id))

    async def adelete_thread(self, thread_id: str) -> None:
        """Async twin of `delete_thread`.

        Args:
            thread_id: The thread.
        """
        await self._arun("delete_thread", self._delete_thread_op(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) that the given runs wrote.

        A checkpoint left whose parent is deleted is left with no parent, as `prune` leaves
        one (and LangGraph's PostgresSaver's prune; InMemorySaver has no delete_for_runs):
        a parent_config naming a deleted checkpoint reads as an empty state.

        With a TTL, a run is found for at least twice the TTL after its last write (its
        cross-thread index expires then; see `CheckpointSettings.ttl_seconds`).

        Pending writes the run stored for a checkpoint that has no record (its put never
        landed, or the checkpoint was deleted before they did) go too: `put_writes` names
        their run (``metadata.run_id`` of its config, else ``configurable.run_id``, where
        LangGraph finds a put's) in the thread and the run's index. Writes another run
        stored for an existing checkpoint (a resume) stay that checkpoint's. A thread left
        with no checkpoint leaves the thread index (`threads()`), as `delete_thread`'s does,
        and one left with nothing of another run (orphan writes of that run under a deleted
        checkpoint) leaves that run's index.

        Args:
            run_ids: LangGraph run ids (``metadata["run_id"]``).
        """
        for run_id in self._runs_plan(run_ids):
            threads, members = self._run("delete_for_runs", self._run_threads_op(run_id))
            for op in self._delete_runs_ops(run_id, threads, members):
                self._run("delete_for_runs", op)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async twin of `delete_for_runs`.

        Args:
            run_ids: LangGraph run ids.
        """
        for run_id in self._runs_plan(run_ids):
            threads, members = await self._arun("delete_for_runs", self._run_threads_op(run_id))
            for op in self._delete_runs_ops(run_id, threads, members):
                await self._arun("delete_for_runs", op)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and blob of one thread to another, bytes unchanged.

        Idempotent: copying again rewrites the same values. Oldest first, one operation
        (and deadline) per page of checkpoints, as `list` pages: a thread of any size can
        be copied, and a copy cut off part way leaves the target a consistent older state
        (every checkpoint it holds has its ancestors); copying again completes it.

        Each checkpoint is stored as `put` stores it and its pending writes as `put_writes`
        does: a write the target already holds for (task, index) is kept, a special write
        (error, interrupt...) is replaced.

        Args:
            source_thread_id: The thread to copy.
            target_thread_id: The thread to write.
        """
        copy = self._copy_plan(source_thread_id, target_thread_id)
        while self._run("copy_thread", self._copy_page_op(copy)):
            pass

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async twin of `copy_thread`.

        Args:
            source_thread_id: The thread to copy.
            target_thread_id: The thread to write.
        """
        copy = self._copy_plan(source_thread_id, target_thread_id)
        while await self._arun("copy_thread", self._copy_page_op(copy)):
            pass

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only each namespace's newest checkpoint (``keep_latest``) or delete all.

        Blobs the kept checkpoints use stay; their pending writes stay; a kept checkpoint
        whose parent is deleted is left with no parent (as PostgresSaver's). ``keep_latest``
        also deletes pending writes stored for a checkpoint that does not exist (never put,
        or deleted before they landed) when its id is below its namespace's newest
        checkpoint (one above it may be awaiting its put, which LangGraph can send after the
        step's writes: kept), with the run members that name them; a thread left with
        nothing of a run leaves that run's index (`delete_for_runs`). ``keep_latest``
        refuses threads that use a `DeltaChannel` (it rebuilds its value from the older
        checkpoints' writes, which pruning deletes), as LangGraph's PostgresSaver does: if
        any thread of the batch does, nothing is pruned.

        ``keep_latest`` works through each thread in script calls of `delete_batch`
        checkpoints (then of `delete_batch` blob fields), each atomic, so a thread of any
        length never blocks the server for long; a checkpoint written meanwhile is kept
        (it is the newest of its namespace), and one call cut off leaves a thread that
        pruning again completes.

        Args:
            thread_ids: The threads.
            strategy: ``"keep_latest"`` or ``"delete"``.

        Raises:
            NotImplementedError: ``keep_latest`` of a thread that uses a DeltaChannel (a
                thread that starts using one before its turn in the batch is refused then,
                after the threads before it; one that starts while it is pruned, at the
                first call that finds it, with the calls before it done).
        """
        # One operation per call (each with its deadline: a batch of any size is pruned).
        # keep_latest refuses threads that use a DeltaChannel (see ``delete.lua``), as
        # LangGraph's PostgresSaver does: the whole batch is checked first, then each
        # call of each thread's prune checks its own checkpoints again (one that started
        # using one meanwhile is refused then).
        threads = self._prune_plan(thread_ids, strategy)
        if strategy == "delete":
            for thread in threads:
                self._run("prune", self._delete_thread_op(thread))
            return
        delta = [t for t in threads if self._drive("prune", self._keep_latest_steps(t, check=True))]
        for thread in [] if delta else threads:
            if self._drive("prune", self._keep_latest_steps(thread, check=False)):
                delta.append(thread)
                break
        if delta:
            raise self._delta_refused(delta)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async twin of `prune`.

        Args:
            thread_ids: The threads.
            strategy: ``"keep_latest"`` or ``"delete"``.

        Raises:
            NotImplementedError: See `prune`.
        """
        threads = self._prune_plan(thread_ids, strategy)
        if strategy == "delete":
            for thread in threads:
                await self._arun("prune", self._delete_thread_op(thread))
            return
        delta = [
            t
            for t in threads
            if await self._adrive("prune", self._keep_latest_steps(t, check=True))
        ]
        for thread in [] if delta else threads:
            if await self._adrive("prune", self._keep_latest_steps(thread, check=False)):
                delta.append(thread)
                break
        if delta:
            raise self._delta_refused(delta)

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Walk the parent chain for `DeltaChannel` writes and seeds, on the server.

        The base implementation loads every ancestor with `get_tuple` (a round trip and a
        full decode each: a long conversation resumed paid one per step). Here one script
        walks up to `scan_batch` ancestors per call and returns only the requested
        channels' writes and seed blobs. Same result as the base walk (tested).

        Args:
            config: The target checkpoint (its newest when no ``checkpoint_id``).
            channels: Channel names.

        Returns:
            Per channel: its writes oldest to newest, and the seed when an ancestor holds one.
        """
        if not channels:
            return {}
        return self._run("history", self._history_op(config, channels))

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Async twin of `get_delta_channel_history`.

        Args:
            config: The target checkpoint.
            channels: Channel names.

        Returns:
            Per channel: its writes and seed.
        """
        if not channels:
            return {}
        return await self._arun("history", self._history_op(config, channels))

    def get_next_version(self, current: str | None, channel: None) -> str:
        """The next channel version: a zero-padded counter plus a random tie-breaker.

        The same form as LangGraph's own savers, so threads copied between savers compare
        versions the same way.
        """
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"
