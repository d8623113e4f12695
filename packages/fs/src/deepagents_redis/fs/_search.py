"""Listing and search operations of `RedisBackend`: ls, glob and grep."""

from __future__ import annotations

import codecs
import logging
import math
from collections.abc import Iterable
from typing import Any

from deepagents.backends.protocol import (
    FileInfo,
    GlobResult,
    GrepMatch,
    GrepResult,
    LsResult,
)
from deepagents.backends.utils import (
    InvalidGlobPatternError,
    _glob_search_files,
    _normalize_path,
    _relative_to_root,
    compile_grep_include_glob,
)
from deepagents_redis.core import (
    Command,
    DeepAgentsRedisError,
    KeySpace,
    Script,
    SerializationError,
)
from deepagents_redis.fs._common import (
    _GREP,
    _GREP_BYTES,
    _GREP_CHUNK_BATCH,
    _GREP_FILES,
    _GREP_LINES,
    _LS,
    _LS_CALLS,
    _LS_PAGE,
    _PURGE_BATCH,
    _SEARCH_WORK,
    _TORN_RETRIES,
    _b,
    _field_int,
    _Layout,
    _meta_dict,
    _Op,
    _pairs,
    _s,
    _search_args_error,
)
from deepagents_redis.fs._paths import (
    invalid_path_message,
    listing_dir,
    listing_path_error,
)

__all__: list[str] = []

log = logging.getLogger("deepagents_redis.fs")


def _skipped(paths: Iterable[str]) -> None:
    """Warn that grep skipped files whose stored content is not UTF-8.

    Such content was written by another program or damaged (our writes store UTF-8 or
    base64): grep skips it as deepagents' FilesystemBackend skips a file it cannot decode
    (it raised a bare UnicodeDecodeError), and says so here.
    """
    log.warning(
        "grep skipped %s: stored content is not UTF-8 text (written by another program, "
        "or damaged)",
        ", ".join(repr(p) for p in sorted(paths)),
    )


def _match_cap(max_count: float) -> int | None:
    """How many matches `grep_matches_from_files(..., max_count=max_count)` keeps at most.

    deepagents stops at the first match that finds `len(matches) >= max_count`: a negative
    cap keeps none, like 0, and a fractional one keeps its ceiling; NaN and infinity never
    stop it. Taken as given, a negative cap was no cap to the GREP script (budget -1) and
    then a negative slice (`max_count=-1` kept all matches but the last, the reference
    none), and 2.5 raised TypeError from the slice.
    """
    if not math.isfinite(max_count):
        return None
    return max(0, math.ceil(max_count))


def _ls_infos(directory: str, entries: dict[str, str]) -> list[FileInfo]:
    """`ls` entries from the LS script's (name, summary) pairs, sorted by path.

    Raises:
        SerializationError: A summary is not `size|expire_at|encoding|modified_at` (the
            index hash written by another program, or damaged; a bare ValueError before).
    """
    try:
        return _ls_entries(directory, entries)
    except ValueError as exc:
        raise _bad_summary(exc) from exc


def _bad_summary(exc: Exception) -> SerializationError:
    return SerializationError(
        f"a file summary in the index is not 'size|expire_at|encoding|modified_at' ({exc}): "
        "written by another program, or damaged"
    )


def _ls_entries(directory: str, entries: dict[str, str]) -> list[FileInfo]:
    # Sorted by name = sorted by path (every entry shares the directory prefix). Names are
    # unique and only sub-directories have an empty summary; sorting the names alone, not
    # (name, kind, summary) tuples, took a quarter off this loop's time (fs performance
    # pass, issue 13).
    infos: list[FileInfo] = []
    append = infos.append
    for name in sorted(entries):
        summary = entries[name]
        if summary:
            size, _expire, _enc, modified = summary.split("|", 3)
            append(
                {
                    "path": directory + name,
                    "is_dir": False,
                    "size": int(size),
                    "modified_at": modified,
                }
            )
        else:
            append({"path": directory + name, "is_dir": True, "size": 0, "modified_at": ""})
    return infos


