"""Moving an existing backend onto Redis: dual writes, divergence reports, copying.

Rollout (see docs/packages/fs-conflicts.md): wrap the old backend as primary and Redis as
secondary in `DualWriteBackend`, copy the existing files with `copy_files`, watch the
divergence reports, then swap the two and finally drop the old backend.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deepagents.backends.protocol import (
    BackendProtocol,
    DeleteResult,
    EditResult,
    FileDownloadResponse,
    FileUploadResponse,
    GlobResult,
    GrepResult,
    LsResult,
    ReadResult,
    WriteResult,
)
from deepagents_redis.core import InvalidInputError, get_instrumentation

__all__ = [
    "CopyReport",
    "Divergence",
    "DualWriteBackend",
    "acopy_files",
    "copy_files",
]


log = logging.getLogger("deepagents_redis.fs")

_STAMPS = ("created_at", "modified_at")


def _comparable(op: str, value: Any) -> Any:
    """A result as plain data, timestamps reduced to presence, grep matches in path order.

    Two backends never stamp a write at the same instant, and deepagents' StoreBackend
    lists grep matches in its store's order, so neither may count as a divergence.
    """

    def walk(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return walk(dataclasses.asdict(v))
        if isinstance(v, dict):
            return {
                k: (bool(x) if k in _STAMPS and isinstance(x, str) else walk(x))
                for k, x in v.items()
            }
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        return v

    data = walk(value)
    if op == "grep" and isinstance(data, dict) and data.get("matches"):
        data["matches"] = sorted(data["matches"], key=lambda m: (m["path"], m["line"]))
    return data


@dataclass(frozen=True)
class Divergence:
    """The two backends of a `DualWriteBackend` disagreed.

    Attributes:
        op: The operation (`"write"`, `"edit"`, `"read"`, ...).
        args: Its arguments (file contents elided to their length).
        primary: The primary's result (or the exception it raised, as text).
        secondary: The secondary's result (or the exception it raised, as text).
    """

    op: str
    args: tuple[Any, ...]
    primary: Any
    secondary: Any


def _brief(args: tuple[Any, ...]) -> tuple[Any, ...]:
    out: list[Any] = []
    for a in args:
        if isinstance(a, str) and len(a) > 200:
            out.append(f"<{len(a)} chars>")
        elif isinstance(a, list) and a and isinstance(a[0], tuple):
            out.append([(p, f"<{len(c)} bytes>") for p, c in a])
        else:
            out.append(a)
    return tuple(out)


class DualWriteBackend(BackendProtocol):
    """Writes go to both backends, reads come from the primary; disagreements are reported.

    The primary's result is what callers get, always. The secondary's failures never reach
    the caller: they are logged, counted (`fs.dual.divergence`) and kept in
    `divergences` (the most recent `max_recorded`), and passed to `on_divergence`.

    Args:
        primary: The backend of record (e.g. your current `StoreBackend`).
        secondary: The backend being migrated to (e.g. a `RedisBackend`).
        on_divergence: Called with each `Divergence` (e.g. to alert).
        shadow_reads: Also run reads on the secondary and compare (doubles read cost).
        max_recorded: How many recent divergences `divergences` keeps.
    """

    def __init__(
        self,
        primary: BackendProtocol,
        secondary: BackendProtocol,
        *,
        on_divergence: Callable[[Divergence], None] | None = None,
        shadow_reads: bool = False,
        max_recorded: int = 1000,
    ) -> None:
        self.primary = primary
        """The backend of record."""
        self.secondary = secondary
        """The backend being migrated to."""
        self._on_divergence = on_divergence
        self._shadow = shadow_reads
        self._recent: collections.deque[Divergence] = collections.deque(maxlen=max_recorded)
        self.divergence_count = 0
        """Divergences seen since this backend was created."""

    @property
    def divergences(self) -> list[Divergence]:
        """The most recent divergences, oldest first."""
        return list(self._recent)

    def _report(self, op: str, args: tuple[Any, ...], primary: Any, secondary: Any) -> None:
        d = Divergence(op=op, args=_brief(args), primary=primary, secondary=secondary)
        self._recent.append(d)
        self.divergence_count += 1
        get_instrumentation().count("fs.dual.divergence", op=op)
        log.warning("dual-write divergence on %s%r", op, d.args)
        if self._on_divergence is not None:
            self._on_divergence(d)

    def _both(self, op: str, args: tuple[Any, ...], mirror: bool) -> Any:
        result = getattr(self.primary, op)(*args)
        if not mirror:
            return result
        try:
            other = getattr(self.secondary, op)(*args)
        except Exception as exc:  # noqa: BLE001 - the secondary must never break the caller
            self._report(op, args, result, f"{type(exc).__name__}: {exc}")
            return result
        if _comparable(op, result) != _comparable(op, other):
            self._report(op, args, result, other)
        return result

    async def _aboth(self, op: str, args: tuple[Any, ...], mirror: bool) -> Any:
        result = await getattr(self.primary, "a" + op)(*args)
        if not mirror:
            return result
        try:
            other = await getattr(self.secondary, "a" + op)(*args)
        except Exception as exc:  # noqa: BLE001 - the secondary must never break the caller
            self._report(op, args, result, f"{type(exc).__name__}: {exc}")
            return result
        if _comparable(op, result) != _comparable(op, other):
            self._report(op, args, result, other)
        return result

    # writes: both backends
    def write(self, file_path: str, content: str) -> WriteResult:
        """Write to both; the primary's result is returned."""
        result: WriteResult = self._both("write", (file_path, content), True)
        return result

    async def awrite(self, file_path: str, content: str) -> WriteResult:
        """Async `write`."""
        result: WriteResult = await self._aboth("write", (file_path, content), True)
        return result

    def edit(
        self,
        file_path: str,
        old_string: str,
        new_string: str,
        replace_all: bool = False,
    ) -> EditResult:
        """Edit both; the primary's result is returned."""
        args = (file_path, old_string, new_string, replace_all)
        result: EditResult = self._both("edit", args, True)
        return result

    async def aedit(
        self,
        file_path: str,
        old_string: str,
        new_string: str,
        replace_all: bool = False,
    ) -> EditResult:
        """Async `edit`."""
        args = (file_path, old_string, new_string, replace_all)
        result: EditResult = await self._aboth("edit", args, True)
        return result

    def delete(self, file_path: str) -> DeleteResult:
        """Delete on both; the primary's result is returned."""
        result: DeleteResult = self._both("delete", (file_path,), True)
        return result

    async def adelete(self, file_path: str) -> DeleteResult:
        """Async `delete`."""
        result: DeleteResult = await self._aboth("delete", (file_path,), True)
        return result

    def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        """Upload to both; the primary's responses are returned."""
        result: list[FileUploadResponse] = self._both("upload_files", (files,), True)
        return result

    async def aupload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        """Async `upload_files`."""
        result: list[FileUploadResponse] = await self._aboth("upload_files", (files,), True)
        return result

    # reads: the primary (and the secondary too with shadow_reads)
    def read(self, file_path: str, offset: int = 0, limit: int = 2000) -> ReadResult:
        """Read from the primary."""
        result: ReadResult = self._both("read", (file_path, offset, limit), self._shadow)
        return result

    async def aread(self, file_path: str, offset: int = 0, limit: int = 2000) -> ReadResult:
        """Async `read`."""
        args = (file_path, offset, limit)
        result: ReadResult = await self._aboth("read", args, self._shadow)
        return result

    def ls(self, path: str) -> LsResult:
        """List on the primary."""
        result: LsResult = self._both("ls", (path,), self._shadow)
        return result

    async def als(self, path: str) -> LsResult:
        """Async `ls`."""
        result: LsResult = await self._aboth("ls", (path,), self._shadow)
        return result

    def glob(self, pattern: str, path: str | None = None) -> GlobResult:
        """Glob on the primary."""
        result: GlobResult = self._both("glob", (pattern, path), self._shadow)
        return result

    async def aglob(self, pattern: str, path: str | None = None) -> GlobResult:
        """Async `glob`."""
        result: GlobResult = await self._aboth("glob", (pattern, path), self._shadow)
        return result

    def grep(
        self,
        pattern: str,
        path: str | None = None,
        glob: str | None = None,
        *,
        max_count: int | None = None,
    ) -> GrepResult:
        """Grep on the primary (capped greps are never compared: caps pick different files)."""
        result: GrepResult = self.primary.grep(pattern, path, glob, max_count=max_count)
        if self._shadow and max_count is None:
            self._compare_read("grep", (pattern, path, glob), result)
        return result

    async def agrep(
        self,
        pattern: str,
        path: str | None = None,
        glob: str | None = None,
        *,
        max_count: int | None = None,
    ) -> GrepResult:
        """Async `grep`."""
        result: GrepResult = await self.primary.agrep(pattern, path, glob, max_count=max_count)
        if self._shadow and max_count is None:
            try:
                other = await self.secondary.agrep(pattern, path, glob)
            except Exception as exc:  # noqa: BLE001 - shadow reads never break the caller
                self._report("grep", (pattern, path, glob), result, repr(exc))
                return result
            if _comparable("grep", result) != _comparable("grep", other):
                self._report("grep", (pattern, path, glob), result, other)
        return result

    def _compare_read(self, op: str, args: tuple[Any, ...], result: Any) -> None:
        try:
            other = getattr(self.secondary, op)(*args)
        except Exception as exc:  # noqa: BLE001 - shadow reads never break the caller
            self._report(op, args, result, repr(exc))
            return
        if _comparable(op, result) != _comparable(op, other):
            self._report(op, args, result, other)

    def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        """Download from the primary."""
        result: list[FileDownloadResponse] = self._both("download_files", (paths,), self._shadow)
        return result

    async def adownload_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        """Async `download_files`."""
        result: list[FileDownloadResponse] = await self._aboth(
            "download_files", (paths,), self._shadow
        )
        return result


