"""Compare todo plans in Redis with LangGraph checkpoints; backfill Redis from them.

'reconcile' compares each thread's latest checkpoint with its Redis plan and prints the
drift: missing (no plan in Redis), behind (Redis is older), diverged, or lagging (normal
while an agent runs). --repair writes the checkpoint's todos to Redis for missing and behind
plans.

'backfill' copies every thread's checkpoint todos into Redis where Redis has no plan yet. It
is idempotent (safe to run twice, and next to live agents); --dry-run only counts. Both show
progress on stderr and a summary at the end; --json prints the report as one JSON object.

--checkpointer is sqlite:PATH (sqlite:///abs/path also works; the file must exist and hold
LangGraph checkpoints) or a postgresql:// URL (needs the postgres extra: pip install
'deepagents-redis-todos[postgres]'). Plans are looked up by thread id, the scope the todo
middleware uses by default.

Exit status: 0 success (reconcile: no drift that needs attention is left); 1 drift left or
plans that could not be read (reconcile: it reports them and goes on to the next thread) or
threads that failed (backfill); 2 Redis or the PostgreSQL checkpointer is
unreachable; 64 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from deepagents_redis.cli._checkpointers import open_checkpointer as _open
from deepagents_redis.cli._checkpointers import require_checkpoint_table
from deepagents_redis.cli._exit import EXIT_OK, EXIT_PROBLEM
from deepagents_redis.cli._parsers import add_actions, add_command
from deepagents_redis.cli._target import add_target_arguments, resolve_target

__all__ = [
    "open_checkpointer",
    "register",
    "run_backfill",
    "run_reconcile",
]


_INSTALL_TODOS = (
    "the todos commands need deepagents-redis-todos: pip install 'deepagents-redis[todos]'"
)


def register(subparsers: Any) -> None:
    """Add the ``todos`` subcommand with ``reconcile`` and ``backfill``."""
    parser = add_command(
        subparsers,
        "todos",
        help="Reconcile todo plans with checkpoints; backfill Redis from checkpoints.",
        doc=__doc__,
    )
    actions = add_actions(parser)

    reconcile = actions.add_parser(
        "reconcile", help="Compare each thread's latest checkpoint with its Redis plan."
    )
    add_target_arguments(reconcile)
    _add_checkpointer_argument(reconcile)
    reconcile.add_argument(
        "--repair",
        action="store_true",
        help="Write the checkpoint's todos to Redis for 'missing' and 'behind' plans.",
    )
    reconcile.add_argument(
        "--thread", action="append", default=None, help="Only this thread (repeatable)."
    )
    _add_json_argument(reconcile)
    reconcile.set_defaults(handler=run_reconcile)

    backfill = actions.add_parser("backfill", help="Copy checkpoint todos into Redis (idempotent).")
    add_target_arguments(backfill)
    _add_checkpointer_argument(backfill)
    backfill.add_argument(
        "--dry-run", action="store_true", help="Write nothing; report what would be written."
    )
    _add_json_argument(backfill)
    backfill.set_defaults(handler=run_backfill)


def _add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="Print the report as one JSON object on stdout (progress stays on stderr).",
    )


def _add_checkpointer_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpointer",
        required=True,
        metavar="URI",
        help="sqlite:PATH or postgresql://... (never printed: it may hold a password).",
    )


def open_checkpointer(uri: str) -> Any:
    """Open the checkpointer a URI names (``sqlite:PATH`` or ``postgresql://``); a context.

    See `deepagents_redis.cli._checkpointers.open_checkpointer`.

    Raises:
        ConfigurationError: A SQLite file without LangGraph's checkpoint table.
    """
    if uri.startswith("sqlite:"):
        require_checkpoint_table(uri)
    return _open(uri, hint="deepagents-redis-todos")


def _repository(target: Any) -> Any:
    try:
        from deepagents_redis.todos import RedisTodoRepository
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        from deepagents_redis.core import ConfigurationError

        raise ConfigurationError(_INSTALL_TODOS) from exc
    return RedisTodoRepository(settings=target.settings, actor="cli")


def run_reconcile(args: argparse.Namespace) -> int:
    """Compare plans with checkpoints; repair on request.

    Args:
        args: Parsed arguments.

    Returns:
        0 when no alert-kind drift is left, 1 otherwise.
    """
    from deepagents_redis.cli._progress import progress_bar
    from deepagents_redis.cli._render import print_table
    from deepagents_redis.todos import TodoReconciler

    with resolve_target(args, allow_embedded=False) as target:
        if not args.json:
            print(f"target: {target.describe()}")
        described = target.describe()
        repo = _repository(target)
        try:
            with (
                open_checkpointer(args.checkpointer) as saver,
                progress_bar("reconcile") as progress,
            ):
                report = TodoReconciler(repo, saver).reconcile(
                    repair=args.repair, thread_ids=args.thread, progress=progress
                )
        finally:
            repo.close()
    left = [d for d in report.alerts if not d.repaired]
    if args.json:
        print(
            json.dumps(
                {
                    "target": described,
                    "checked": report.checked,
                    "in_sync": report.in_sync,
                    "counts": report.counts(),
                    "repaired": report.repaired,
                    "drifts": [
                        {
                            "kind": d.kind,
                            "thread_id": d.thread_id,
                            "checkpoint_version": d.checkpoint_version,
                            "redis_version": d.redis_version,
                            "repaired": d.repaired,
                            "error": d.error,
                        }
                        for d in report.drifts
                    ],
                    "unreadable": [
                        {"thread_id": thread, "error": why} for thread, why in report.unreadable
                    ],
                    "status": "attention" if left or report.unreadable else "ok",
                }
            )
        )
        return EXIT_PROBLEM if left or report.unreadable else EXIT_OK
    if report.drifts:
        print_table(
            ("drift", "thread", "checkpoint", "redis", "state"),
            [
                (
                    drift.kind,
                    drift.thread_id,
                    f"{_version(drift.checkpoint_version)} ({len(drift.checkpoint_todos)} items)",
                    f"v{drift.redis_version} ({len(drift.redis_todos)} items)",
                    "repaired"
                    if drift.repaired
                    else (f"repair failed: {drift.error}" if drift.error else "-"),
                )
                for drift in report.drifts
            ],
        )
    counts = report.counts()
    print(
        f"checked {report.checked} thread(s) with todos: {report.in_sync} in sync, "
        f"missing {counts['missing']}, behind {counts['behind']}, diverged {counts['diverged']}, "
        f"lagging {counts['lagging']} (normal), repaired {report.repaired}"
    )
    for thread, why in report.unreadable:
        print(f"unreadable plan: thread {thread}: {why}")
    if left or report.unreadable:
        hint = "" if args.repair else "; rerun with --repair to fix missing/behind plans"
        if not left:  # only unreadable plans: --repair does not touch bytes it cannot read
            hint = "; an unreadable plan's key holds bytes this package did not write"
        print(f"status: {len(left) + len(report.unreadable)} plan(s) need attention{hint}")
        return EXIT_PROBLEM
    print("status: ok")
    return EXIT_OK


def _version(version: int | None) -> str:
    # None: the checkpoint was written without the Redis middleware, so it has no version.
    return "unversioned" if version is None else f"v{version}"


def run_backfill(args: argparse.Namespace) -> int:
    """Copy checkpoint todos into Redis.

    Args:
        args: Parsed arguments.

    Returns:
        0 on success, 1 when some threads failed.
    """
    from deepagents_redis.cli._progress import progress_bar
    from deepagents_redis.cli._render import print_table
    from deepagents_redis.todos import TodoBackfill

    with resolve_target(args, allow_embedded=False) as target:
        if not args.json:
            print(f"target: {target.describe()}")
        described = target.describe()
        repo = _repository(target)
        try:
            with (
                open_checkpointer(args.checkpointer) as saver,
                progress_bar("backfill") as progress,
            ):
                report = TodoBackfill(repo, saver).run(dry_run=args.dry_run, progress=progress)
        finally:
            repo.close()
    if args.json:
        print(
            json.dumps(
                {
                    "target": described,
                    "dry_run": args.dry_run,
                    "threads": report.threads,
                    "with_todos": report.with_todos,
                    "written": report.written,
                    "already_present": report.already_present,
                    "failed": [{"thread_id": t, "error": e} for t, e in report.failed],
                }
            )
        )
        return EXIT_PROBLEM if report.failed else EXIT_OK
    if report.failed:
        print_table(("failed thread", "error"), report.failed)
    print(("dry run: " if args.dry_run else "") + report.summary())
    return EXIT_PROBLEM if report.failed else EXIT_OK
