"""What every part of `RedisBackend` shares.

The layout constants, the scripts, result helpers, and `_Layout` (namespace and keys, TTL
rules, blob refs, the driver, the core read/commit operations).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias, TypeVar, cast

from deepagents.backends.protocol import (
    FileData,
    ReadResult,
)
from deepagents.backends.utils import (
    normalize_read_bounds,
    slice_read_response,
)
from deepagents_redis.core import (
    Call,
    Command,
    DeepAgentsRedisError,
    EvictionGuard,
    Idempotent,
    InvalidInputError,
    KeySpace,
    NotFoundError,
    Operation,
    OutcomeUnknownError,
    Pipeline,
    RedisConnector,
    RedisUnavailableError,
    Script,
    SerializationError,
    Snapshot,
    arun_operation,
    deadline,
    run_operation,
)
from deepagents_redis.fs import _lua
from deepagents_redis.fs._blobs import BlobStore, LocalBlobStore
from deepagents_redis.fs._lines import (
    NON_BLANK,
    AsciiLineIndexer,
    Window,
    ascii_line_index,
    fetched_as_indexed,
    lf_lines_only,
    line_index,
    plan_window,
)
from deepagents_redis.fs._paths import (
    directory_entries,
    invalid_path_message,
    listing_path_error,
    text_error,
)

__all__ = ["FileStat", "NamespaceFactory"]


log = logging.getLogger("deepagents_redis.fs")

_KIND = "fs"
# The scripts (built in _lua from the package's lua/ files); writes, edits and deletes are
# op-id wrapped (see there).
_WRITE, _EDIT, _DELETE = _lua.WRITE, _lua.EDIT, _lua.DELETE
_PURGE, _LS, _LIST, _READ = _lua.PURGE, _lua.LS, _lua.LIST, _lua.READ
_GC_CLAIM, _GREP, _STAGE, _FENCE_SCRIPT = _lua.GC_CLAIM, _lua.GREP, _lua.STAGE, _lua.FENCE
_OP_TTL_MS = 10 * 60 * 1000  # far longer than any retry loop, short enough to stay small

# Operations that store files: the first one checks the server's eviction policy.
_WRITES = frozenset({"write", "edit", "upload"})
_PAGE = 1000  # paths per LIST page: bounds the work of one script call
# Entries per LS page (HSCAN COUNT, a hint): a directory of 1,000 files, the benchmark's,
# still comes back in one call; 50,000 took one call of 185 ms of server time before pages.
_LS_PAGE = 2000
_LS_CALLS = 100_000  # LS pages and purges one ls may take (10^8 entries)
_PURGE_BATCH = 200
_DELETE_BATCH = 200
_GREP_FILES = 1000  # candidate files one server-side grep call searches
_GREP_BYTES = 4 * 1024 * 1024  # ... and at most this much content (bounds one script's work)
# Byte comparisons a script's plain `string.find` may spend on one call (edit, grep): Lua
# compares the needle at every position where its first byte occurs, so m needle bytes over
# n content bytes cost up to n*m (content 'aaa...', needle 'aa...ab'). Measured on Redis 7.0
# here: an edit of a 250,000-byte inline file with a 125,001-byte old_string held the server
# 277 ms, a grep for it as long per file, with up to 4 MB of such files in one GREP call;
# at 2**28 (262,000 x 1,024 bytes) either took 5.7 ms. Needles under 64 bytes never reach
# it in a grep (4 MB x 64); an edit of a 256 KiB inline file keeps old_strings up to 1 KiB
# in Redis. Costlier searches run in the client (Python's str search is linear).
_SEARCH_WORK = 1 << 28
# Occurrences one EDIT script call replaces at most (each a find, a cut and a table slot,
# ~0.6 us: a replace_all of 262,000 one-byte matches held the server 148 ms); more go the
# client's way (read, replace in Python, conditional write).
_EDIT_HITS = 10_000
# Lines one GREP call may walk, a match counting 5 (the script walks every line of an inline
# file that holds the pattern, ~0.3 us each, ~1 us per match it answers): 16 inline files of
# 131,000 two-byte lines with one match each held the server 448 ms in one call, and an
# uncapped grep('') of newline files ran past the 5 s script limit (BUSY to every client).
# Now a call walks ~20 ms at most; 2 MB of 40-byte lines without matches fit in one.
_GREP_LINES = 50_000
_GREP_CHUNK_BATCH = 8  # chunks (x chunk_size bytes) held in memory per file while grepping
_TORN_RETRIES = 8  # a reader re-reads this often when a writer replaced what it was reading
# Smaller files go through deepagents' slicing. 0 since the fs performance pass: with the
# whole-window shortcut ours cuts a 4 KB read's window in ~4.5 µs against ~8.5 µs.
_FAST_SLICE_MIN = 0
# Lines are skipped by counting LFs in blocks of this many bytes (bytes.count, in C) and
# halving the block that holds the wanted line: a window far down a 50 MB file is found
# without a Python step per line, so every window takes the byte path (the memory suite's
# read of every line of 50 MB peaked 4.98x the file through deepagents' splitlines).
_LINE_BLOCK = 1 << 16
_LINE_WALK = 64  # fewer lines (or bytes) than this left: step with bytes.index
_HEADS_MAX = 1024  # namespaces whose key head is cached (see _Layout._head)
# Chunked content at least this big is staged (MULTIs of HSET + PEXPIRE into a stage key,
# one per _STAGE_BATCH bytes) and committed by the write script with RENAME: its bytes never
# pass through Lua, where each KB costs Redis ~1.2 µs (creating the Lua string; HSET only
# copies it). Staging costs one more round trip, so below ~64 KB (only with a chunk_size
# under it) the chunks ride along in the script call. Measured (Redis 7.0, 2 cores): a
# 300 KB write took 830 µs and 432 µs of server time through Lua, 601 and 62 staged; 1 MB
# 2.38 ms / 1.50 ms vs 1.20 ms / 0.12 ms; 10 MB ~12 ms of server time vs ~4.
_STAGE_MIN = 64 * 1024
_STAGE_TTL_MS = 10 * 60 * 1000  # an abandoned stage (client died before committing) expires
_STAGE_BATCH = 2 * 1024 * 1024  # bytes of chunks per staging MULTI (see _Layout._stage)
# Stage keys (and spilled blobs) of writes that failed before their commit answered (see
# `_Layout._abandon`) the backend remembers for removal; more are left to their TTL (blobs:
# to gc). Their removal, best effort, is bounded by this many seconds (and the backend's own
# deadline): the caller is already failing.
_ABANDONED_MAX = 1024
_UNSTAGE_DEADLINE = 2.0
# What a failed spilled write puts under its own op-id key before deleting its blob (see
# `_Layout._abandon_blob`): the idempotent wrapper's record format (cmsgpack of a one-element
# array), so a commit script of that op id that still reaches the server finds a "reply" and
# applies nothing. A real reply is an array (status, version, ...): never this string.
_FENCE = b"\x91\xa9ABANDONED"
# A failed spilled write's blob is removed by a later call only while its commit's op record
# may still exist (it lives `_OP_TTL_MS` from the commit; the entry is stamped before the
# commit is sent), less a margin; an older one is left to gc. The fence script also checks
# the file's metadata, which outlives the record: this is a second guard, not the first.
_BLOB_CLEANUP_MAX_AGE = _OP_TTL_MS / 1000 - 60
# The metadata fields a read needs (HMGET: no field names on the wire, no MULTI)
# "s" (the size) lets a spilled file's read check the blob it gets back (see `_content`).
_READ_FIELDS = ("v", "g", "n", "d", "e", "ca", "ma", "b", "L", "s")
_READ_FIELD_BYTES = tuple(f.encode() for f in _READ_FIELDS)  # redis-py sends bytes as they are

T = TypeVar("T")

NamespaceFactory: TypeAlias = Callable[[Any], "str | tuple[str, ...]"]
"""A callable taking the LangGraph `Runtime` (None outside a graph) returning a namespace."""


# ----------------------------------------------------------------------------- requests

# Operations are generators of core's driver requests (Script, Idempotent, Command,
# Pipeline, Snapshot, Call, Sleep), run sync or async by core's run_operation/arun_operation.
_Op: TypeAlias = Operation[T]
# A failed spilled write's blob awaiting removal: (blob ref, op-id key, meta key, blobs key)
_BlobEntry: TypeAlias = tuple[str, str, str, str]


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class FileStat:
    """What Redis knows about one file, without its content.

    Versions come from one counter per namespace, so they only grow: a file deleted and
    created again never reuses a version an old reader may still hold.
    """

    path: str
    """The file's path."""
    version: int
    """Version of the current content; pass it as `expected_version` to write safely."""
    size: int
    """Size in bytes of the stored content string (UTF-8; base64 text for binary files)."""
    encoding: str
    """`"utf-8"` or `"base64"`."""
    created_at: str
    """ISO 8601 creation time."""
    modified_at: str
    """ISO 8601 time of the last write or edit."""
    expires_at: float | None
    """Epoch seconds when the file expires, or None when it lives until deleted."""
    chunks: int
    """Number of chunks in Redis (0 when the content is stored inline or spilled)."""
    spilled: bool
    """Whether the content lives in the blob store."""
    blob_ref: str | None = None
    """The blob store reference of a spilled file's content."""