@dataclass
class CopyReport:
    """What `copy_files` did.

    Attributes:
        copied: Paths written to the target.
        failed: `(path, error)` for files that could not be read or written, and for
            directories that could not be listed.
    """

    copied: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _walk(source: BackendProtocol, root: str, report: CopyReport) -> list[str]:
    """Every file path under `root`, found with `ls` (works on every backend).

    A directory that cannot be listed is a failure in `report` (its files would otherwise
    be skipped without a word, and the copy reported complete).
    """
    files: list[str] = []
    pending = [root]
    seen: set[str] = set()
    while pending:
        directory = pending.pop()
        if directory in seen:
            continue
        seen.add(directory)
        res = source.ls(directory)
        if res.error is not None:
            report.failed.append((directory, f"cannot list: {res.error}"))
        for entry in res.entries or []:
            if entry.get("is_dir"):
                pending.append(entry["path"])
            else:
                files.append(entry["path"])
    return sorted(files)


async def _awalk(source: BackendProtocol, root: str, report: CopyReport) -> list[str]:
    files: list[str] = []
    pending = [root]
    seen: set[str] = set()
    while pending:
        directory = pending.pop()
        if directory in seen:
            continue
        seen.add(directory)
        res = await source.als(directory)
        if res.error is not None:
            report.failed.append((directory, f"cannot list: {res.error}"))
        for entry in res.entries or []:
            if entry.get("is_dir"):
                pending.append(entry["path"])
            else:
                files.append(entry["path"])
    return sorted(files)


