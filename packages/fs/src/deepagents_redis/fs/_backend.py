"""`RedisBackend`: deepagents' `BackendProtocol` on Redis.

Each operation is written once, as a generator that yields I/O requests (a script call, a
command, a pipeline, a blob-store call, a pause) and receives their replies. A sync driver
runs it on the sync client and an async driver awaits the asyncio client, so the async
methods are real asyncio code paths with exactly the semantics of the sync ones.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import logging
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias, TypeVar, cast

from deepagents.backends.protocol import (
    BackendProtocol,
    DeleteResult,
    EditResult,
    FileData,
    FileDownloadResponse,
    FileInfo,
    FileUploadResponse,
    GlobResult,
    GrepMatch,
    GrepResult,
    LsResult,
    ReadResult,
    WriteResult,
)
from deepagents.backends.utils import (
    InvalidGlobPatternError,
    _get_backend_read_file_type,
    _glob_search_files,
    _normalize_path,
    _relative_to_root,
    compile_grep_include_glob,
    normalize_read_bounds,
    perform_string_replacement,
    slice_read_response,
)
from deepagents_redis.core import (
    Call,
    Command,
    ConfigurationError,
    DeepAgentsRedisError,
    Idempotent,
    IdempotentScript,
    InvalidInputError,
    KeySpace,
    LuaScript,
    NotFoundError,
    Operation,
    Pipeline,
    RedisComponent,
    RedisConnector,
    RedisSettings,
    Script,
    Sleep,
    Snapshot,
    arun_operation,
    get_instrumentation,
    jittered_backoff,
    new_op_id,
    run_operation,
)
from deepagents_redis.fs import _lua
from deepagents_redis.fs._blobs import BlobStore, LocalBlobStore
from deepagents_redis.fs._paths import (
    directory_entries,
    file_path_error,
    invalid_path_message,
    listing_dir,
    listing_path_error,
    text_error,
)
from deepagents_redis.fs._settings import MIB, FsSettings

__all__ = [
    "FileStat",
    "NamespaceFactory",
    "RedisBackend",
]


log = logging.getLogger("deepagents_redis.fs")

_KIND = "fs"
# Writes go through core's op-id wrapper: a write whose reply was lost (timeout) is retried
# with the same op id and applied once, so an edit is never applied twice and a conditional
# write never reports a conflict with itself.
_WRITE = IdempotentScript("fs_write", _lua.WRITE)
_EDIT = IdempotentScript("fs_edit", _lua.EDIT)
_OP_TTL_MS = 10 * 60 * 1000  # far longer than any retry loop, short enough to stay small
# Deletes too (issue 8 defect 3): a delete re-sent after a lost reply, once another worker
# had written the same path, deleted that new file; now the retry replays the first reply.
_DELETE = IdempotentScript("fs_delete", _lua.DELETE)
_PURGE = LuaScript("fs_purge", _lua.PURGE)
_LS = LuaScript("fs_ls", _lua.LS)
_LIST = LuaScript("fs_list", _lua.LIST)
_READ = LuaScript("fs_read", _lua.READ)
_GC_CLAIM = LuaScript("fs_gc_claim", _lua.GC_CLAIM)
_GREP = LuaScript("fs_grep", _lua.GREP)

_PAGE = 1000  # paths per LIST page: bounds the work of one script call
_PURGE_BATCH = 200
_DELETE_BATCH = 200
_GREP_FILES = 1000  # candidate files one server-side grep call searches
_GREP_BYTES = 4 * 1024 * 1024  # ... and at most this much content (bounds one script's work)
_GREP_CHUNK_BATCH = 8  # chunks (x chunk_size bytes) held in memory per file while grepping
_TORN_RETRIES = 8  # a reader re-reads this often when a writer replaced what it was reading
# UTF-8 of the line breaks `str.splitlines` knows besides LF (CR, VT, FF, FS, GS, RS, NEL,
# U+2028, U+2029): text without them has LF-separated lines
_ASCII_BREAKS = (b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")
_OTHER_BREAKS = (*_ASCII_BREAKS, b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")
_NON_BLANK = re.compile(rb"[\x21-\x7e]")  # printable ASCII: never whitespace
_FAST_SLICE_MIN = 64 * 1024  # smaller files: deepagents' slicing is as cheap as ours
_FAST_SLICE_LINES = 50_000  # windows ending further down go through deepagents' slicing

T = TypeVar("T")

NamespaceFactory: TypeAlias = Callable[[Any], "str | tuple[str, ...]"]
"""A callable taking the LangGraph `Runtime` (None outside a graph) returning a namespace."""


# ----------------------------------------------------------------------------- requests

# Operations are generators of core's driver requests (Script, Idempotent, Command,
# Pipeline, Snapshot, Call, Sleep), run sync or async by core's run_operation/arun_operation.
_Op: TypeAlias = Operation[T]


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


def _pairs(listing: Any) -> Iterable[tuple[str, str]]:
    """(name, summary) pairs of a NUL-joined listing string from the LS or LIST script.

    A summary is `size|expire_at|encoding|modified_at`; it is split only where needed.
    """
    text = _s(listing)
    if not text:
        return ()
    parts = text.split("\0")
    return zip(parts[0::2], parts[1::2], strict=True)


def _s(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


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


def _outcome(result: Any) -> str:
    error = getattr(result, "error", None)
    if error is None:
        return "ok"
    return "conflict" if "changed" in str(error) or "kept changing" in str(error) else "miss"


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


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _read_window(meta: dict[str, Any], data: bytes, offset: int, limit: int) -> ReadResult:
    """Exactly `slice_read_response(<FileData of meta and data>, offset, limit)`, cheaper.

    deepagents decodes the whole content and splits it into lines (`str.splitlines`) to
    cut a window of a few; on a 10 MB file that is most of a read. When the stored UTF-8
    only uses LF line breaks (none of the other `splitlines` breaks occurs in it), lines
    are counted with `bytes.count` and the window is cut out by byte position and decoded
    alone, which gives the same result. Every other case (small or blank content, zero
    limit, far offsets, CR or other breaks) goes to deepagents' function itself.
    """
    start, count = normalize_read_bounds(offset, limit)
    if (
        len(data) < _FAST_SLICE_MIN
        or count == 0
        or start + count > _FAST_SLICE_LINES
        or _NON_BLANK.search(data) is None
        # (searching for a 2-3 byte sequence is slow: skip that when the text is ASCII)
        or any(br in data for br in (_ASCII_BREAKS if data.isascii() else _OTHER_BREAKS))
    ):
        return slice_read_response(RedisBackend._file_data(meta, data), offset, limit)
    total = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if start >= total:
        return ReadResult(error=f"Line offset {start} exceeds file length ({total} lines)")
    lo = 0
    for _ in range(start):
        lo = data.index(b"\n", lo) + 1
    end = min(start + count, total)
    hi = lo
    for _ in range(end - start):
        nl = data.find(b"\n", hi)
        if nl < 0:
            hi = len(data)
            break
        hi = nl + 1
    return ReadResult(
        file_data=RedisBackend._file_data(meta, data[lo:hi]),
        total_lines=total,
        start_line=start + 1,
        end_line=end,
        next_offset=end if end < total else None,
    )


# ----------------------------------------------------------------------------- backend


class RedisBackend(RedisComponent, BackendProtocol):
    """A deepagents filesystem backend on Redis, shared by every worker.

    Semantics match deepagents' `StoreBackend` (same results, error strings, pagination,
    glob and grep rules, base64 for binary files) and add: a per-namespace path index
    and per-directory indexes (`ls`, `glob`, `delete` never read contents), chunking,
    atomic writes, edits that never lose a concurrent update, TTLs with per-prefix
    rules, spillover of large files to a blob store, and a hard size limit.

    Every option is keyword-only. Give a shared `connector` (yours to close), or a ready
    `client` and/or `async_client`, or a `url`/`settings` (the backend then owns and
    closes the clients it creates: `close()`/`aclose()`, `with`, `async with`).

    Args:
        namespace: A namespace string, or a callable receiving the LangGraph `Runtime`
            (None outside a graph) and returning a string or a tuple of strings (tuples
            are checked like `StoreBackend` namespaces and joined with `/`).
            Namespaces are exact: `"a"` never sees files of `"a/b"` or `"ab"`.
        connector: A shared `RedisConnector` (excludes `url`/`settings`/`client`/
            `async_client`).
        url: Redis URL.
        settings: Redis connection settings (`deepagents_redis.core.RedisSettings`).
        client: A ready sync client (redis-py, `decode_responses=False`).
        async_client: A ready asyncio client (`decode_responses=False`).
        ttl: Default lifetime of a file in seconds (None: forever). Each write restarts it.
        ttl_rules: Lifetimes per path prefix, e.g. `{"/large_tool_results/": 3600}`;
            the longest matching prefix wins; None in a rule means forever.
        refresh_ttl_on_read: Whether a read restarts a file's lifetime.
        chunk_size: Content above this many bytes is stored in chunks of this size.
        spill_threshold: Content above this many bytes goes to `blob_store`; 0: never.
        max_file_size: Larger writes are refused with an error; nothing is written.
        blob_store: Where spilled content goes (default: `LocalBlobStore(blob_dir)`).
        blob_dir: Directory of the default local blob store.
        edit_retries: Attempts of an edit that keeps losing version races.
        chunk_grace: Seconds chunks (and blobs) outlive an expired file, so a reader
            that already holds the metadata can finish.
        deadline_seconds: Most seconds one call may take on clients our factory built,
            retries, reconnects and health checks included (None: only the socket
            timeouts bound it). Longer than the other phases' because a call may move a
            file of up to `max_file_size` bytes.
    """

    def __init__(
        self,
        *,
        namespace: str | NamespaceFactory = "default",
        connector: RedisConnector | None = None,
        url: str | None = None,
        settings: RedisSettings | None = None,
        client: Any = None,
        async_client: Any = None,
        ttl: float | None = None,
        ttl_rules: Mapping[str, float | None] | None = None,
        refresh_ttl_on_read: bool = False,
        chunk_size: int = 256 * 1024,
        spill_threshold: int = 32 * MIB,
        max_file_size: int = 256 * MIB,
        blob_store: BlobStore | None = None,
        blob_dir: str | None = None,
        edit_retries: int = 64,
        chunk_grace: float = 60.0,
        deadline_seconds: float | None = 30.0,
    ) -> None:
        if not callable(namespace) and (not isinstance(namespace, str) or not namespace):
            raise InvalidInputError("namespace must be a non-empty string or a callable")
        if chunk_size < 1024:
            raise InvalidInputError("chunk_size must be at least 1024 bytes")
        if ttl is not None and ttl <= 0:
            raise InvalidInputError("ttl must be positive (or None for no expiry)")
        for given in (client, async_client):
            if given is not None and _decodes_responses(given):
                # content is stored as raw UTF-8 chunks cut at byte boundaries; a client that
                # decodes replies would fail on a chunk that ends inside a character
                raise ConfigurationError(
                    "RedisBackend needs clients with decode_responses=False "
                    "(core's create_client / create_async_client make them)"
                )
        self._namespace = namespace
        self._attach(
            connector=connector,
            url=url,
            settings=settings,
            client=client,
            async_client=async_client,
        )
        self._ks: KeySpace = self._connector.keyspace
        self._ttl = ttl
        self._ttl_rules = sorted(
            ((str(p), t) for p, t in (ttl_rules or {}).items()), key=lambda r: -len(r[0])
        )
        self._refresh = refresh_ttl_on_read
        self._chunk_size = chunk_size
        self._spill = spill_threshold
        self._max_size = max_file_size
        self._blob_store = blob_store
        self._blob_dir = blob_dir
        self._edit_retries = edit_retries
        self._grace_ms = int(chunk_grace * 1000)
        if deadline_seconds is not None and deadline_seconds <= 0:
            raise InvalidInputError("deadline_seconds must be positive (or None)")
        self._deadline = deadline_seconds

    @classmethod
    def from_settings(
        cls,
        fs_settings: FsSettings | None = None,
        *,
        namespace: str | NamespaceFactory | None = None,
        **kwargs: Any,
    ) -> RedisBackend:
        """Build a backend from `FsSettings` (environment `DEEPAGENTS_REDIS_FS_*`).

        Args:
            fs_settings: The fs settings (read from the environment when omitted).
            namespace: Overrides `fs_settings.namespace`.
            **kwargs: Connection options (`url`, `settings`, `client`, `async_client`)
                and any other constructor option, which win over the settings.

        Returns:
            The backend.
        """
        s = fs_settings or FsSettings()
        opts: dict[str, Any] = {
            "namespace": namespace if namespace is not None else s.namespace,
            "ttl": s.ttl_seconds,
            "ttl_rules": s.ttl_rules,
            "refresh_ttl_on_read": s.refresh_ttl_on_read,
            "chunk_size": s.chunk_size,
            "spill_threshold": s.spill_threshold,
            "max_file_size": s.max_file_size,
            "blob_dir": s.blob_dir,
            "edit_retries": s.edit_retries,
            "deadline_seconds": s.deadline_seconds,
        }
        opts.update(kwargs)
        return cls(**opts)

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
            return value
        raise InvalidInputError(f"namespace factory returned {value!r}; want a str or tuple")

    def _k(self, ns: str, *rest: str) -> str:
        return self._ks.key(_KIND, ns, *rest)

    def _ttl_ms(self, path: str) -> int:
        ttl = self._ttl
        for prefix, rule in self._ttl_rules:
            if path.startswith(prefix):
                ttl = rule
                break
        return 0 if ttl is None else max(1, int(ttl * 1000))

    def _blob_ref(self, ns: str, path: str, gen: str) -> str:
        return f"{self._blob_prefix(ns)}{hashlib.sha256(path.encode()).hexdigest()[:24]}/{gen}"

    def _blob_prefix(self, ns: str) -> str:
        scope = f"{self._ks.prefix}\x00{ns}".encode()
        return hashlib.sha256(scope).hexdigest()[:24] + "/"

    def _run(self, name: str, op: _Op[T]) -> T:
        return run_operation(
            self._connector, f"fs.{name}", op, deadline_seconds=self._deadline, outcome=_outcome
        )

    async def _arun(self, name: str, op: _Op[T]) -> T:
        return await arun_operation(
            self._connector, f"fs.{name}", op, deadline_seconds=self._deadline, outcome=_outcome
        )

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
        data: bytes,
        *,
        encoding: str,
        created_at: str,
        keep_created: bool,
        modified_at: str,
        expected_version: int | None,
    ) -> _Op[tuple[str, int]]:
        """Write `data` as the new content of `path`; returns ('OK'|'CONFLICT', version)."""
        gen = secrets.token_hex(8)
        size = len(data)
        ref = ""
        chunks: list[bytes] = []
        inline = b""
        if self._spill and size > self._spill:
            ref = self._blob_ref(ns, path, gen)
            yield self._blob("put", (ref, data))
        elif size > self._chunk_size:
            cs = self._chunk_size
            chunks = [data[i : i + cs] for i in range(0, size, cs)]
        else:
            inline = data
        dirs = directory_entries(path)
        keys = [
            self._k(ns, "m", path),
            self._k(ns, "c", path),
            self._k(ns, "idx"),
            self._k(ns, "files"),
            self._k(ns, "exp"),
            self._k(ns, "blobs"),
            self._k(ns, "seq"),
        ] + [self._k(ns, "d", d) for d, _ in dirs]
        args: list[Any] = [
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
            str(len(dirs)),
            *[field for _, field in dirs],
            str(len(chunks)),
        ]
        args.extend(chunks if chunks else ([] if ref else [inline]))
        op_key = self._ks.op_key(ns, new_op_id())
        reply = yield Idempotent(_WRITE, op_key, keys, args, op_ttl_ms=_OP_TTL_MS)
        status = _s(reply[0])
        if status != "OK":
            if ref:
                yield self._blob("delete", (ref,), best_effort=True)
            return "CONFLICT", int(reply[1])
        old_blob = _s(reply[2]) if len(reply) > 2 else ""
        if old_blob:
            yield self._blob("delete", (old_blob,), best_effort=True)
        return "OK", int(reply[1])

    def _meta(self, ns: str, path: str) -> _Op[dict[str, Any]]:
        reply = yield Command(("HGETALL", self._k(ns, "m", path)))
        return _meta_dict(reply)

    def _content(self, ns: str, path: str, meta: dict[str, Any]) -> _Op[bytes | None]:
        """Inline or spilled content `meta` describes (None: the blob is gone)."""
        ref = _s(meta.get("b") or b"")
        if ref:
            data = yield self._blob("get", (ref,))
            return cast("bytes | None", data)
        return _b(meta.get("d", b""))

    def _load(
        self, ns: str, path: str, *, refresh: bool | None = None
    ) -> _Op[tuple[dict[str, Any], bytes] | None]:
        """Metadata and content, consistent with each other; None when there is no file.

        Inline and chunked content come back in one atomic step: a MULTI/EXEC of two
        HGETALLs (metadata, chunk hash), or the READ script when the read also restarts
        the file's lifetime (or the client cannot run a transaction). The transaction is
        cheaper for big files: the script copies every chunk into Lua and out again. A
        spilled file's blob is immutable per write: if it vanished between reading the
        metadata and fetching it, a writer replaced the file, and the read starts again.
        """
        use_refresh = self._refresh if refresh is None else refresh
        keys = [
            self._k(ns, "m", path),
            self._k(ns, "c", path),
            self._k(ns, "files"),
            self._k(ns, "exp"),
            self._k(ns, "blobs"),
        ]
        args = [path, str(self._grace_ms), "1" if use_refresh else "0"]
        missing = DeepAgentsRedisError(
            f"a chunk of {path!r} (namespace {ns!r}) is missing from Redis; "
            "was a key evicted (maxmemory-policy) or deleted by hand?"
        )
        last_ref = None
        for _ in range(_TORN_RETRIES * 8):
            if use_refresh:
                reply: Any = ("lua", (yield Script(_READ, keys, args)))
            else:
                snapshot = [("HGETALL", keys[0]), ("HGETALL", keys[1])]
                reply = yield Snapshot(snapshot, Script(_READ, keys, args))
            if reply[0] == "multi":
                meta = _meta_dict(reply[1][0])
                if "n" not in meta:
                    return None
                n = int(meta.get("n") or 0)
                if n > 0:
                    # the chunk hash holds the current generation's fields (a write removes
                    # the previous ones); fields of any other generation are ignored
                    held = _meta_dict(reply[1][1])
                    gen = _s(meta["g"])
                    parts = [held.get(f"{gen}:{i}") for i in range(n)]
                    if any(c is None for c in parts):
                        raise missing
                    return meta, b"".join(map(_b, parts))
            else:
                lua = reply[1]
                if not lua:
                    return None
                count = int(lua[0])
                if count < 0:
                    raise missing
                meta = _meta_dict(lua[1 : 1 + count])
                if int(meta.get("n") or 0) > 0:
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
        fd = FileData(content=data.decode("utf-8"), encoding=_s(meta.get("e", b"utf-8")))
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

    # ------------------------------------------------------------------ read

    def _read_op(self, file_path: str, offset: int, limit: int) -> _Op[ReadResult]:
        reason = file_path_error(file_path)
        if reason is not None:
            return ReadResult(error=invalid_path_message(file_path, reason))
        ns = self.resolve_namespace()
        got = yield from self._load(ns, file_path)
        if got is None:
            return ReadResult(error=f"File '{file_path}' not found")
        if _get_backend_read_file_type(file_path) != "text":
            return ReadResult(file_data=self._file_data(*got))
        return _read_window(*got, offset, limit)

    def read(self, file_path: str, offset: int = 0, limit: int = 2000) -> ReadResult:
        """Read a window of lines of a file (binary types whole, as base64).

        Args:
            file_path: Absolute path of the file.
            offset: 0-indexed first line.
            limit: Maximum number of lines.

        Returns:
            The raw window and its pagination fields, or an error.
        """
        return self._run("read", self._read_op(file_path, offset, limit))

    async def aread(self, file_path: str, offset: int = 0, limit: int = 2000) -> ReadResult:
        """Async `read`."""
        return await self._arun("read", self._read_op(file_path, offset, limit))

    # ------------------------------------------------------------------ write

    def _write_op(
        self, file_path: str, content: str, expected_version: int | None
    ) -> _Op[WriteResult]:
        reason = file_path_error(file_path)
        if reason is not None:
            return WriteResult(error=invalid_path_message(file_path, reason))
        if not isinstance(content, str):
            return WriteResult(error=f"Error: content must be a string, got {type(content)}")
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError:
            return WriteResult(error="Error: content is not valid unicode text")
        too_big = self._size_error(len(data), file_path)
        if too_big:
            return WriteResult(error=too_big)
        ns = self.resolve_namespace()
        now = _now_iso()
        status, version = yield from self._commit(
            ns,
            file_path,
            data,
            encoding="utf-8",
            created_at=now,
            keep_created=True,
            modified_at=now,
            expected_version=expected_version,
        )
        if status != "OK":
            return WriteResult(
                error=f"Error: File '{file_path}' changed: expected version "
                f"{expected_version}, found {version}. Read it again and retry."
            )
        return WriteResult(path=file_path)

    def write(
        self, file_path: str, content: str, *, expected_version: int | None = None
    ) -> WriteResult:
        """Create or overwrite a file.

        Args:
            file_path: Absolute path of the file.
            content: The new text content.
            expected_version: When given, write only if the file is at this version
                (0: only if it does not exist); otherwise an error result.

        Returns:
            The written path, or an error.
        """
        return self._run("write", self._write_op(file_path, content, expected_version))

    async def awrite(
        self, file_path: str, content: str, *, expected_version: int | None = None
    ) -> WriteResult:
        """Async `write`."""
        return await self._arun("write", self._write_op(file_path, content, expected_version))

    # ------------------------------------------------------------------ edit

    def _edit_op(
        self, file_path: str, old_string: str, new_string: str, replace_all: bool
    ) -> _Op[EditResult]:
        reason = file_path_error(file_path)
        if reason is not None:
            return EditResult(error=invalid_path_message(file_path, reason))
        ns = self.resolve_namespace()
        inst = get_instrumentation()
        try:
            old_bytes = old_string.encode("utf-8")
            new_bytes = new_string.encode("utf-8")
        except (AttributeError, UnicodeEncodeError):
            old_bytes = new_bytes = b""
        if old_bytes:
            # one round trip, no race: the common edit of a small file runs in Redis
            reply = yield Idempotent(
                _EDIT,
                self._ks.op_key(ns, new_op_id()),
                [
                    self._k(ns, "m", file_path),
                    self._k(ns, "files"),
                    self._k(ns, "exp"),
                    self._k(ns, "seq"),
                ],
                [
                    file_path,
                    old_bytes,
                    new_bytes,
                    "1" if replace_all else "0",
                    _now_iso(),
                    str(self._ttl_ms(file_path)),
                    str(self._max_size),
                    str(self._chunk_size),
                ],
                op_ttl_ms=_OP_TTL_MS,
            )
            status = _s(reply[0])
            if status == "OK":
                return EditResult(path=file_path, occurrences=int(reply[2]))
            if status == "NOTFOUND":
                return EditResult(error=f"Error: File '{file_path}' not found")
            if status == "BINARY":
                return EditResult(error="Error: Cannot edit binary files with text replacements.")
        for attempt in range(self._edit_retries):
            got = yield from self._load(ns, file_path, refresh=False)
            if got is None:
                return EditResult(error=f"Error: File '{file_path}' not found")
            meta, data = got
            if _s(meta.get("e", b"utf-8")) == "base64":
                return EditResult(error="Error: Cannot edit binary files with text replacements.")
            result = perform_string_replacement(
                data.decode("utf-8"), old_string, new_string, replace_all
            )
            if isinstance(result, str):
                return EditResult(error=result)
            new_content, occurrences = result
            try:
                new_data = new_content.encode("utf-8")
            except UnicodeEncodeError:
                return EditResult(error="Error: new_string is not valid unicode text")
            too_big = self._size_error(len(new_data), file_path)
            if too_big:
                return EditResult(error=too_big)
            status, _version = yield from self._commit(
                ns,
                file_path,
                new_data,
                encoding=_s(meta.get("e", b"utf-8")),
                created_at=_s(meta.get("ca") or _now_iso()),
                keep_created=True,
                modified_at=_now_iso(),
                expected_version=int(meta["v"]),
            )
            if status == "OK":
                return EditResult(path=file_path, occurrences=int(occurrences))
            inst.count("fs.edit.conflict")
            # jittered backoff: concurrent editors of one file spread out instead of
            # colliding again on the next round trip
            yield Sleep(jittered_backoff(attempt + 1, 0.0002, 0.01))
        return EditResult(
            error=f"Error: File '{file_path}' kept changing under concurrent edits; gave up "
            f"after {self._edit_retries} attempts. Read it again and retry."
        )

    def edit(
        self,
        file_path: str,
        old_string: str,
        new_string: str,
        replace_all: bool = False,
    ) -> EditResult:
        """Replace text in a file; never loses a concurrent update (re-applies on conflict).

        Args:
            file_path: Absolute path of the file.
            old_string: Exact text to replace.
            new_string: Replacement text.
            replace_all: Replace every occurrence instead of requiring a unique one.

        Returns:
            The path and the number of replacements, or an error.
        """
        return self._run("edit", self._edit_op(file_path, old_string, new_string, replace_all))

    async def aedit(
        self,
        file_path: str,
        old_string: str,
        new_string: str,
        replace_all: bool = False,
    ) -> EditResult:
        """Async `edit`."""
        return await self._arun(
            "edit", self._edit_op(file_path, old_string, new_string, replace_all)
        )

    # ------------------------------------------------------------------ delete

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

    def _delete_batch(self, ns: str, paths: list[str], probe: str) -> _Op[tuple[int, bool]]:
        dir_keys: dict[str, int] = {}
        per_path = self._dir_args(ns, paths, dir_keys)
        keys = [self._k(ns, "idx"), self._k(ns, "files"), self._k(ns, "exp"), self._k(ns, "blobs")]
        for path in paths:
            keys += [self._k(ns, "m", path), self._k(ns, "c", path)]
        keys += list(dir_keys)
        # One op id per batch, reused by the driver's retries of that batch only.
        op_key = self._ks.op_key(ns, new_op_id())
        reply = yield Idempotent(
            _DELETE, op_key, keys, [str(len(paths)), probe, *per_path], op_ttl_ms=_OP_TTL_MS
        )
        for ref in reply[2:]:
            yield self._blob("delete", (_s(ref),), best_effort=True)
        return int(reply[0]), bool(int(reply[1]))

    def _delete_op(self, file_path: str) -> _Op[DeleteResult]:
        reason = listing_path_error(file_path)
        if reason is not None:
            return DeleteResult(error=invalid_path_message(file_path, reason))
        ns = self.resolve_namespace()
        base = file_path.rstrip("/")
        prefix = base + "/"
        live = 0
        children = True
        if file_path_error(base) is None:
            live, children = yield from self._delete_batch(ns, [base], prefix)
        if children:
            cursor = ""
            while True:
                _exact, cursor, entries = yield from self._list_page(ns, "", prefix, cursor)
                paths = list(entries)
                for i in range(0, len(paths), _DELETE_BATCH):
                    n, _ = yield from self._delete_batch(ns, paths[i : i + _DELETE_BATCH], "")
                    live += n
                if not cursor:
                    break
        if live == 0:
            return DeleteResult(error=f"Error: File '{file_path}' not found")
        return DeleteResult(path=file_path)

    def delete(self, file_path: str) -> DeleteResult:
        """Delete a file, or recursively everything under a directory path.

        Args:
            file_path: Absolute path of a file or directory.

        Returns:
            The path, or an error when nothing exists at or under it.
        """
        return self._run("delete", self._delete_op(file_path))

    async def adelete(self, file_path: str) -> DeleteResult:
        """Async `delete`."""
        return await self._arun("delete", self._delete_op(file_path))

    # ------------------------------------------------------------------ listing

    def _purge(self, ns: str, paths: list[str]) -> _Op[int]:
        dir_keys: dict[str, int] = {}
        per_path = self._dir_args(ns, paths, dir_keys)
        keys = [self._k(ns, "idx"), self._k(ns, "files"), self._k(ns, "exp"), *dir_keys]
        reply = yield Script(_PURGE, keys, [str(len(paths)), *per_path])
        return int(reply)

    def _list_page(
        self, ns: str, exact: str, prefix: str, cursor: str
    ) -> _Op[tuple[bool, str, dict[str, str]]]:
        reply = yield Script(
            _LIST,
            [self._k(ns, "idx"), self._k(ns, "files")],
            [exact, prefix, cursor, str(_PAGE)],
        )
        return bool(int(reply[0])), _s(reply[1]), dict(_pairs(reply[2]))

    def _candidates(self, ns: str, path: str | None) -> _Op[dict[str, str] | None]:
        """Files `_filter_files_by_path(files, normalize(path))` would keep, in path order.

        Maps each path to its summary `size|expire_at|encoding|modified_at`. None when the
        path does not normalize (the callers' utils then find nothing).
        """
        try:
            normalized = _normalize_path(path)
        except ValueError:
            return None
        exact = "" if normalized == "/" else normalized
        prefix = "/" if normalized == "/" else normalized + "/"
        out: dict[str, str] = {}
        cursor = ""
        while True:
            is_exact, cursor, entries = yield from self._list_page(ns, exact, prefix, cursor)
            out.update(entries)
            if is_exact or not cursor:
                return out

    def _ls_op(self, path: str) -> _Op[LsResult]:
        reason = listing_path_error(path)
        if reason is not None:
            return LsResult(error=invalid_path_message(path, reason))
        ns = self.resolve_namespace()
        directory = listing_dir(path)
        keys = [self._k(ns, "d", directory), self._k(ns, "files"), self._k(ns, "exp")]
        for _ in range(10_000):
            reply = yield Script(_LS, keys, [directory, str(_PURGE_BATCH)])
            if _s(reply[0]) == "PURGE":
                yield from self._purge(ns, [_s(p) for p in reply[1]])
                continue
            # sorted by name = sorted by path (every entry shares the directory prefix)
            entries = sorted((name[1:], name[0], summary) for name, summary in _pairs(reply[1]))
            infos: list[FileInfo] = []
            for name, kind, summary in entries:
                if kind == "d":
                    infos.append(
                        {"path": directory + name, "is_dir": True, "size": 0, "modified_at": ""}
                    )
                else:
                    size, _expire, _enc, modified = summary.split("|", 3)
                    infos.append(
                        {
                            "path": directory + name,
                            "is_dir": False,
                            "size": int(size),
                            "modified_at": modified,
                        }
                    )
            return LsResult(entries=infos)
        raise DeepAgentsRedisError("ls could not finish purging expired entries")

    def ls(self, path: str) -> LsResult:
        """List a directory's files and sub-directories (non-recursive; contents unread).

        Args:
            path: Absolute directory path.

        Returns:
            Entries sorted by path; directories end with `/` and have `is_dir=True`.
        """
        return self._run("ls", self._ls_op(path))

    async def als(self, path: str) -> LsResult:
        """Async `ls`."""
        return await self._arun("ls", self._ls_op(path))

    def _glob_op(self, pattern: str, path: str | None) -> _Op[GlobResult]:
        reason = _search_args_error(pattern=pattern, path=path)
        if reason is not None:
            return GlobResult(error=reason)
        ns = self.resolve_namespace()
        summaries = (yield from self._candidates(ns, path)) or {}
        files = {p: {"modified_at": s.split("|", 3)[3]} for p, s in summaries.items()}
        try:
            result = _glob_search_files(files, pattern, path)
        except InvalidGlobPatternError as exc:
            return GlobResult(error=str(exc))
        if result == "No files found":
            return GlobResult(matches=[])
        infos: list[FileInfo] = []
        for p in result.split("\n"):
            size, _expire, _enc, modified = summaries.get(p, "0|0||").split("|", 3)
            infos.append({"path": p, "is_dir": False, "size": int(size), "modified_at": modified})
        return GlobResult(matches=infos)

    def glob(self, pattern: str, path: str | None = None) -> GlobResult:
        """Find files matching a glob pattern (deepagents' shared glob contract).

        Args:
            pattern: Glob pattern.
            path: Directory to search from (default `/`).

        Returns:
            Matching files, most recently modified first, or an error for a refused pattern.
        """
        return self._run("glob", self._glob_op(pattern, path))

    async def aglob(self, pattern: str, path: str | None = None) -> GlobResult:
        """Async `glob`."""
        return await self._arun("glob", self._glob_op(pattern, path))

    # ------------------------------------------------------------------ grep

    def _grep_op(
        self, pattern: str, path: str | None, glob: str | None, max_count: int | None
    ) -> _Op[GrepResult]:
        reason = _search_args_error(pattern=pattern, path=path, glob=glob)
        if reason is not None:
            return GrepResult(error=reason)
        ns = self.resolve_namespace()
        summaries = yield from self._candidates(ns, path)
        if summaries is None:
            return GrepResult(matches=[])
        normalized = _normalize_path(path)
        names = list(summaries)
        if glob:
            try:
                matcher = compile_grep_include_glob(glob)
            except InvalidGlobPatternError as exc:
                return GrepResult(error=str(exc))
            names = [p for p in names if matcher(_relative_to_root(p, normalized))]
        sizes: dict[str, int] = {}
        for p in names:
            size_text, _expire, enc, _modified = summaries[p].split("|", 3)
            if enc != "base64":
                sizes[p] = int(size_text)
        names = list(sizes)
        # key(kind, ns, path) is key(kind, ns) + ":" + encode(path): build the head once
        meta_head = self._k(ns, "m") + ":"
        encode = self._ks.encode_component
        try:
            needle = pattern.encode("utf-8")
        except UnicodeEncodeError:  # stored text is valid unicode: it cannot contain this
            return GrepResult(matches=[])
        matches: list[GrepMatch] = []
        i = 0
        while i < len(names):
            batch: list[str] = []
            size = 0
            for p in names[i : i + _GREP_FILES]:
                if batch and size + sizes[p] > _GREP_BYTES:
                    break
                batch.append(p)
                size += sizes[p]
            budget = -1 if max_count is None else max_count - len(matches)
            keys = [meta_head + encode(p) for p in batch]
            reply = yield Script(_GREP, keys, [needle, str(budget)])
            for j in range(1, len(reply), 3):
                matches.append(
                    {
                        "path": batch[int(reply[j]) - 1],
                        "line": int(reply[j + 1]),
                        "text": _s(reply[j + 2]),
                    }
                )
            if max_count is not None and len(matches) > max_count:
                return GrepResult(matches=matches[:max_count], truncated=True)
            stop = int(reply[0])
            if stop == 0:
                i += len(batch)
                continue
            # a chunked or spilled file: stream it here, then carry on after it
            p = batch[stop - 1]
            meta = _meta_dict((yield Command(("HGETALL", self._k(ns, "m", p)))))
            truncated = yield from self._grep_file(ns, p, meta, pattern, matches, max_count)
            if truncated:
                return GrepResult(matches=matches, truncated=True)
            i += stop
        return GrepResult(matches=matches)

    def _grep_file(
        self,
        ns: str,
        path: str,
        meta: dict[str, Any],
        pattern: str,
        matches: list[GrepMatch],
        max_count: int | None,
    ) -> _Op[bool]:
        """Append this file's matches; True when `max_count` cut the search short.

        Lines are matched as the content streams in, `_GREP_CHUNK_BATCH` chunks at a time,
        so memory stays at one batch plus the longest line, whatever the file's size. If a
        writer replaces the file meanwhile (its chunks vanish), this file's matches are
        dropped and the new version is searched from the start.
        """
        mark = len(matches)
        for _ in range(_TORN_RETRIES):
            if not meta or _s(meta.get("e", b"utf-8")) == "base64":
                return False
            del matches[mark:]
            decoder = codecs.getincrementaldecoder("utf-8")()
            carry = ""
            line_num = 0
            complete = True
            n = int(meta.get("n") or 0)
            ckey = self._k(ns, "c", path)
            for start in range(0, max(n, 1), _GREP_CHUNK_BATCH):
                if n == 0:  # inline or spilled: one piece
                    piece = yield from self._content(ns, path, meta)
                else:
                    gen = _s(meta["g"])
                    stop = min(n, start + _GREP_CHUNK_BATCH)
                    fields = [f"{gen}:{i}" for i in range(start, stop)]
                    vals = yield Command(("HMGET", ckey, *fields))
                    piece = None if any(v is None for v in vals) else b"".join(map(_b, vals))
                if piece is None:
                    complete = False
                    break
                parts = (carry + decoder.decode(piece)).split("\n")
                carry = parts.pop()
                for line in parts:
                    line_num += 1
                    if pattern in line:
                        if max_count is not None and len(matches) >= max_count:
                            return True
                        matches.append({"path": path, "line": line_num, "text": line})
            if not complete:
                meta = _meta_dict((yield Command(("HGETALL", self._k(ns, "m", path)))))
                continue
            last = carry + decoder.decode(b"", final=True)
            if pattern in last:
                if max_count is not None and len(matches) >= max_count:
                    return True
                matches.append({"path": path, "line": line_num + 1, "text": last})
            return False
        # rewritten faster than we could stream it: search one atomic snapshot instead
        del matches[mark:]
        got = yield from self._load(ns, path, refresh=False)
        if got is None or _s(got[0].get("e", b"utf-8")) == "base64":
            return False
        for line_num, line in enumerate(got[1].decode("utf-8").split("\n"), 1):
            if pattern in line:
                if max_count is not None and len(matches) >= max_count:
                    return True
                matches.append({"path": path, "line": line_num, "text": line})
        return False

    def grep(
        self,
        pattern: str,
        path: str | None = None,
        glob: str | None = None,
        *,
        max_count: int | None = None,
    ) -> GrepResult:
        """Search text files for a literal string (binary files are skipped).

        Candidates come from the index (path and glob filters first); contents are fetched
        in pipelined batches and matching stops at `max_count`.

        Args:
            pattern: Literal text to find.
            path: Directory (or file) to search (default `/`).
            glob: Include-glob on paths relative to `path`.
            max_count: Cap on the number of matches (then `truncated=True`).

        Returns:
            Matches in path order, or an error for a refused glob.
        """
        return self._run("grep", self._grep_op(pattern, path, glob, max_count))

    async def agrep(
        self,
        pattern: str,
        path: str | None = None,
        glob: str | None = None,
        *,
        max_count: int | None = None,
    ) -> GrepResult:
        """Async `grep`."""
        return await self._arun("grep", self._grep_op(pattern, path, glob, max_count))

    # ------------------------------------------------------------------ upload / download

    def _upload_op(self, files: list[tuple[str, bytes]]) -> _Op[list[FileUploadResponse]]:
        ns = self.resolve_namespace()
        out: list[FileUploadResponse] = []
        for path, content in files:
            if file_path_error(path) is not None:
                out.append(FileUploadResponse(path=path, error="invalid_path"))
                continue
            try:
                text = bytes(content).decode("utf-8")
                encoding = "utf-8"
            except UnicodeDecodeError:
                text = base64.standard_b64encode(content).decode("ascii")
                encoding = "base64"
            data = text.encode("utf-8")
            if self._size_error(len(data), path):
                out.append(
                    FileUploadResponse(
                        path=path,
                        error=f"file too large: {len(data)} bytes > {self._max_size}",
                    )
                )
                continue
            now = _now_iso()
            yield from self._commit(
                ns,
                path,
                data,
                encoding=encoding,
                created_at=now,
                keep_created=True,
                modified_at=now,
                expected_version=None,
            )
            out.append(FileUploadResponse(path=path, error=None))
        return out

    def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        """Store files given as bytes (UTF-8 text as text, anything else as base64).

        Args:
            files: `(path, content)` pairs.

        Returns:
            One response per input, in order.
        """
        return self._run("upload", self._upload_op(files))

    async def aupload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        """Async `upload_files`."""
        return await self._arun("upload", self._upload_op(files))

    def _download_op(self, paths: list[str]) -> _Op[list[FileDownloadResponse]]:
        ns = self.resolve_namespace()
        out: list[FileDownloadResponse] = []
        for path in paths:
            if file_path_error(path) is not None:
                out.append(FileDownloadResponse(path=path, content=None, error="invalid_path"))
                continue
            got = yield from self._load(ns, path)
            if got is None:
                out.append(FileDownloadResponse(path=path, content=None, error="file_not_found"))
                continue
            meta, data = got
            if _s(meta.get("e", b"utf-8")) == "base64":
                data = base64.standard_b64decode(data)
            out.append(FileDownloadResponse(path=path, content=data, error=None))
        return out

    def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        """Fetch files as bytes (base64 files decoded).

        Args:
            paths: File paths.

        Returns:
            One response per input, in order (`file_not_found`, `invalid_path` on errors).
        """
        return self._run("download", self._download_op(paths))

    async def adownload_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        """Async `download_files`."""
        return await self._arun("download", self._download_op(paths))

    # ------------------------------------------------------------------ extras

    def _stat_op(self, path: str) -> _Op[FileStat | None]:
        if file_path_error(path) is not None:
            return None
        ns = self.resolve_namespace()
        meta = yield from self._meta(ns, path)
        if not meta:
            return None
        expire = int(float(_s(meta.get("x") or b"0")))
        return FileStat(
            path=path,
            version=int(meta["v"]),
            size=int(meta.get("s") or 0),
            encoding=_s(meta.get("e", b"utf-8")),
            created_at=_s(meta.get("ca") or b""),
            modified_at=_s(meta.get("ma") or b""),
            expires_at=expire / 1000 if expire else None,
            chunks=int(meta.get("n") or 0),
            spilled=bool(_s(meta.get("b") or b"")),
            blob_ref=_s(meta.get("b") or b"") or None,
        )

    def stat(self, path: str) -> FileStat | None:
        """Version, size and timestamps of a file, without its content.

        Args:
            path: Absolute file path.

        Returns:
            The file's `FileStat`, or None when it does not exist.
        """
        return self._run("stat", self._stat_op(path))

    async def astat(self, path: str) -> FileStat | None:
        """Async `stat`."""
        return await self._arun("stat", self._stat_op(path))

    def _gc_op(self, orphan_grace: float) -> _Op[int]:
        ns = self.resolve_namespace()
        removed = 0
        while True:
            refs = yield Script(_GC_CLAIM, [self._k(ns, "blobs")], [str(_PURGE_BATCH)])
            for ref in refs:
                yield self._blob("delete", (_s(ref),), best_effort=True)
            removed += len(refs)
            if len(refs) < _PURGE_BATCH:
                break
        listed = yield self._blob("list", (self._blob_prefix(ns),))
        cutoff = time.time() - orphan_grace
        old = [ref for ref, mtime in listed or [] if mtime < cutoff]
        for start in range(0, len(old), 500):
            batch = old[start : start + 500]
            scores = yield Pipeline([("ZSCORE", self._k(ns, "blobs"), ref) for ref in batch])
            for ref, score in zip(batch, scores, strict=True):
                if score is None:
                    yield self._blob("delete", (ref,), best_effort=True)
                    removed += 1
        return removed

    def gc(self, *, orphan_grace: float = 3600.0) -> int:
        """Delete blobs no live file references (expired files, interrupted writes).

        Args:
            orphan_grace: Blobs younger than this many seconds are never treated as
                orphans (a writer may be about to commit them).

        Returns:
            Number of blobs removed.
        """
        return self._run("gc", self._gc_op(orphan_grace))

    async def agc(self, *, orphan_grace: float = 3600.0) -> int:
        """Async `gc`."""
        return await self._arun("gc", self._gc_op(orphan_grace))

    def __repr__(self) -> str:
        ns = self._namespace if isinstance(self._namespace, str) else "<factory>"
        return f"RedisBackend(namespace={ns!r}, connector={self._connector!r})"