def _fields(listing: Any, count: Any) -> list[str]:
    """The `count` strings a LS or LIST script joined with NULs into `listing`.

    Raises:
        SerializationError: The listing splits into other than `count` pieces: a path, name
            or summary written by another program, or damaged, holds a NUL. Checking the
            parity of the pieces let an even number of NULs through (a path holding one came
            back as two paths).
    """
    text = _s(listing)
    parts = text.split("\0") if text else []
    if len(parts) != int(count):
        raise SerializationError(
            "a listing of the index does not split into its entries: a path or summary "
            "written by another program, or damaged, holds a NUL"
        )
    return parts


def _pairs(listing: Any, count: Any) -> Iterable[tuple[str, str]]:
    """(name, summary) pairs of a NUL-joined listing string from the LS or LIST script.

    A summary is `size|expire_at|encoding|modified_at`; it is split only where needed.

    Raises:
        SerializationError: As `_fields` (the script pairs its strings, so a listing of
            `count` pieces pairs them too).
    """
    parts = _fields(listing, count)
    return zip(parts[0::2], parts[1::2], strict=True)


def _s(value: Any) -> str:
    """`value` (bytes read from Redis, or a number) as text.

    Raises:
        SerializationError: The bytes are not UTF-8: a record another program wrote into
            our keyspace, or a damaged one (it was a bare UnicodeDecodeError).
    """
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SerializationError(
                f"a value fs read from Redis is not UTF-8 text ({_shown(value)}): written by "
                "another program, or damaged"
            ) from exc
    return str(value)


def _shown(value: Any, width: int = 60) -> str:
    shown = repr(value)
    return shown if len(shown) <= width else shown[: width - 3] + "..."


def _status(reply: Any, least: int) -> str:
    """The status word of an op-id script's reply of at least `least` items, else ''.

    A replayed op record that is not one of the script's replies (see `_unknown_reply`),
    whatever its bytes (not UTF-8 included), gives '', which no script answers.
    """
    if not isinstance(reply, list | tuple) or len(reply) < least:
        return ""
    head = reply[0]
    if isinstance(head, bytes):
        try:
            return head.decode("utf-8")
        except UnicodeDecodeError:
            return ""
    return head if isinstance(head, str) else ""


def _count(value: Any) -> int | None:
    """An integer of a script's reply, or None when it is none (a foreign op record)."""
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _blob_refs(refs: Iterable[Any], what: str) -> list[str]:
    """The blob refs a script answered (blobs to delete, best effort), as text.

    A ref that is not UTF-8 (a metadata field another program wrote, or a damaged one) is
    no blob of ours: it is left alone, with a warning, and the others are returned. The
    script has applied by then, so raising would report a change that happened as failed.
    """
    out: list[str] = []
    for ref in refs:
        try:
            out.append(_s(ref))
        except SerializationError:
            log.warning(
                "%s: a blob ref stored in Redis is not UTF-8 text (%s); left alone",
                what,
                _shown(ref),
            )
    return out


def _field_int(meta: dict[str, Any], name: str) -> int:
    """A number field of a file's metadata (0 when absent).

    Raises:
        SerializationError: It holds no number (written by another program, or damaged;
            a bare ValueError before).
    """
    value = meta.get(name) or 0
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"the metadata field {name!r} of a file holds {_shown(value)}, not a number: "
            "written by another program, or damaged"
        ) from exc


class _NotText(SerializationError):
    """The stored content of a text file is not UTF-8 (`_Layout._file_data`).

    A read answers it as deepagents' FilesystemBackend answers a file it cannot decode:
    an error result naming the file and the decode error (``__cause__``).
    """


