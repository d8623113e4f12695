"""Path rules: which file paths `RedisBackend` accepts, and how a path maps onto directories.

deepagents' middleware hands backends paths that went through
`deepagents.backends.utils.validate_path` (absolute, normalized, no `..`). `StoreBackend`
trusts that and stores any string as a key. We are stricter for file paths because the
backend is also called directly (CLI copy, other processes): a file path must already be
in that canonical form, so two spellings can never name two different files, and it must
fit in a Redis key. Listing paths (`ls`, `glob`, `grep`, `delete`) are lookups only and
follow `StoreBackend`'s prefix rules exactly.
"""

from __future__ import annotations

from functools import lru_cache

from deepagents.backends.utils import validate_path

__all__ = [
    "MAX_PATH_BYTES",
    "MAX_PATH_DEPTH",
    "directory_entries",
    "file_path_error",
    "invalid_path_message",
    "listing_dir",
    "listing_path_error",
    "new_file_path_error",
    "text_error",
]


MAX_PATH_BYTES = 4096
"""Longest accepted file path, in UTF-8 bytes (Linux PATH_MAX)."""

MAX_PATH_DEPTH = 64
"""Most directories a file `write`/`upload_files` creates may sit in (the root not counted)."""


# Answers for recently seen short paths (a pure function of the string): the checks below
# (deepagents' validate_path builds pathlib objects) were ~3 µs of a ~100 µs 4 KB read.
# Bounded in count and in path length, so hostile paths cannot grow it.
_CACHED_PATH_CHARS = 512
_CACHED_PATHS = 4096


def file_path_error(path: object) -> str | None:
    """Say why `path` is not an acceptable file path, or return None when it is.

    Args:
        path: The caller's path.

    Returns:
        A human readable reason, or None for a valid canonical absolute path.
    """
    if type(path) is str and len(path) <= _CACHED_PATH_CHARS:
        return _cached_file_path_error(path)
    return _file_path_error(path)


@lru_cache(maxsize=_CACHED_PATHS)
def _cached_file_path_error(path: str) -> str | None:
    return _file_path_error(path)


def _file_path_error(path: object) -> str | None:
    if not isinstance(path, str):
        return f"path must be a string, got {type(path).__name__}"
    if not path.startswith("/"):
        return "path must be absolute (start with '/')"
    if "\x00" in path:
        return "path contains a NUL character"
    reason = text_error(path, "path")
    if reason is not None:
        return reason
    size = len(path.encode("utf-8"))
    if size > MAX_PATH_BYTES:
        return f"path is {size} bytes long, over the limit of {MAX_PATH_BYTES}"
    if path.endswith("/"):
        return "path names a directory, not a file"
    if "//" in path:
        return "path contains an empty component ('//')"
    try:
        canonical = validate_path(path)
    except ValueError as exc:
        return str(exc)
    if canonical != path:
        return f"path is not normalized (did you mean {canonical!r}?)"
    return None


def new_file_path_error(path: object) -> str | None:
    """`file_path_error`, plus the depth limit of a path a write may create, or None.

    Every directory above a file is a hash in Redis whose key holds the directory's whole
    path, so a path's key names grow with the square of its depth: one 4,096-byte path of
    2,047 one-letter directories (`/a/a/.../f`) took 4.7 MB of Redis memory in 2,048 keys
    and held the server for 49 ms in its write script. At `MAX_PATH_DEPTH` directories a
    file costs at most ~170 KB of key names and ~1 ms of script. Only writes refuse a
    deeper path: files stored before the limit stay readable, editable and deletable.

    Args:
        path: The caller's path.

    Returns:
        A human readable reason, or None for a path a write may create.
    """
    reason = file_path_error(path)
    if reason is None:
        assert isinstance(path, str)
        depth = path.count("/") - 1  # the directories above the file, the root not counted
        if depth > MAX_PATH_DEPTH:
            return f"path is {depth} directories deep, over the limit of {MAX_PATH_DEPTH}"
    return reason


def text_error(value: object, what: str) -> str | None:
    """Say why `value` is not Unicode text Redis can store (a lone surrogate), or None.

    A model's JSON escape for U+D800 decodes to a lone surrogate: a Python `str` with no
    UTF-8 form, which no Redis key or argument can carry.

    Args:
        value: A path, glob or pattern from the caller.
        what: What it is, for the message (`path`, `pattern`, `glob`).

    Returns:
        A human readable reason, or None.
    """
    if not isinstance(value, str):
        return f"{what} must be a string, got {type(value).__name__}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"{what} is not valid unicode text (lone surrogate at index {exc.start})"
    return None


def listing_path_error(path: object) -> str | None:
    """Say why `path` cannot name a directory or prefix to list, or None when it can.

    `ls`, `glob(path=)`, `grep(path=)` and `delete` follow `StoreBackend`'s prefix rules,
    which accept any text; we refuse only what no key can hold or no file path can contain
    (a lone surrogate, a NUL, more than `MAX_PATH_BYTES`), so every method checks its path
    arguments here, before anything is sent.

    Args:
        path: The caller's path.

    Returns:
        A human readable reason, or None.
    """
    reason = text_error(path, "path")
    if reason is not None:
        return reason
    assert isinstance(path, str)
    if "\x00" in path:
        return "path contains a NUL character"
    if len(path) > MAX_PATH_BYTES // 4 and len(path.encode("utf-8")) > MAX_PATH_BYTES:
        return f"path is over the limit of {MAX_PATH_BYTES} bytes"
    return None


def invalid_path_message(path: object, reason: str) -> str:
    """The error text returned for a rejected path."""
    return f"Error: Invalid path {path!r}: {reason}"


def directory_entries(path: str) -> list[tuple[str, str]]:
    """The (directory, field) pairs under which `path` appears in directory indexes.

    Mirrors `StoreBackend.ls`: a key `K` is listed by every directory `K[: i + 1]` where
    `K[i] == '/'`. In its parent it appears as a file (field = basename); in every other
    ancestor as the sub-directory leading to it (field = `name + '/'`). Parent first.

    Args:
        path: A canonical file path.

    Returns:
        Pairs ordered from the parent directory up to the root.
    """
    out: list[tuple[str, str]] = []
    slashes = [i for i, ch in enumerate(path) if ch == "/"]
    last = slashes[-1]
    out.append((path[: last + 1], path[last + 1 :]))
    for pos, nxt in zip(reversed(slashes[:-1]), reversed(slashes[1:]), strict=True):
        out.append((path[: pos + 1], path[pos + 1 : nxt] + "/"))
    return out


def listing_dir(path: str) -> str:
    """The directory `ls(path)` lists: `path` with exactly one trailing slash added if absent."""
    return path if path.endswith("/") else path + "/"