class _SearchOps(_Layout):
    """ls/glob/grep (sync and async) as operations over the path and directory indexes."""

    # ------------------------------------------------------------------ listing

    def _meta_keys(self, ns: str, paths: list[str]) -> list[bytes]:
        """`_k(ns, "m", p)` of each path, as bytes, built in bulk when no path needs escaping.

        A grep over 1,000 files spent ~1 µs per path encoding its key one by one, and
        redis-py packs bytes faster than str (fs performance pass, issue 13). Encoding is
        per character, so when the concatenated paths encode to themselves every path does;
        then no path holds a newline (it is escaped), which makes it a safe separator.
        """
        head = self._head(ns) + ":m:"
        encode = KeySpace.encode_component
        whole = "".join(paths)
        if encode(whole) == whole:
            return (head + ("\n" + head).join(paths)).encode().split(b"\n")
        return [(head + encode(p)).encode() for p in paths]

    def _candidates(
        self, ns: str, path: str | None, *, paths_only: bool = False
    ) -> _Op[dict[str, str] | None]:
        """Files `_filter_files_by_path(files, normalize(path))` would keep, in path order.

        Maps each path to its summary `size|expire_at|encoding|modified_at` (with
        `paths_only`: to '' for every indexed path, expired ones included). None when the
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
            is_exact, cursor, entries = yield from self._list_page(
                ns, exact, prefix, cursor, paths_only=paths_only
            )
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
        entries: dict[str, str] = {}
        cursor = "0"
        for _ in range(_LS_CALLS):
            reply = yield Script(_LS, keys, [directory, str(_PURGE_BATCH), cursor, str(_LS_PAGE)])
            if _s(reply[0]) == "PURGE":
                yield from self._purge(ns, [_s(p) for p in reply[1]])
                continue  # the same page again: HSCAN keeps every entry not removed
            entries.update(_pairs(reply[1], reply[3]))  # a name HSCAN repeats is kept once
            cursor = _s(reply[2])
            if cursor == "0":
                return LsResult(entries=_ls_infos(directory, entries))
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
        try:
            files = {p: {"modified_at": s.split("|", 3)[3]} for p, s in summaries.items()}
        except IndexError as exc:
            raise _bad_summary(exc) from exc
        try:
            result = _glob_search_files(files, pattern, path)
        except InvalidGlobPatternError as exc:
            return GlobResult(error=str(exc))
        if result == "No files found":
            return GlobResult(matches=[])
        infos: list[FileInfo] = []
        for p in result.split("\n"):
            size, _expire, _enc, modified = summaries.get(p, "0|0||").split("|", 3)
            try:
                bytes_ = int(size)
            except ValueError as exc:
                raise _bad_summary(exc) from exc
            infos.append({"path": p, "is_dir": False, "size": bytes_, "modified_at": modified})
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
        if max_count is not None:
            if not isinstance(max_count, int | float):
                return GrepResult(error=f"Error: max_count must be a number, got {max_count!r}")
            max_count = _match_cap(max_count)
        ns = self.resolve_namespace()
        # Paths only: the GREP script itself skips binary files and files whose metadata
        # is gone (expired), and bounds its work by content bytes, so the listing needs no
        # summaries (a 1,000-file grep spent ~40% of its Redis time fetching them).
        listed = yield from self._candidates(ns, path, paths_only=True)
        if listed is None:
            return GrepResult(matches=[])
        normalized = _normalize_path(path)
        names = list(listed)
        if glob:
            try:
                matcher = compile_grep_include_glob(glob)
            except InvalidGlobPatternError as exc:
                return GrepResult(error=str(exc))
            names = [p for p in names if matcher(_relative_to_root(p, normalized))]
        try:
            needle = pattern.encode("utf-8")
        except UnicodeEncodeError:  # stored text is valid unicode: it cannot contain this
            return GrepResult(matches=[])
        limits = [str(_GREP_BYTES), str(_SEARCH_WORK), str(_GREP_LINES)]
        matches: list[GrepMatch] = []
        i = 0
        while i < len(names):
            batch = names[i : i + _GREP_FILES]
            budget = -1 if max_count is None else max_count - len(matches)
            keys = self._meta_keys(ns, batch)
            reply = yield Script(_GREP, keys, [needle, str(budget), *limits])
            mark = len(matches)
            undecodable: set[str] = set()
            for j in range(1, len(reply), 3):
                p = batch[int(reply[j]) - 1]
                raw = reply[j + 2]
                try:
                    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
                except UnicodeDecodeError:
                    undecodable.add(p)
                    continue
                matches.append({"path": p, "line": int(reply[j + 1]), "text": text})
            if undecodable:
                # the batch again without them: their matches counted against the script's
                # budget, so it may have stopped short of later files (left unsearched, the
                # grep answered complete with their matches missing)
                del matches[mark:]
                names[i:] = [p for p in names[i:] if p not in undecodable]
                _skipped(undecodable)
                continue
            if max_count is not None and len(matches) > max_count:
                return GrepResult(matches=matches[:max_count], truncated=True)
            stop = int(reply[0])
            if stop == 0:
                i += len(batch)
                continue
            if stop < 0:  # the content budget ran out before file -stop: resume there
                i += -stop - 1
                continue
            # a chunked or spilled file, or one too costly to search in Redis (see
            # _SEARCH_WORK, _GREP_LINES): stream it here, then carry on after it
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
        dropped and the new version is searched from the start. Content that is not UTF-8
        (another program's) skips the file with a warning, its matches dropped; but once
        `max_count` is reached the rest is not read (deepagents' FilesystemBackend stops
        there too), so bytes past that point are not seen and the matches before stand.
        """
        mark = len(matches)
        for _ in range(_TORN_RETRIES):
            if not meta or _s(meta.get("e", b"utf-8")) == "base64":
                return False
            del matches[mark:]
            decoder = codecs.getincrementaldecoder("utf-8")()
            # The pieces of the line still open at the end of the last batch. Kept as a
            # list and joined once the line ends: `carry + text` every batch copied the open
            # line again each time, quadratic in a long line (a 8 MB one-line file with
            # 4 KiB chunks: 1.3 s of copying; 32 MB about 20 s).
            carry: list[str] = []
            line_num = 0
            complete = True
            n = _field_int(meta, "n")
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
                try:
                    text = decoder.decode(piece)
                except UnicodeDecodeError:
                    del matches[mark:]
                    _skipped((path,))
                    return False
                if "\n" not in text:
                    carry.append(text)
                    continue
                parts = ("".join(carry) + text).split("\n")
                carry = [parts.pop()]
                for line in parts:
                    line_num += 1
                    if pattern in line:
                        if max_count is not None and len(matches) >= max_count:
                            return True
                        matches.append({"path": path, "line": line_num, "text": line})
            if not complete:
                meta = _meta_dict((yield Command(("HGETALL", self._k(ns, "m", path)))))
                continue
            try:
                last = "".join(carry) + decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                del matches[mark:]
                _skipped((path,))
                return False
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
        try:
            content = got[1].decode("utf-8")
        except UnicodeDecodeError:
            _skipped((path,))
            return False
        for line_num, line in enumerate(content.split("\n"), 1):
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
        in pipelined batches and matching stops at `max_count`. A file whose content is not
        UTF-8 (written by another program, or damaged) is skipped with a warning, as a read
        refuses it; a chunked file's bytes after the `max_count`-th match are not read.

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