def _b(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _meta_dict(reply: Any) -> dict[str, Any]:
    """HGETALL reply (a dict, or a flat list from a script) with str field names."""
    if not reply:
        return {}
    if isinstance(reply, dict):
        return {_s(k): v for k, v in reply.items()}
    items = list(reply)
    return {_s(items[i]): items[i + 1] for i in range(0, len(items), 2)}


def _decodes_responses(client: Any) -> bool:
    try:
        return bool(client.get_connection_kwargs().get("decode_responses"))
    except (AttributeError, TypeError):
        return False


# The endings of the two conflict errors (a write's expected version moved; an edit kept
# losing races). Matched at the end of the text: a path or an edit's old_string inside any
# other error (`File '/changed.md' not found`) made that error count as a conflict.
_CONFLICT_ENDINGS = re.compile(
    r"' changed: expected version \d+, found \d+\. Read it again and retry\.\Z"
    r"|' kept changing under concurrent edits; gave up after \d+ attempts\. "
    r"Read it again and retry\.\Z"
)


def _outcome(result: Any) -> str:
    error = getattr(result, "error", None)
    if error is None:
        return "ok"
    return "conflict" if _CONFLICT_ENDINGS.search(str(error)) else "miss"


def _unknown_reply(script: str, what: str, reply: Any) -> OutcomeUnknownError:
    """The error for an op-id script's reply that is none of the script's own.

    The idempotent wrapper replays whatever record its op-id key holds: the fence a failed
    spilled write's cleanup puts there (`_FENCE`, replayed as ``b"ABANDONED"``) or anything
    else that is not this script's reply. Read as a reply it said "conflict" (a write), "stored"
    (an upload), "fallback" (an edit, applied again under a new op id) or raised a bare
    ValueError (a delete): none of them is known, so the caller is told so.
    """
    shown = repr(reply)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return OutcomeUnknownError(
        f"{script} of {what}: its op record replayed {shown}, no reply of this script; the "
        "write may or may not have been applied"
    )


def _search_args_error(**args: str | None) -> str | None:
    """The error text for the first unusable argument of `glob`/`grep`, or None.

    Paths follow `listing_path_error`; patterns and globs need only be text a Redis
    argument can carry (no lone surrogate).
    """
    for name, value in args.items():
        if value is None and name != "pattern":
            continue
        if name == "path":
            reason = listing_path_error(value)
            if reason is not None:
                return invalid_path_message(value, reason)
            continue
        reason = text_error(value, name)
        if reason is not None:
            return f"Error: Invalid {name} {value!r}: {reason}"
    return None


def _missing(ns: str, path: str) -> DeepAgentsRedisError:
    return DeepAgentsRedisError(
        f"a chunk of {path!r} (namespace {ns!r}) is missing from Redis; "
        "was a key evicted (maxmemory-policy) or deleted by hand?"
    )


def _purge_failed(ns: str, exc: Exception) -> None:
    log.warning(
        "purging index entries of expired files of namespace %r failed (the next write "
        "retries): %s",
        ns,
        exc,
    )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def stored_form(content: str) -> bytes | str:
    """What a write hands to `_Layout._commit` for a text: its UTF-8, or the text itself.

    ASCII text is its own UTF-8 (`str.isascii()` answers at once, and such a text holds no
    surrogate that encoding would refuse), so it is passed as is and encoded where it is
    stored, chunk by chunk for a big file. Any other text is encoded here.

    Raises:
        UnicodeEncodeError: The text holds a lone surrogate.
    """
    return content if content.isascii() else content.encode("utf-8")


def _chunked(
    gen: str, data: bytes | str, cs: int, *, index: bool
) -> tuple[list[bytes] | list[memoryview], str]:
    """The chunks of a write sent with its commit, and their line index ('' = none)."""
    if isinstance(data, str):  # ASCII text (`stored_form`)
        encoded = [data[i : i + cs].encode() for i in range(0, len(data), cs)]
        return encoded, ascii_line_index(gen, encoded) if index else ""
    # Views, not copies: each is packed straight into the command buffer.
    view = memoryview(data)
    views = [view[i : i + cs] for i in range(0, len(data), cs)]
    return views, line_index(gen, data, cs) if index else ""


def _skip_lines(data: bytes, pos: int, lines: int) -> int:
    """The position just after the `lines`-th LF at or after `pos` (`pos` when 0).

    The caller knows that many LFs follow (if not, `bytes.index` raises ValueError). Whole
    blocks are skipped by their LF count; the block holding the target is halved until few
    bytes or lines are left, then walked.
    """
    size = len(data)
    while lines > 0:
        end = min(pos + _LINE_BLOCK, size)
        found = data.count(b"\n", pos, end)
        if found < lines and end < size:
            lines -= found
            pos = end
            continue
        while lines > _LINE_WALK and end - pos > _LINE_WALK:
            mid = (pos + end) // 2
            found = data.count(b"\n", pos, mid)
            if found >= lines:
                end = mid
            else:
                lines -= found
                pos = mid
        for _ in range(lines):
            pos = data.index(b"\n", pos) + 1
        return pos
    return pos


def _read_window(meta: dict[str, Any], data: bytes, offset: int, limit: int) -> ReadResult:
    """Exactly `slice_read_response(<FileData of meta and data>, offset, limit)`, cheaper.

    deepagents decodes the whole content and splits it into lines (`str.splitlines`) to
    cut a window of a few; on a 10 MB file that is most of a read. When the stored UTF-8
    only uses LF line breaks (none of the other `splitlines` breaks occurs in it), lines
    are counted with `bytes.count` and the window is cut out by byte position and decoded
    alone, which gives the same result, at any offset (`_skip_lines`). Every other case
    (blank content, zero limit, CR or other breaks) goes to deepagents' function itself.
    """
    start, count = normalize_read_bounds(offset, limit)
    if (
        len(data) < _FAST_SLICE_MIN
        or count == 0
        or NON_BLANK.search(data) is None
        or not lf_lines_only(data)
    ):
        return slice_read_response(_Layout._file_data(meta, data), offset, limit)
    total = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if start >= total:
        return ReadResult(error=f"Line offset {start} exceeds file length ({total} lines)")
    lo = _skip_lines(data, 0, start)
    end = min(start + count, total)
    # the window runs to the end (a whole file): no line walk, and data[lo:] of the whole
    # file is `data` itself (no copy): the bytes and the decoded text are all a read holds
    hi = len(data) if end == total else _skip_lines(data, lo, end - start)
    return ReadResult(
        file_data=_Layout._file_data(meta, data[lo:hi]),
        total_lines=total,
        start_line=start + 1,
        end_line=end,
        next_offset=end if end < total else None,
    )


@dataclass(frozen=True, slots=True)
class WindowRead:
    """A read served from the chunks of its window (see `_Layout._load`)."""

    result: ReadResult
    """The read's result, as `_read_window` gives it for the whole content."""
    fetched: int
    """Bytes of content fetched from Redis."""


def _cut_window(
    meta: dict[str, Any], parts: list[bytes], window: Window, start: int
) -> WindowRead | None:
    """`_read_window` of the whole content, cut from the chunks `window` names.

    Returns None when they do not hold what the index says (the whole file is read then).
    """
    data = b"".join(parts)
    if not fetched_as_indexed(parts, data, window):
        return None
    try:
        lo = _skip_lines(data, 0, window.skip)
        end, total = window.end, window.total
        hi = len(data) if end == total else _skip_lines(data, lo, end - start)
    except ValueError:  # fewer LFs than promised (not possible once the counts matched)
        return None
    return WindowRead(
        ReadResult(
            file_data=_Layout._file_data(meta, data[lo:hi]),
            total_lines=total,
            start_line=start + 1,
            end_line=end,
            next_offset=end if end < total else None,
        ),
        len(data),
    )


# ----------------------------------------------------------------------------- backend


class _Layout:
    """The plumbing and core operations every part of the backend builds on."""

    # Set by RedisBackend.__init__ (see its docstring).
    _connector: RedisConnector
    _namespace: str | NamespaceFactory
    _ks: KeySpace
    _ttl: float | None
    _ttl_rules: list[tuple[str, float | None]]
    _refresh: bool
    _chunk_size: int
    _spill: int
    _max_size: int
    _blob_store: BlobStore | None
    _blob_dir: str | None
    _edit_retries: int
    _grace_ms: int
    _deadline: float | None
    _eviction: EvictionGuard
    _heads: dict[str, str]
    _op_heads: dict[str, str]
    _blob_homes: dict[str, str]
    _write_cache: dict[tuple[str, str], tuple[tuple[bytes, ...], str, str]]
    _stale: set[str]
    _abandoned: dict[bytes | _BlobEntry, float]

    # ------------------------------------------------------------------ plumbing

    @property
    def blob_store(self) -> BlobStore:
        """The blob store spilled files go to (created on first use)."""
        if self._blob_store is None:
            root = self._blob_dir or str(Path(tempfile.gettempdir()) / "deepagents-redis-blobs")
            self._blob_store = LocalBlobStore(root)
        return self._blob_store

    def resolve_namespace(self) -> str:
        """The namespace of the current call (a factory is asked each time).

        Returns:
            The namespace string.

        Raises:
            InvalidInputError: The factory returned an empty or malformed namespace.
        """
        ns = self._namespace
        if not callable(ns):
            return ns
        from langgraph.runtime import get_runtime

        try:
            runtime: Any = get_runtime()
        except (RuntimeError, KeyError):
            runtime = None
        try:
            value = ns(runtime)
        except AttributeError as exc:
            if runtime is None:
                raise InvalidInputError(
                    "the namespace factory read the Runtime, but none is available outside "
                    "a LangGraph run; pass a factory that does not need it"
                ) from exc
            raise
        if isinstance(value, tuple):
            from deepagents.backends.store import _validate_namespace

            try:
                return "/".join(_validate_namespace(value))
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(str(exc)) from exc
        if isinstance(value, str) and value:
            # A lone surrogate (a JSON `\ud800` in a user or assistant id) has no UTF-8: its
            # keys were escaped and small files stored, but a spilled write or `gc` raised a
            # bare UnicodeEncodeError naming the blob folder (a hash of the namespace).
            if text_error(value, "namespace") is not None:
                raise InvalidInputError(
                    f"namespace factory returned {value!r}, which is not valid unicode text"
                )
            return value
        raise InvalidInputError(f"namespace factory returned {value!r}; want a str or tuple")

    def _k(self, ns: str, *rest: str) -> str:
        return self._ks.key(_KIND, ns, *rest)

    def _head(self, ns: str) -> str:
        """`_k(ns)`, the key every key of the namespace extends, built once per namespace.

        A 4 KB read or write builds up to ten keys; encoding the kind and scope again for each
        was ~6 µs of a read (profile in the fs performance pass). Heads are cached per
        namespace; a factory that yields many namespaces clears the cache now and then.
        """
        heads = self._heads
        head = heads.get(ns)
        if head is None:
            if len(heads) >= _HEADS_MAX:
                heads.clear()
            head = heads[ns] = self._ks.key(_KIND, ns)
        return head

    def _op_head(self, ns: str) -> str:
        """`KeySpace.op_key(ns, op_id)` without `op_id`: a hex op id needs no encoding."""
        heads = self._op_heads
        head = heads.get(ns)
        if head is None:
            if len(heads) >= _HEADS_MAX:
                heads.clear()
            head = heads[ns] = self._ks.op_key(ns, "x")[:-1]
        return head

    def _write_keys(self, ns: str, path: str) -> tuple[tuple[bytes, ...], str, str]:
        """The WRITE script's keys for `path`, D and the NUL-joined directory fields.

        Keys: meta, chunks, idx, files, exp, blobs, seq, then the D directory hashes, parent
        first. They are a pure function of namespace and path, kept for short paths (a 4 KB
        write spent ~4 µs encoding them; bytes also pack faster in redis-py than str).
        """
        cached = self._write_cache.get((ns, path))
        if cached is not None:
            return cached
        dirs = directory_entries(path)
        head = self._head(ns)
        enc = KeySpace.encode_component
        epath = enc(path)
        names = [f"m:{epath}", f"c:{epath}", "idx", "files", "exp", "blobs", "seq"]
        names += [f"d:{enc(d)}" for d, _ in dirs]
        keys = tuple(f"{head}:{name}".encode() for name in names)
        built = (keys, str(len(dirs)), "\0".join(field for _, field in dirs))
        if len(path) <= 512:
            if len(self._write_cache) >= _HEADS_MAX:
                self._write_cache.clear()
            self._write_cache[ns, path] = built
        return built

    def _ttl_ms(self, path: str) -> int:
        ttl = self._ttl
        for prefix, rule in self._ttl_rules:
            if path.startswith(prefix):
                ttl = rule
                break
        return 0 if ttl is None else max(1, int(ttl * 1000))

    def _blob_ref(self, home: str, path: str, gen: str) -> str:
        return f"{home}{hashlib.sha256(path.encode()).hexdigest()[:24]}/{gen}"

    def _blob_prefix(self, ns: str) -> str:
        scope = f"{self._ks.prefix}\x00{ns}".encode()
        return hashlib.sha256(scope).hexdigest()[:24] + "/"

    def _blob_home(self, ns: str) -> _Op[str]:
        """The blob-store folder of this namespace on this Redis: `<scope hash>/<id>/`.

        The id is random and kept in Redis (key `blobid`, set once, SET NX), so deployments
        that share a blob directory with the same key prefix and namespace (a second
        database or server on one machine, the default temp-dir store) never share a
        folder. `gc` takes a blob that no file of its own Redis references for an orphan:
        run on database 1, it deleted the blobs of database 0's files, which then had no
        content. Blobs written before the id existed sit directly under the scope hash;
        their files still find them, and `gc` still judges them (`_gc_may_judge`).
        """
        home = self._blob_homes.get(ns)
        if home is None:
            key = self._k(ns, "blobid")
            current = None
            for _ in range(3):  # the key gone between the two (deleted, a flush): again
                _set, current = yield Pipeline(
                    [("SET", key, secrets.token_hex(8), "NX"), ("GET", key)]
                )
                if current is not None:
                    break
            if current is None:  # never name a folder "None", shared by every such backend
                raise RedisUnavailableError(f"fs: the blob folder id {key!r} keeps vanishing")
            home = f"{self._blob_prefix(ns)}{_s(current)}/"
            if len(self._blob_homes) >= _HEADS_MAX:
                self._blob_homes.clear()
            self._blob_homes[ns] = home
        return home

    def _run(self, name: str, op: _Op[T]) -> T:
        if name in _WRITES:
            with deadline(self._deadline):
                self._eviction.check(self._connector.client())
        try:
            result = run_operation(
                self._connector, f"fs.{name}", op, deadline_seconds=self._deadline, outcome=_outcome
            )
        except Exception:
            if self._abandoned:
                self._unstage()
            raise
        if self._abandoned:  # left by a call that was interrupted (or whose removal failed)
            self._unstage()
        while self._stale:
            ns = self._next_stale()
            if ns is None:
                break
            try:
                run_operation(
                    self._connector,
                    "fs.purge",
                    self._purge_expired(ns),
                    deadline_seconds=self._deadline,
                )
            except DeepAgentsRedisError as exc:
                _purge_failed(ns, exc)
                break
        return result

    async def _arun(self, name: str, op: _Op[T]) -> T:
        if name in _WRITES:
            with deadline(self._deadline):
                await self._eviction.acheck(
                    await self._connector.aclient(), gate=self._connector.async_gate()
                )
        try:
            result = await arun_operation(
                self._connector, f"fs.{name}", op, deadline_seconds=self._deadline, outcome=_outcome
            )
        except Exception:
            if self._abandoned:
                await self._aunstage()
            raise
        if self._abandoned:  # left by a call that was cancelled (or whose removal failed)
            await self._aunstage()
        while self._stale:
            ns = self._next_stale()
            if ns is None:
                break
            try:
                await arun_operation(
                    self._connector,
                    "fs.purge",
                    self._purge_expired(ns),
                    deadline_seconds=self._deadline,
                )
            except DeepAgentsRedisError as exc:
                _purge_failed(ns, exc)
                break
        return result

    def _abandon(self, stage: bytes | _BlobEntry, since: float | None = None) -> None:
        """Remember the stage key of a write that stopped before its commit answered.

        A big write that failed part-way (a reset connection, a full server, a deadline, a
        lost stage) left its staged chunks in Redis for `_STAGE_TTL_MS` (10 minutes): an
        agent retrying a large file held every attempt's bytes that long. The stage key names
        this write's own generation, so removing it never touches a committed file (the
        commit RENAMEs the stage away) or another writer's stage. When the commit's outcome
        is unknown its script may still run; if the removal comes first the script finds no
        stage and writes nothing, which is one of the outcomes the caller was told to expect.

        `stage` may also be `(blob ref, op-id key, meta key, blobs key)`: a spilled write's
        blob (see `_abandon_blob`).
        """
        pending = self._abandoned
        if len(pending) >= _ABANDONED_MAX:
            pending.pop(next(iter(pending), b""), None)  # the oldest is left to its TTL
        pending[stage] = time.monotonic() if since is None else since

    def _abandon_blob(self, entry: _BlobEntry, sent: float) -> None:
        """Remember the blob of a spilled write that stopped before its commit answered.

        Such a blob stayed in the blob store until the next `gc()` pass (a full 10 MB+ file
        per failed attempt). Unlike a stage, the commit script cannot check that a blob
        still exists, so deleting it while the commit may still run could leave a file
        naming a deleted blob. The removal (`_unstage_op`) therefore first fences the
        write with the FENCE script: it puts `_FENCE` under the write's own op-id key, only
        if that key is empty and neither the file's metadata nor the blobs set names the
        blob. A commit that reaches Redis later finds that record and applies nothing (the
        idempotent wrapper replays it); a commit that already ran left its own record or,
        once that expired (`_OP_TTL_MS`; the removal may run much later, at the next call),
        the metadata naming its blob: the fence is not set and the blob is kept (the file's
        content). A commit whose record says CONFLICT wrote nothing and its replays write
        nothing: its blob, which nothing names, is deleted too (the script pushes the
        record's lifetime to a fence's). The blob is named by this write's
        generation: no other writer's blob is touched. `sent` is when the commit was sent
        (before its record's lifetime began); an entry older than `_BLOB_CLEANUP_MAX_AGE`
        is left to gc.
        """
        self._abandon(entry, sent)

    def _take_abandoned(self) -> list[tuple[bytes | _BlobEntry, float]]:
        pending = self._abandoned
        taken = []
        for key in list(pending):
            since = pending.pop(key, None)
            if since is not None:  # (None: another thread took it)
                taken.append((key, since))
        return taken

    def _unstage_op(self, keys: list[tuple[bytes | _BlobEntry, float]]) -> _Op[None]:
        stages = [key for key, _since in keys if isinstance(key, bytes)]
        # a blob whose commit was sent longer ago than its op record may live is left to gc
        # (see `_BLOB_CLEANUP_MAX_AGE`)
        oldest = time.monotonic() - _BLOB_CLEANUP_MAX_AGE
        blobs = [key for key, since in keys if isinstance(key, tuple) and since > oldest]
        if stages:
            # UNLINK: a 10 MB stage is freed off the main thread; one command per key (Cluster)
            yield Pipeline([("UNLINK", key) for key in stages])
        for ref, op_key, meta_key, blobs_key in blobs:
            # 1: our fence holds, or the commit's own record says CONFLICT: the commit
            # never applied and never will (see `_abandon_blob` and fence.lua); one script
            # per write: its keys share the namespace's slot
            fenced = yield Script(
                _FENCE_SCRIPT, [op_key, meta_key, blobs_key], [_FENCE, _OP_TTL_MS, ref]
            )
            if int(fenced) == 1:
                yield self._blob("delete", (ref,), best_effort=True)

    def _unstage_deadline(self) -> float:
        return min(self._deadline or _UNSTAGE_DEADLINE, _UNSTAGE_DEADLINE)

    def _unstage_failed(self, keys: list[tuple[bytes | _BlobEntry, float]], exc: Exception) -> None:
        # Kept for the next call only while the server is out of reach and the stage has
        # not expired by itself; any other failure (an ACL without UNLINK) would repeat on
        # every call, a round trip and a warning each time.
        retry = isinstance(exc, RedisUnavailableError)
        log.warning(
            "removing %d staged chunk key(s) or blob(s) of failed writes failed (%s; stages "
            "expire within %d s anyway, blobs are left for gc): %s",
            len(keys),
            "retried after the next call" if retry else "left to expire",
            _STAGE_TTL_MS // 1000,
            exc,
        )
        if retry:
            oldest = time.monotonic() - _STAGE_TTL_MS / 1000
            for key, since in keys:
                if since > oldest:
                    self._abandon(key, since)

    def _unstage(self) -> None:
        """Remove the stages and blobs of failed writes, best effort (see `_abandon`)."""
        keys = self._take_abandoned()
        if not keys:
            return
        try:
            run_operation(
                self._connector,
                "fs.unstage",
                self._unstage_op(keys),
                deadline_seconds=self._unstage_deadline(),
            )
        except DeepAgentsRedisError as exc:
            self._unstage_failed(keys, exc)

    async def _aunstage(self) -> None:
        """Async `_unstage`."""
        keys = self._take_abandoned()
        if not keys:
            return
        try:
            await arun_operation(
                self._connector,
                "fs.unstage",
                self._unstage_op(keys),
                deadline_seconds=self._unstage_deadline(),
            )
        except DeepAgentsRedisError as exc:
            self._unstage_failed(keys, exc)

    def _next_stale(self) -> str | None:
        """A namespace a write saw expired index entries in, taken off the set (or None).

        Purging is housekeeping after the call has its answer (see `_commit`): a failure is
        logged and left for the next write, whose script reports the entries again.
        """
        try:
            return self._stale.pop()
        except KeyError:  # another thread took the last one
            return None

    def _blob(self, op: str, args: tuple[Any, ...], *, best_effort: bool = False) -> Call:
        """A blob-store call as a driver request (run in a thread by the async driver)."""
        return Call(self._blob_call, (op, args, best_effort))

    def _blob_call(self, op: str, args: tuple[Any, ...], best_effort: bool) -> Any:
        try:
            result = getattr(self.blob_store, op)(*args)
            return list(result) if op == "list" else result
        except Exception as exc:
            if not best_effort:
                raise
            log.warning("blob %s of %r failed (left for gc): %s", op, args[0], exc)
            return None

    # ------------------------------------------------------------------ core ops

    def _commit(
        self,
        ns: str,
        path: str,
        data: bytes | str,
        *,
        encoding: str,
        created_at: str,
        keep_created: bool,
        modified_at: str,
        expected_version: int | None,
    ) -> _Op[tuple[str, int]]:
        """Write `data` as the new content of `path`; returns ('OK'|'CONFLICT', version).

        `data` is the content's bytes, or ASCII text (`stored_form`), whose bytes are its
        characters: a chunked write encodes it one chunk at a time instead of encoding the
        whole first. A 10 MB write made a 10 MB temporary copy, and on a process whose
        allocator had just returned such a block to the OS that copy cost ~2,500 page faults
        (~3.5 ms here, most of the write's Python time: fs performance pass, issue 13).
        """
        # One random token: its hex is the op id, its first half the content's generation.
        op_id = secrets.token_hex(16)
        gen = op_id[:16]
        size = len(data)
        cs = self._chunk_size
        index = encoding == "utf-8"  # a chunked text file's line index (see _lines.py)
        ref = ""
        n = 0  # chunks
        chunks: list[bytes] | list[memoryview] = []  # chunks sent with the commit
        stage: bytes | None = None
        inline = b""
        lines = ""
        # The header joins its fields with NUL (see write.lua). Paths cannot hold one and the
        # other fields are ours, but a stored timestamp or encoding (an edit passes them on)
        # comes from Redis: checked before anything is sent.
        if "\0" in created_at or "\0" in modified_at or "\0" in encoding:
            raise InvalidInputError(f"a field of the write of {path!r} holds a NUL character")
        if self._spill and size > self._spill:
            # the blob is put right before the commit, below
            ref = self._blob_ref((yield from self._blob_home(ns)), path, gen)
        elif size > cs:
            n = -(-size // cs)
            if size >= _STAGE_MIN:
                # Staged: the chunks go to a fresh key named by this write's generation (a
                # reader never looks there; an abandoned stage expires), and the script
                # below checks it holds them all, then RENAMEs it over the chunk hash in the
                # same atomic step that switches the metadata.
                stage = f"{self._head(ns)}:s:{KeySpace.encode_component(path)}:{gen}".encode()
                try:
                    lines = yield from self._stage(stage, gen, data, index=index)
                except BaseException:
                    # a batch failed (the driver then closes this operation) or the op was
                    # closed: the batches already sent are removed after the call (_abandon)
                    self._abandon(stage)
                    raise
            else:
                chunks, lines = _chunked(gen, data, cs, index=index)
        else:
            inline = data.encode() if isinstance(data, str) else data
        keys, dir_count, dir_fields = self._write_keys(ns, path)
        args: list[Any] = [
            "\0".join(
                (
                    path,
                    "" if expected_version is None else str(expected_version),
                    gen,
                    str(size),
                    encoding,
                    created_at,
                    "1" if keep_created else "0",
                    modified_at,
                    str(self._ttl_ms(path)),
                    str(self._grace_ms),
                    ref,
                    str(n),
                    lines,
                    dir_count,
                    dir_fields,
                )
            )
        ]
        if stage is not None:
            keys = (*keys, stage)
        elif chunks:
            args.extend(chunks)
        elif not ref:
            args.append(inline)
        op_key = self._op_head(ns) + op_id
        sent = time.monotonic()
        try:
            if ref:
                yield self._blob("put", (ref, data.encode() if isinstance(data, str) else data))
                sent = time.monotonic()  # before the commit's record can start its lifetime
            reply = yield Idempotent(_WRITE, op_key, keys, args, op_ttl_ms=_OP_TTL_MS)
        except BaseException:
            # the commit failed or its outcome is unknown: a stage it did not RENAME is
            # garbage (one it did is gone, and removing its name is a no-op); a blob is
            # deleted only once the op id is fenced (`_abandon_blob`). A put that failed
            # left no blob (puts are atomic), and deleting a missing ref is a no-op.
            if stage is not None:
                self._abandon(stage)
            if ref:
                # keys[0] and keys[5] are the meta key and the blobs set (`_write_keys`)
                self._abandon_blob((ref, op_key, _s(keys[0]), _s(keys[5])), sent)
            raise
        status = _status(reply, 2)
        version = _count(reply[1]) if status in ("OK", "CONFLICT") else None
        if status == "CONFLICT" and version is not None:
            if ref:
                yield self._blob("delete", (ref,), best_effort=True)
            return "CONFLICT", version
        if status != "OK" or version is None:
            # No reply of this script (a replayed fence, see `_unknown_reply`): the blob
            # goes the way of a failed commit's, deleted only once the fence holds, and a
            # stage is removed (harmless if the commit renamed it).
            if stage is not None:
                self._abandon(stage)
            if ref:
                self._abandon_blob((ref, op_key, _s(keys[0]), _s(keys[5])), sent)
            raise _unknown_reply("fs_write", repr(path), reply)
        for old_blob in _blob_refs(reply[2:3], f"fs_write of {path!r}"):
            if old_blob:
                yield self._blob("delete", (old_blob,), best_effort=True)
        if len(reply) > 3 and _count(reply[3]):
            # Purged after the call has its answer (`_tidy`), never inside it: a purge that
            # failed here (a timeout, a failover) raised from a write already committed, and
            # a caller retrying its conditional write was told it conflicted with itself.
            self._stale.add(ns)
        return "OK", version

    def _purge_expired(self, ns: str) -> _Op[None]:
        """Drop the index entries of up to `_PURGE_BATCH` expired files of the namespace.

        A write calls this when its script saw expired entries (write.lua's `stale`): only
        `ls` purged before, and a namespace nobody listed kept every expired path in its
        indexes for good. The entries with the lowest expiry come first (the expired ones);
        the PURGE script drops only those whose expiry has passed by the server's clock.
        """
        exp = self._k(ns, "exp")
        paths = yield Command(("ZRANGE", exp, 0, _PURGE_BATCH - 1))
        if paths:
            yield from self._purge(ns, [_s(p) for p in paths])

    def _purge(self, ns: str, paths: list[str]) -> _Op[int]:
        dir_keys: dict[str, int] = {}
        per_path = self._dir_args(ns, paths, dir_keys)
        keys = [self._k(ns, "idx"), self._k(ns, "files"), self._k(ns, "exp"), *dir_keys]
        reply = yield Script(_PURGE, keys, [str(len(paths)), *per_path])
        return int(reply)

    def _stage(self, stage: bytes, gen: str, data: bytes | str, *, index: bool) -> _Op[str]:
        """Put the chunks of a big write into its stage hash; returns their line index.

        One MULTI (HSET of a batch of chunks, PEXPIRE) per `_STAGE_BATCH` bytes. Re-sending
        a batch is harmless (same fields, same bytes). An ASCII text is encoded one batch at
        a time, so a write holds about two batches of encoded bytes, not the whole file:
        memory a process reuses from batch to batch instead of taking ~2,500 fresh pages
        for each 10 MB write (~2 ms of page faults per write on this machine whenever the
        allocator had handed its free memory back to the OS; fs performance pass, issue 13).
        """
        cs = self._chunk_size
        size = len(data)
        ttl = str(_STAGE_TTL_MS)
        per = max(1, _STAGE_BATCH // cs)
        text = data if isinstance(data, str) else None
        view = memoryview(data) if isinstance(data, bytes) else None
        indexer = AsciiLineIndexer() if index and text is not None else None
        for first in range(0, size, per * cs):
            fields: list[Any] = []
            for lo in range(first, min(first + per * cs, size), cs):
                chunk: bytes | memoryview
                if text is not None:
                    chunk = text[lo : lo + cs].encode()
                    if indexer is not None:
                        indexer.add(chunk)
                else:
                    # views of bytes, not copies: each is packed straight into the command
                    assert view is not None
                    chunk = view[lo : lo + cs]
                fields += (f"{gen}:{lo // cs}", chunk)
            cmds = [("HSET", stage, *fields), ("PEXPIRE", stage, _STAGE_TTL_MS)]
            yield Snapshot(cmds, Script(_STAGE, [stage], [ttl, *fields]))
            del fields, cmds  # this batch's bytes can go before the next is encoded
        if indexer is not None:
            return indexer.value(gen)
        return line_index(gen, data, cs) if index and isinstance(data, bytes) else ""

    def _meta(self, ns: str, path: str) -> _Op[dict[str, Any]]:
        reply = yield Command(("HGETALL", self._k(ns, "m", path)))
        return _meta_dict(reply)

    def _content(self, ns: str, path: str, meta: dict[str, Any]) -> _Op[bytes | None]:
        """Inline or spilled content `meta` describes (None: the blob is gone)."""
        ref = _s(meta.get("b") or b"")
        if ref:
            data = cast("bytes | None", (yield self._blob("get", (ref,))))
            size = _b(meta.get("s") or b"")  # bytes: isdigit() is ASCII digits only
            if data is not None and size and (not size.isdigit() or len(data) != int(size)):
                # A blob cut short (a store that lost a write, a file changed by hand) was
                # served as the file's content, with no error.
                raise SerializationError(
                    f"the content of {path!r} (namespace {ns!r}) in the blob store is "
                    f"{len(data)} bytes, not the {size[:20]!r} its write stored: the blob is "
                    "damaged (a partial write, or changed outside deepagents-redis)"
                )
            return data
        return _b(meta.get("d", b""))

    def _load(
        self, ns: str, path: str, *, refresh: bool | None = None
    ) -> _Op[tuple[dict[str, Any], bytes] | None]:
        """Metadata and content, consistent with each other; None when there is no file."""
        got = yield from self._load_lines(ns, path, refresh=refresh, lines=None)
        return cast("tuple[dict[str, Any], bytes] | None", got)  # no lines: no WindowRead

    def _load_lines(
        self,
        ns: str,
        path: str,
        *,
        refresh: bool | None = None,
        lines: tuple[int, int] | None,
    ) -> _Op[tuple[dict[str, Any], bytes] | WindowRead | None]:
        """Metadata and content, consistent with each other; None when there is no file.

        With `lines` (first line, positive count) a chunked text file with a line index
        (`_lines.py`) is read as the window only: the chunks it covers are fetched and the
        `ReadResult` is returned, as a `WindowRead`.

        First one HMGET of the metadata: inline content is part of it, so that is the
        whole read of a small file. A chunked file's chunks follow in a second HMGET of its
        generation's fields; those are written once and never change, so if all are there
        they are that generation's content, and if one is gone a writer replaced the file
        (or a chunk was lost) and the read goes on with one atomic step: a MULTI/EXEC of
        two HGETALLs (metadata, chunk hash), or the READ script when the read also restarts
        the file's lifetime (or the client cannot run a transaction). The transaction is
        cheaper for big files: the script copies every chunk into Lua and out again. A
        spilled file's blob is immutable per write: if it vanished between reading the
        metadata and fetching it, a writer replaced the file, and the read starts again.
        """
        use_refresh = self._refresh if refresh is None else refresh
        head = self._head(ns)
        epath = KeySpace.encode_component(path)
        keys = [f"{head}:m:{epath}", f"{head}:c:{epath}"]
        keys += [f"{head}:files", f"{head}:exp", f"{head}:blobs"]
        args = [path, str(self._grace_ms), "1" if use_refresh else "0"]
        last_ref = None
        for attempt in range(_TORN_RETRIES * 8):
            meta: dict[str, Any]
            reply: Any
            if attempt == 0 and use_refresh:
                # The READ script restarts the lifetime and answers the metadata only; the
                # chunks follow as below. With them in its reply, a refreshing read of a
                # 10 MB file copied 10 MB into Lua and out again inside the script, and
                # Redis served no one else meanwhile.
                refreshed = yield Script(_READ, keys, [*args, "0"])
                if not refreshed:
                    return None
                count = int(refreshed[0])
                reply = ("meta", _meta_dict(refreshed[1 : 1 + count]))
            elif attempt == 0:
                # First try: one HMGET, atomic on its own for inline and spilled content
                # (a 4 KB read spent ~30 µs on MULTI/EXEC and parsing field names). Chunks of
                # a generation are written once and never change, so fetching them next is
                # consistent as long as all are there; if a writer replaced the file in
                # between (or a chunk is lost), the MULTI snapshot below decides.
                fields = yield Command(("HMGET", keys[0], *_READ_FIELD_BYTES))
                got = zip(_READ_FIELDS, fields, strict=True)
                reply = ("meta", {f: v for f, v in got if v is not None})
            else:
                # (a refreshing read restarted the lifetime on its first try already)
                snapshot = [("HGETALL", keys[0]), ("HGETALL", keys[1])]
                reply = yield Snapshot(snapshot, Script(_READ, keys, [*args[:2], "0", "1"]))
            if reply[0] == "meta":
                meta = reply[1]
                if "n" not in meta:
                    return None
                n = _field_int(meta, "n")
                if n > 0:
                    gen = _s(meta["g"])
                    plan = None
                    if lines is not None and meta.get("e", b"utf-8") in (b"utf-8", "utf-8"):
                        start = lines[0]
                        plan = plan_window(meta.get("L"), gen, n, start, lines[1])
                    if plan is not None:
                        fields = [f"{gen}:{i}" for i in range(plan.first, plan.last + 1)]
                        parts = yield Command(("HMGET", keys[1], *fields))
                        if not all(c is not None for c in parts):
                            continue
                        cut = _cut_window(meta, [_b(c) for c in parts], plan, start)
                        if cut is not None:
                            return cut
                        # an index that does not describe the chunks: read the whole file
                    fields = [f"{gen}:{i}" for i in range(n)]
                    parts = yield Command(("HMGET", keys[1], *fields))
                    if all(c is not None for c in parts):
                        return meta, b"".join(map(_b, parts))
                    continue
            elif reply[0] == "multi":
                meta = _meta_dict(reply[1][0])
                if "n" not in meta:
                    return None
                n = _field_int(meta, "n")
                if n > 0:
                    # the chunk hash holds the current generation's fields (a write removes
                    # the previous ones); fields of any other generation are ignored
                    held = _meta_dict(reply[1][1])
                    gen = _s(meta["g"])
                    parts = [held.get(f"{gen}:{i}") for i in range(n)]
                    if any(c is None for c in parts):
                        raise _missing(ns, path)
                    return meta, b"".join(map(_b, parts))
            else:
                lua = reply[1]
                if not lua:
                    return None
                count = int(lua[0])
                if count < 0:
                    raise _missing(ns, path)
                meta = _meta_dict(lua[1 : 1 + count])
                if _field_int(meta, "n") > 0:
                    return meta, b"".join(_b(c) for c in lua[1 + count :])
            data = yield from self._content(ns, path, meta)
            if data is not None:
                return meta, data
            ref = meta.get("b")
            if ref == last_ref:
                raise NotFoundError(
                    f"the content of {path!r} (namespace {ns!r}) is missing: its blob store "
                    "does not hold it (is every worker configured with the same blob store?)"
                )
            last_ref = ref
        raise DeepAgentsRedisError(f"{path!r} kept changing while being read")

    @staticmethod
    def _file_data(meta: dict[str, Any], data: bytes) -> FileData:
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _NotText(f"stored content is not UTF-8 text: {exc}") from exc
        fd = FileData(content=content, encoding=_s(meta.get("e", b"utf-8")))
        if meta.get("ca") is not None:
            fd["created_at"] = _s(meta["ca"])
        if meta.get("ma") is not None:
            fd["modified_at"] = _s(meta["ma"])
        return fd

    def _size_error(self, size: int, path: str) -> str | None:
        if size > self._max_size:
            return (
                f"Error: File '{path}' is {size} bytes, over the maximum file size of "
                f"{self._max_size} bytes; nothing was written."
            )
        return None

    def _dir_args(self, ns: str, paths: Iterable[str], dir_keys: dict[str, int]) -> list[str]:
        args: list[str] = []
        for path in paths:
            dirs = directory_entries(path)
            args += [path, str(len(dirs))]
            for d, field in dirs:
                key = self._k(ns, "d", d)
                if key not in dir_keys:
                    dir_keys[key] = len(dir_keys) + 1
                args += [str(dir_keys[key]), field]
        return args

    def _list_page(
        self, ns: str, exact: str, prefix: str, cursor: str, *, paths_only: bool = False
    ) -> _Op[tuple[bool, str, dict[str, str]]]:
        reply = yield Script(
            _LIST,
            [self._k(ns, "idx"), self._k(ns, "files")],
            [exact, prefix, cursor, str(_PAGE), "1" if paths_only else "0"],
        )
        is_exact = bool(int(reply[0]))
        if paths_only and not is_exact:
            return False, _s(reply[1]), dict.fromkeys(_fields(reply[2], reply[3]), "")
        return is_exact, _s(reply[1]), dict(_pairs(reply[2], reply[3]))
