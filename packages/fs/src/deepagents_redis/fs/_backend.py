"""`RedisBackend`: deepagents' `BackendProtocol` on Redis.

Each operation is written once, as a generator that yields I/O requests (a script call, a
command, a pipeline, a blob-store call, a pause) and receives their replies; core's driver
runs it on the sync client or awaits the asyncio client, so the async methods are real
asyncio code paths with exactly the semantics of the sync ones. The operations live by
area: `_common` (layout, scripts, core read/commit), `_files` (read, write, edit, delete,
upload, download), `_search` (ls, glob, grep); this module is the public class.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, Unpack

from deepagents.backends.protocol import (
    BackendProtocol,
)
from deepagents_redis.core import (
    Call,
    ConfigurationError,
    Connection,
    EvictionCheck,
    EvictionGuard,
    InvalidInputError,
    KeySpace,
    Pipeline,
    RedisComponent,
    Script,
    SerializationError,
)
from deepagents_redis.fs._blobs import BlobStore
from deepagents_redis.fs._common import (
    _GC_CLAIM,
    _PURGE_BATCH,
    FileStat,
    NamespaceFactory,
    _blob_refs,
    _decodes_responses,
    _field_int,
    _Op,
    _s,
)
from deepagents_redis.fs._files import _FileOps
from deepagents_redis.fs._paths import (
    file_path_error,
    text_error,
)
from deepagents_redis.fs._search import _SearchOps
from deepagents_redis.fs._settings import MIB, FsSettings, lifetime_error

__all__ = ["FileStat", "NamespaceFactory", "RedisBackend"]


def _check_options(
    *,
    ttl: float | None,
    ttl_rules: Mapping[str, float | None],
    chunk_size: int,
    spill_threshold: int,
    max_file_size: int,
    edit_retries: int,
    chunk_grace: float,
    deadline_seconds: float | None,
) -> None:
    """Refuse options the backend cannot honour, before anything is built (as `FsSettings`).

    Unchecked, a `ttl_rules` lifetime of 0 or less made the files under its prefix expire
    1 ms after each write, a NaN or infinite lifetime failed every write with a bare
    ValueError/OverflowError, a negative `chunk_grace` expired a chunked file's chunks
    before its metadata (reads of a live file failed), `edit_retries=0` gave up every
    chunked edit unattempted and a negative `spill_threshold` spilled even empty files.

    Raises:
        InvalidInputError: Naming the first bad option.
    """
    reasons = [
        None if ttl is None else lifetime_error(ttl, "ttl"),
        *(
            None if t is None else lifetime_error(t, "a ttl_rules value")
            for t in ttl_rules.values()
        ),
        lifetime_error(chunk_grace, "chunk_grace", zero=True),
        _count_error(chunk_size, "chunk_size", 1024),
        _count_error(spill_threshold, "spill_threshold", 0),
        _count_error(max_file_size, "max_file_size", 1),
        _count_error(edit_retries, "edit_retries", 1),
    ]
    if deadline_seconds is not None and not (
        isinstance(deadline_seconds, int | float) and 0 < deadline_seconds < math.inf
    ):
        reasons.append("deadline_seconds must be a positive finite number (or None)")
    for reason in reasons:
        if reason is not None:
            raise InvalidInputError(reason)


def _count_error(value: object, what: str, least: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        return f"{what} must be an integer of at least {least}"
    return None


def _gc_may_judge(ref: str, scope: str, home: str) -> bool:
    """Whether `gc` may take blob `ref` for an orphan when no file of its Redis names it.

    Only blobs in the namespace's own folder (`_blob_home`), or written before folders had
    an id (`<scope>/<path hash>/<token>`): never another deployment's folder, whose files
    live in another Redis.
    """
    return ref.startswith(home) or ref.count("/") == scope.count("/") + 1


class RedisBackend(_FileOps, _SearchOps, RedisComponent, BackendProtocol):
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
            Namespaces are exact: `"a"` never sees files of `"a/b"` or `"ab"`. A string
            must be valid Unicode text (no lone surrogate), else `InvalidInputError`.
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
        eviction_check: Before the first write, look at the server's eviction policy (core's
            `EvictionGuard`): an `allkeys-*` policy can evict files, which have no TTL.
            `warn` logs a warning, `refuse` raises `ConfigurationError`, `off` skips it.
        **connection: How to connect (core's `Connection`): `connector=`, a shared
            `RedisConnector` the caller closes, or the conveniences `url=`, `settings=`,
            `client=`, `async_client=`, from which the backend builds one it owns and closes
            (ready clients are never closed by it; they need `decode_responses=False`).
    """

    def __init__(
        self,
        *,
        namespace: str | NamespaceFactory = "default",
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
        eviction_check: EvictionCheck = "warn",
        **connection: Unpack[Connection],
    ) -> None:
        if not callable(namespace) and (not isinstance(namespace, str) or not namespace):
            raise InvalidInputError("namespace must be a non-empty string or a callable")
        if isinstance(namespace, str) and text_error(namespace, "namespace") is not None:
            raise InvalidInputError(f"namespace {namespace!r} is not valid unicode text")
        _check_options(
            ttl=ttl,
            ttl_rules=ttl_rules or {},
            chunk_size=chunk_size,
            spill_threshold=spill_threshold,
            max_file_size=max_file_size,
            edit_retries=edit_retries,
            chunk_grace=chunk_grace,
            deadline_seconds=deadline_seconds,
        )
        for given in (connection.get("client"), connection.get("async_client")):
            if given is not None and _decodes_responses(given):
                # content is stored as raw UTF-8 chunks cut at byte boundaries; a client that
                # decodes replies would fail on a chunk that ends inside a character
                raise ConfigurationError(
                    "RedisBackend needs clients with decode_responses=False "
                    "(core's create_client / create_async_client make them)"
                )
        self._namespace = namespace
        self._attach(**connection)
        self._ks: KeySpace = self._connector.keyspace
        self._heads = {}
        self._op_heads = {}
        self._blob_homes = {}
        self._write_cache = {}
        self._stale = set()
        self._abandoned = {}
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
        self._deadline = deadline_seconds
        self._eviction = EvictionGuard("agent files", eviction_check, logger="deepagents_redis.fs")

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
            "eviction_check": s.eviction_check,
        }
        opts.update(kwargs)
        return cls(**opts)

    # ------------------------------------------------------------------ extras

    def _stat_op(self, path: str) -> _Op[FileStat | None]:
        if file_path_error(path) is not None:
            return None
        ns = self.resolve_namespace()
        meta = yield from self._meta(ns, path)
        if not meta:
            return None
        try:
            expire = int(float(_s(meta.get("x") or b"0")))
            version = int(meta["v"])
        except (KeyError, ValueError) as exc:  # (a SerializationError is no ValueError)
            raise SerializationError(
                f"the metadata of {path!r} (namespace {ns!r}) has no readable version or "
                "expiry: written by another program, or damaged"
            ) from exc
        ref = _s(meta.get("b") or b"")
        return FileStat(
            path=path,
            version=version,
            size=_field_int(meta, "s"),
            encoding=_s(meta.get("e", b"utf-8")),
            created_at=_s(meta.get("ca") or b""),
            modified_at=_s(meta.get("ma") or b""),
            expires_at=expire / 1000 if expire else None,
            chunks=_field_int(meta, "n"),
            spilled=bool(ref),
            blob_ref=ref or None,
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
        # A negative grace puts the cutoff in the future, so the blob a writer has just put
        # and is about to commit counts as an orphan and is deleted (the file it commits
        # then has no content); NaN compares false with every mtime and removes no orphan.
        if not (isinstance(orphan_grace, int | float) and 0 <= orphan_grace < math.inf):
            raise InvalidInputError("orphan_grace must be a finite number of seconds, at least 0")
        ns = self.resolve_namespace()
        removed = 0
        while True:
            refs = yield Script(_GC_CLAIM, [self._k(ns, "blobs")], [str(_PURGE_BATCH)])
            claimed = _blob_refs(refs, "fs gc")  # (a ref not UTF-8 is no blob of ours)
            for ref in claimed:
                yield self._blob("delete", (ref,), best_effort=True)
            removed += len(claimed)
            if len(refs) < _PURGE_BATCH:
                break
        home = yield from self._blob_home(ns)
        scope = self._blob_prefix(ns)
        listed = yield self._blob("list", (scope,))
        cutoff = time.time() - orphan_grace
        old = [
            ref for ref, mtime in listed or [] if mtime < cutoff and _gc_may_judge(ref, scope, home)
        ]
        for start in range(0, len(old), 500):
            batch = old[start : start + 500]
            scores = yield Pipeline([("ZSCORE", self._k(ns, "blobs"), ref) for ref in batch])
            for ref, score in zip(batch, scores, strict=True):
                if score is None:
                    yield self._blob("delete", (ref,), best_effort=True)
                    removed += 1
        # Temporary files of puts that never finished (the writer was killed between writing
        # and renaming): no file ever names them, and `list` does not show them.
        temps = yield Call(self._stale_temporaries, (scope,))
        for ref, mtime in temps:
            if mtime < cutoff and _gc_may_judge(ref, scope, home):
                yield self._blob("delete", (ref,), best_effort=True)
                removed += 1
        return removed

    def _stale_temporaries(self, prefix: str) -> list[tuple[str, float]]:
        """The store's unfinished-put files under `prefix`, if it keeps any (a driver Call)."""
        find = getattr(self.blob_store, "temporaries", None)
        return list(find(prefix)) if callable(find) else []

    def gc(self, *, orphan_grace: float = 3600.0) -> int:
        """Delete blobs no live file references (expired files, interrupted writes).

        Also the temporary files of blob writes that never finished, when the store keeps
        them (`LocalBlobStore.temporaries`) and they are older than `orphan_grace`.

        Args:
            orphan_grace: Blobs younger than this many seconds are never treated as
                orphans (a writer may be about to commit them).

        Returns:
            Number of blobs removed.

        Raises:
            InvalidInputError: `orphan_grace` is negative or not finite.
        """
        return self._run("gc", self._gc_op(orphan_grace))

    async def agc(self, *, orphan_grace: float = 3600.0) -> int:
        """Async `gc`."""
        return await self._arun("gc", self._gc_op(orphan_grace))

    def close(self) -> None:
        """Release the backend; close its connector if it built it (yours stays open).

        First removes, best effort (about 2 s at most), the staged chunks and spilled blobs
        of big writes that were interrupted (a cancelled task, a KeyboardInterrupt) and not
        yet removed by a later call: a service shutting down cancels its in-flight writes,
        then closes.
        """
        if self._abandoned:
            self._unstage()  # (a failure is logged: they expire anyway)
        super().close()

    async def aclose(self) -> None:
        """Async `close`."""
        if self._abandoned:
            await self._aunstage()
        await super().aclose()

    def __repr__(self) -> str:
        ns = self._namespace if isinstance(self._namespace, str) else "<factory>"
        return f"RedisBackend(namespace={ns!r}, connector={self._connector!r})"
