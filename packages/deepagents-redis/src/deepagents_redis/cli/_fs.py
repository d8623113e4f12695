"""Agent files: copy a file tree between backends, collect orphaned blobs.

A backend (SRC, DST, REDIS_SPEC) is one of:

  redis://host:port/db#namespace   a Redis file tree (also rediss://, unix:// and
                                   redis+sentinel://); without #namespace, the namespace
                                   'default'. The key prefix comes from --prefix or
                                   $DEEPAGENTS_REDIS_KEY_PREFIX.
  redis:#namespace                 the same on the server of $DEEPAGENTS_REDIS_URL (use
                                   this form for a namespace that contains '@').
  dir:/some/path or a plain path   a directory: /a.txt is /some/path/a.txt. A path that
                                   starts like a URL (name:...) is refused: write
                                   ./name:... or dir:name:...

'copy' shows progress on stderr and a summary at the end; --json prints the report as one
JSON object. URLs are printed with their password redacted; write a '#' inside a password
as %23 (a spec with a '#' before an '@' is refused: it could be either).

For example:

  deepagents-redis fs copy ./workspace redis://localhost:6379/0#team-a
  deepagents-redis fs copy redis://old:6379/0#team-a redis://new:6379/0#team-a
  deepagents-redis fs copy redis:#team-a ./backup --path /reports
  deepagents-redis fs gc redis:#team-a --blob-dir /var/lib/dar-blobs

Exit status: 0 success; 1 some files failed to copy; 2 Redis is unreachable; 64 usage or
configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from deepagents_redis.cli._exit import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE
from deepagents_redis.cli._parsers import add_actions, add_command, grace_seconds

__all__ = [
    "check_spec",
    "describe",
    "open_backend",
    "register",
    "run_copy",
    "run_gc",
]


_REDIS_SCHEMES = (
    "redis://",
    "rediss://",
    "unix://",
    "redis+sentinel://",
    "rediss+sentinel://",
    "redis:#",
)
# A spec that starts like a URL (a scheme of two or more characters: 'C:' is a drive) but is
# none of ours. It was read as a relative directory and created: 'redis:team-a' (the '#'
# forgotten), a Sentinel URL, 'Redis://...' all became folders in the working directory,
# the files were copied there and the command exited 0.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")
# The variable RedisBackend.from_settings reads: agents and this command find the same blobs.
_BLOB_DIR_ENV = "DEEPAGENTS_REDIS_FS_BLOB_DIR"


def register(subparsers: Any) -> None:
    """Add the ``fs`` subcommand group (``copy``, ``gc``)."""
    parser = add_command(
        subparsers,
        "fs",
        help="Agent filesystem tools: copy between backends, blob GC.",
        doc=__doc__,
    )
    sub = add_actions(parser, dest="fs_command", metavar="FS_COMMAND")

    copy = sub.add_parser("copy", help="Copy every file (or a sub-tree) from SRC to DST.")
    copy.add_argument("src", metavar="SRC", help="Source backend spec.")
    copy.add_argument("dst", metavar="DST", help="Destination backend spec.")
    copy.add_argument(
        "--path", type=_tree_path, default="/", help="Sub-tree to copy (default: %(default)s)."
    )
    copy.add_argument(
        "--batch", type=int, default=100, help="Files per batch (default: %(default)s)."
    )
    _add_redis_options(copy)
    copy.add_argument(
        "--json",
        action="store_true",
        help="Print the report as one JSON object on stdout (progress stays on stderr).",
    )
    copy.set_defaults(handler=run_copy)

    gc = sub.add_parser("gc", help="Delete blobs no live file references.")
    gc.add_argument("target", metavar="REDIS_SPEC", help="redis://...#namespace")
    _add_redis_options(gc)
    gc.add_argument(
        "--orphan-grace",
        type=grace_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="Never delete unreferenced blobs younger than this (default: %(default)g).",
    )
    gc.add_argument("--json", action="store_true", help="Print the result as one JSON object.")
    gc.set_defaults(handler=run_gc)


def _tree_path(text: str) -> str:
    """`--path`: a path inside the tree; `..` and `~` are usage errors (exit 64).

    A directory source refused them with a traceback (deepagents' `ValueError: Path
    traversal not allowed`, exit 1); say so up front, before anything is opened.
    """
    if "\x00" in text or text.startswith("~") or ".." in text.replace("\\", "/").split("/"):
        raise argparse.ArgumentTypeError(
            f"{text!r} leaves the file tree: give a path inside it, e.g. /reports"
        )
    return text


def _add_redis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prefix",
        default=None,
        help="Key prefix of Redis backends (default: $DEEPAGENTS_REDIS_KEY_PREFIX or 'dar').",
    )
    parser.add_argument(
        "--blob-dir",
        default=None,
        help=(
            f"Directory of the local blob store of Redis backends (default: ${_BLOB_DIR_ENV}, "
            "else deepagents-redis-blobs in the system temp directory)."
        ),
    )


def _is_redis(spec: str) -> bool:
    return spec.startswith(_REDIS_SCHEMES)


def check_spec(spec: str) -> None:
    """Refuse a spec that looks like a URL but names no backend we open (exit 64).

    Raises:
        ConfigurationError: The spec starts with a scheme that is not ours; the message
            names the scheme only (the rest may hold a password).
    """
    if _is_redis(spec) or spec.startswith("dir:"):
        return
    found = _SCHEME.match(spec)
    if found:
        from deepagents_redis.core import ConfigurationError

        raise ConfigurationError(
            f"a spec starting {found.group(1)[:20]!r}: is not a backend: give "
            "redis://...#NAMESPACE (rediss://, unix://, redis+sentinel://), redis:#NAMESPACE, "
            "dir:PATH or a path (./NAME for a directory whose name has a ':')"
        )


def describe(spec: str) -> str:
    """A spec with any password redacted, for printing."""
    if not _is_redis(spec):
        return spec
    from deepagents_redis.core import redact_text

    return redact_text(spec)


def _split_spec(spec: str) -> tuple[str, str]:
    """Split a Redis spec into its URL and namespace (at the first `#`).

    Raises:
        ConfigurationError: A `#` comes before the URL's last `@`. Core reads a URL's user
            info up to its last `@`, so a raw `#` may be part of the password
            (`redis://:pa#ss@host/0#ns`); split at that `#`, the spec became the URL
            `redis://:pa`, whose parse error printed the password. It may as well be an
            `@` in the namespace: which one is not ours to guess, and the message repeats
            no part of the spec.
    """
    from deepagents_redis.core import ConfigurationError

    url, _, namespace = spec.partition("#")
    if "://" in url and "@" in namespace:
        raise ConfigurationError(
            "a Redis spec has a '#' before an '@', so it is unclear where the URL ends: "
            "write a '#' inside a password as %23; for a namespace that contains '@', set "
            "DEEPAGENTS_REDIS_URL and name it as redis:#NAMESPACE"
        )
    return url, namespace


@contextmanager
def open_backend(
    spec: str, *, prefix: str | None, blob_dir: str | None, create_dir: bool
) -> Iterator[Any]:
    """Open the backend a spec names; Redis clients are closed on exit.

    Args:
        spec: A backend spec (see the module docstring).
        prefix: Redis key prefix override.
        blob_dir: Blob directory for Redis backends.
        create_dir: Create a missing directory (destinations) instead of failing.

    Yields:
        The backend.

    Raises:
        ConfigurationError: A bad spec (missing directory, no URL for ``redis:#ns``).
    """
    from deepagents_redis.core import ConfigurationError

    check_spec(spec)
    if _is_redis(spec):
        from deepagents_redis.core import RedisSettings
        from deepagents_redis.fs import RedisBackend

        url, namespace = _split_spec(spec)
        if url == "redis:":
            env_url = os.environ.get("DEEPAGENTS_REDIS_URL")
            if not env_url:
                raise ConfigurationError("redis:#namespace needs DEEPAGENTS_REDIS_URL")
            url = env_url
        overrides: dict[str, Any] = {"url": url}
        if prefix is not None:
            overrides["key_prefix"] = prefix
        backend = RedisBackend(
            settings=RedisSettings(**overrides),
            namespace=namespace or "default",
            blob_dir=blob_dir or os.environ.get(_BLOB_DIR_ENV) or None,
        )
        try:
            yield backend
        finally:
            backend.close()
        return
    from deepagents.backends import FilesystemBackend

    raw = spec.removeprefix("dir:")
    if not raw:
        # Path("") is the current directory: `fs copy "$SRC" ...` with the variable unset
        # (or `dir:` alone) copied the whole working directory, or wrote into it.
        raise ConfigurationError(
            "an empty directory spec: give a path (./ for the current directory)"
        )
    root = Path(raw).expanduser()
    if not root.is_dir():
        if not create_dir:
            raise ConfigurationError(f"{root} is not a directory")
        try:
            root.mkdir(parents=True)
        except OSError as exc:
            # A destination that cannot be created (a read-only or missing mount, a file
            # in the way) was a traceback with exit 1.
            raise ConfigurationError(
                f"cannot create the directory {root}: {exc.strerror or exc}"
            ) from exc
    yield FilesystemBackend(root_dir=root, virtual_mode=True)


def run_copy(args: argparse.Namespace, *, out: Callable[[str], None] = print) -> int:
    """Copy files between two backends.

    Args:
        args: Parsed arguments.
        out: Where lines go.

    Returns:
        The exit status: 0 when every file was copied, 1 when some failed.
    """
    from deepagents_redis.cli._progress import progress_bar
    from deepagents_redis.fs import copy_files

    if args.batch < 1:
        print("error: --batch must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    check_spec(args.src)  # both before anything is opened (or a destination created)
    check_spec(args.dst)
    with ExitStack() as stack:
        src = stack.enter_context(
            open_backend(args.src, prefix=args.prefix, blob_dir=args.blob_dir, create_dir=False)
        )
        # copy_files walks with ls and skips what ls refuses, so a --path that is missing or
        # a file in a directory source copied nothing and exited 0 (a backup script's typo
        # went unnoticed). Checked before the destination is opened (or created).
        listed = src.ls(args.path)
        if listed.error:
            from deepagents_redis.core import ConfigurationError

            raise ConfigurationError(f"--path: nothing to copy from the source: {listed.error}")
        dst = stack.enter_context(
            open_backend(args.dst, prefix=args.prefix, blob_dir=args.blob_dir, create_dir=True)
        )
        progress = stack.enter_context(progress_bar("copy"))
        report = copy_files(src, dst, path=args.path, batch_size=args.batch, progress=progress)
    if getattr(args, "json", False):
        out(
            json.dumps(
                {
                    "source": describe(args.src),
                    "target": describe(args.dst),
                    "copied": len(report.copied),
                    "failed": [{"path": p, "error": e} for p, e in report.failed],
                }
            )
        )
        return EXIT_PROBLEM if report.failed else EXIT_OK
    out(
        f"copied {len(report.copied)} files from {describe(args.src)} to "
        f"{describe(args.dst)} ({len(report.failed)} failed)"
    )
    if report.failed:
        from deepagents_redis.cli._render import table_lines

        for line in table_lines(("failed path", "error"), report.failed):
            out(line)
    return EXIT_PROBLEM if report.failed else EXIT_OK


def run_gc(args: argparse.Namespace, *, out: Callable[[str], None] = print) -> int:
    """Collect blobs of expired or overwritten files in one namespace.

    Args:
        args: Parsed arguments.
        out: Where lines go.

    Returns:
        The exit status.
    """
    if not _is_redis(args.target):
        print("error: fs gc needs a redis://...#namespace spec", file=sys.stderr)
        return EXIT_USAGE
    with open_backend(
        args.target, prefix=args.prefix, blob_dir=args.blob_dir, create_dir=False
    ) as backend:
        removed = backend.gc(orphan_grace=args.orphan_grace)
    if getattr(args, "json", False):
        out(json.dumps({"target": describe(args.target), "removed": removed}))
        return EXIT_OK
    out(f"removed {removed} blobs for {describe(args.target)}")
    return EXIT_OK
