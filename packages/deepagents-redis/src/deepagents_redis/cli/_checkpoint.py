"""Move LangGraph threads between checkpointers: PostgreSQL, SQLite and Redis.

'copy --from SOURCE [--to TARGET]' copies threads (every checkpoint of every namespace, and
their pending writes) from one checkpointer to another. Each side is 'redis' (the server of
--url or $DEEPAGENTS_REDIS_URL, in the namespace --namespace), sqlite:PATH, or a
postgresql:// URL; --to defaults to redis. So moving to Redis is
'copy --from postgresql://...' and back is 'copy --from redis --to postgresql://...'.

A copy is idempotent (run it twice, the target holds the same) and resumable (threads
already complete in the target are skipped; one cut off half-way is copied again). A thread
the target refuses (an id or a value it cannot hold) is named with the reason and the copy
goes on with the others; the exit status is then 1. It shows progress on stderr; --json
prints the report as one JSON object instead.
'threads' lists the threads of the Redis namespace. URLs are never printed.

Exit status: 0 success; 1 some threads were refused (the others were copied); 2 Redis or
the PostgreSQL server is unreachable; 64 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from deepagents_redis.cli._checkpointers import (
    is_sql_uri,
    open_checkpointer,
    require_checkpoint_table,
)
from deepagents_redis.cli._exit import EXIT_OK, EXIT_PROBLEM
from deepagents_redis.cli._parsers import add_actions, add_command, nonempty
from deepagents_redis.cli._target import add_target_arguments, connect

__all__ = ["register", "run_copy", "run_threads"]

_HINT = "deepagents-redis-checkpoint"


def register(subparsers: Any) -> None:
    """Add the ``checkpoint`` subcommand with ``copy``, ``threads`` and ``sweep``."""
    parser = add_command(
        subparsers,
        "checkpoint",
        help="Copy LangGraph threads between PostgreSQL, SQLite and Redis checkpointers.",
        doc=__doc__,
    )
    actions = add_actions(parser)

    copy = actions.add_parser(
        "copy", help="Copy threads from one checkpointer to another (idempotent, resumable)."
    )
    add_target_arguments(copy)
    copy.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="SOURCE",
        help="redis, sqlite:PATH or postgresql://... (never printed: it may hold a password).",
    )
    copy.add_argument(
        "--to",
        dest="target",
        default="redis",
        metavar="TARGET",
        help="redis, sqlite:PATH (created if missing) or postgresql://... (default: redis).",
    )
    _add_namespace(copy)
    copy.add_argument(
        "--thread", action="append", default=None, help="Only this thread (repeatable)."
    )
    copy.add_argument(
        "--json",
        action="store_true",
        help="Print the report as one JSON object (and no progress).",
    )
    copy.set_defaults(handler=run_copy)

    threads = actions.add_parser("threads", help="List the threads of the Redis namespace.")
    add_target_arguments(threads)
    _add_namespace(threads)
    threads.add_argument("--json", action="store_true", help="Print the thread ids as a JSON list.")
    threads.set_defaults(handler=run_threads)

    sweep = actions.add_parser(
        "sweep",
        help="Take expired threads off the namespace's thread index (safe while agents run).",
    )
    add_target_arguments(sweep)
    _add_namespace(sweep)
    sweep.add_argument("--json", action="store_true", help="Print the count as JSON.")
    sweep.set_defaults(handler=run_sweep)


def _add_namespace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        type=nonempty,
        default=None,
        help=(
            "Checkpoint namespace in Redis "
            "(default: $DEEPAGENTS_REDIS_CHECKPOINT_NAMESPACE or 'default')."
        ),
    )


def _check_side(value: str, flag: str) -> None:
    from deepagents_redis.core import ConfigurationError

    if value != "redis" and not is_sql_uri(value):
        raise ConfigurationError(f"{flag} must be redis, sqlite:PATH or a postgresql:// URL")


@contextmanager
def _redis_saver(args: argparse.Namespace, announce: bool) -> Iterator[Any]:
    from deepagents_redis.checkpoint import CheckpointSettings, RedisSaver

    options = {"namespace": args.namespace} if args.namespace else {}
    with connect(args, announce=announce) as (_target, connector):
        yield RedisSaver(connector=connector, checkpoint_settings=CheckpointSettings(**options))


@contextmanager
def _open(args: argparse.Namespace, side: str, *, create: bool, announce: bool) -> Iterator[Any]:
    if side == "redis":
        with _redis_saver(args, announce) as saver:
            yield saver
        return
    if not create and side.startswith("sqlite:"):  # a source: read, never set up
        require_checkpoint_table(side)
    with open_checkpointer(side, hint=_HINT, create=create) as saver:
        yield saver


def run_copy(args: argparse.Namespace) -> int:
    """Copy threads between checkpointers.

    Returns:
        The exit status.
    """
    from deepagents_redis.checkpoint import copy_threads
    from deepagents_redis.core import ConfigurationError

    _check_side(args.source, "--from")
    _check_side(args.target, "--to")
    if args.source == args.target:
        raise ConfigurationError("--from and --to name the same checkpointer")
    announce = not args.json
    with (
        _open(args, args.source, create=False, announce=announce) as source,
        _open(
            args, args.target, create=True, announce=announce and args.source != "redis"
        ) as target,
    ):
        if args.json:
            report = copy_threads(source, target, threads=args.thread, progress=None)
        else:
            from deepagents_redis.cli._progress import progress_bar

            with progress_bar("threads") as progress:
                report = copy_threads(source, target, threads=args.thread, progress=progress)
    if args.json:
        print(
            json.dumps(
                {
                    "threads": report.threads,
                    "skipped": report.skipped,
                    "checkpoints": report.checkpoints,
                    "writes": report.writes,
                    "copied": report.copied,
                    "refused": report.refused,
                }
            )
        )
    else:
        print(
            f"copied {report.threads} thread(s) ({report.checkpoints} checkpoints, "
            f"{report.writes} pending writes); {report.skipped} already complete in the target"
        )
        for thread, reason in report.refused.items():
            print(f"refused thread {thread!r}: {reason}")
    return EXIT_PROBLEM if report.refused else EXIT_OK


def run_threads(args: argparse.Namespace) -> int:
    """List the threads of the Redis namespace.

    Returns:
        The exit status.
    """
    with _redis_saver(args, announce=not args.json) as saver:
        threads = list(saver.threads())
    if args.json:
        print(json.dumps(threads))
    else:
        from deepagents_redis.cli._render import printable

        for thread in threads:
            print(printable(thread))  # thread ids are the application's (its users') choice
        print(f"{len(threads)} thread(s)")
    return EXIT_OK


def run_sweep(args: argparse.Namespace) -> int:
    """Take threads that no longer exist (their TTL ran out) off the thread index.

    Returns:
        The exit status.
    """
    with _redis_saver(args, announce=not args.json) as saver:
        removed = saver.sweep_threads()
    if args.json:
        print(json.dumps({"removed": removed}))
    else:
        print(f"took {removed} expired thread(s) off the index")
    return EXIT_OK