def _with_root(
    root: str, found: list[FileDownloadResponse], walked: list[str], report: CopyReport
) -> list[str]:
    """What to copy under `root`: the files the walk found, and `root` itself if a file.

    A path is read as `delete` reads it: the exact path and everything under it. `ls` of a
    file, or of a path that does not exist, is an empty listing on key-value backends
    (StoreBackend, RedisBackend), so `copy_files(path="/notes.md")` copied nothing and
    `path="/typo"` reported nothing copied and nothing failed. And where a file and a
    directory share the name (`/a` and `/a/b`, which key-value backends allow), only the
    walk was copied: `/a` was left behind without a word and the copy reported complete.
    Now the file at `root` is always copied, and a path with nothing at or under it is a
    failure; an empty directory (`is_directory`) is neither.

    Args:
        root: The caller's `path`.
        found: `download_files` of `root` without its trailing slashes.
        walked: The files the walk found under it.
        report: Takes the failure when there is nothing to copy.

    Returns:
        The paths to copy, in order.
    """
    [got] = found
    if got.error is None:
        return [got.path, *walked]  # it sorts before every path under it
    if not walked and not report.failed and got.error != "is_directory":
        report.failed.append((root, f"nothing to copy: no file at or under it ({got.error})"))
    return walked


def _check_batch_size(batch_size: object) -> None:
    """Refuse a batch size that is not a positive int, before anything is read or written.

    Taken as given, a negative one made the batch loop's `range` empty: nothing was copied
    and the report had neither copies nor failures, as if the source were empty; 0 raised a
    bare ValueError from `range` after the whole source had been walked.

    Raises:
        InvalidInputError: It is not an int of at least 1.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be an integer of at least 1, got {batch_size!r}")


def _apply(
    report: CopyReport,
    downloaded: list[FileDownloadResponse],
) -> list[tuple[str, bytes]]:
    ready: list[tuple[str, bytes]] = []
    for d in downloaded:
        if d.error is not None or d.content is None:
            report.failed.append((d.path, str(d.error)))
        else:
            ready.append((d.path, d.content))
    return ready


def copy_files(
    source: BackendProtocol,
    target: BackendProtocol,
    *,
    path: str = "/",
    batch_size: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> CopyReport:
    """Copy every file under `path` from one backend to another (any two backends).

    Files are moved as bytes with `download_files` / `upload_files`, so binary files stay
    binary; existing target files with the same path are overwritten. A `path` naming a
    file copies that file; a `path` with no file at or under it is a failure in the report.

    Args:
        source: Where the files are.
        target: Where they go.
        path: The directory to copy (default: everything).
        batch_size: Files per download/upload batch (bounds memory).
        progress: Called with `(files done, files in all)` after each batch (and once
            before the first).

    Returns:
        What was copied and what failed.

    Raises:
        InvalidInputError: `batch_size` is not an int of at least 1; nothing is copied.
    """
    _check_batch_size(batch_size)
    report = CopyReport()
    paths = _walk(source, path, report)
    root = path.rstrip("/")
    if root and root not in paths:
        paths = _with_root(path, source.download_files([root]), paths, report)
    if progress is not None:
        progress(0, len(paths))
    for start in range(0, len(paths), batch_size):
        ready = _apply(report, source.download_files(paths[start : start + batch_size]))
        for resp in target.upload_files(ready) if ready else []:
            if resp.error is None:
                report.copied.append(resp.path)
            else:
                report.failed.append((resp.path, str(resp.error)))
        if progress is not None:
            progress(min(start + batch_size, len(paths)), len(paths))
    return report


async def acopy_files(
    source: BackendProtocol, target: BackendProtocol, *, path: str = "/", batch_size: int = 100
) -> CopyReport:
    """Async `copy_files` (uses each backend's async methods; same errors)."""
    _check_batch_size(batch_size)
    report = CopyReport()
    paths = await _awalk(source, path, report)
    root = path.rstrip("/")
    if root and root not in paths:
        paths = _with_root(path, await source.adownload_files([root]), paths, report)
    for start in range(0, len(paths), batch_size):
        downloaded = await source.adownload_files(paths[start : start + batch_size])
        ready = _apply(report, downloaded)
        for resp in await target.aupload_files(ready) if ready else []:
            if resp.error is None:
                report.copied.append(resp.path)
            else:
                report.failed.append((resp.path, str(resp.error)))
    return report
