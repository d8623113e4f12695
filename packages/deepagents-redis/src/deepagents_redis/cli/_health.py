"""Check a Redis server: latency, version, mode, persistence, eviction and durability.

Prints the report as a table, then a verdict for each phase (cache, todos, fs, coord,
checkpoint): an allkeys-* eviction policy fails todos, fs, coord and checkpoint, whose data
has no TTL, and is fine for the cache. --json prints the same as one JSON object; --serve
answers /livez and /readyz for an orchestrator instead of checking once.

Exit status: 0 the server answered and can serve (warnings are printed but do not fail
without --strict); 1 the report is not ok (on Cluster: cluster_state is not ok or some hash
slots are not served), a phase fails on this server (choose the phases with --phase), or
--strict is given and there is at least one warning; 2 Redis is unreachable; 64 usage or
configuration error (no URL, bad credentials).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import Any

from deepagents_redis.cli._exit import EXIT_OK, EXIT_PROBLEM
from deepagents_redis.cli._parsers import add_command
from deepagents_redis.cli._target import add_target_arguments, connect

__all__ = [
    "register",
    "run",
]


def register(subparsers: Any) -> None:
    """Add the ``health`` subcommand."""
    parser = add_command(
        subparsers,
        "health",
        help="Check the server: latency, version, mode, persistence, eviction, durability.",
        doc=__doc__,
    )
    add_target_arguments(parser)
    parser.add_argument(
        "--strict",
        action="store_true",
        help="Exit 1 when the report has warnings (for readiness probes and CI).",
    )
    parser.add_argument(
        "--phase",
        action="append",
        choices=["cache", "todos", "fs", "coord", "checkpoint"],
        default=None,
        help=(
            "Judge the server for this phase (repeatable; default: every installed phase). "
            "An allkeys-* eviction policy fails todos, fs, coord and checkpoint, whose data has no "
            "TTL, and is fine for the cache."
        ),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="Print the report as one JSON object (target, report, verdict) instead of a table.",
    )
    parser.add_argument(
        "--serve",
        metavar="HOST:PORT",
        default=None,
        help=(
            "Serve /livez and /readyz on HOST:PORT for an orchestrator instead of checking "
            "once (readiness: 200 or 503 with a JSON body; --phase and --strict apply)."
        ),
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the health check and print the report.

    Args:
        args: Parsed arguments (``url``, ``prefix``, ``strict``).

    Returns:
        The exit status.
    """
    from deepagents_redis.core import check_health, deadline, phase_verdicts

    if args.serve:
        return _serve(args)
    with connect(args, announce=not args.json) as (target, connector):
        # One budget for the whole check: connecting (and Cluster detection) included.
        with deadline(target.settings.deadline_seconds):
            report = check_health(connector.client(), deadline_seconds=None)
        described = target.describe()
    phases = phase_verdicts(report, args.phase or _installed_phases())
    failing = [p.phase for p in phases if p.verdict == "fail"]
    warned = [p.phase for p in phases if p.verdict == "warn"]
    if not report.ok:
        verdict, status = "failed", EXIT_PROBLEM
        summary = "health: FAILED (the server answered but cannot serve every key)"
    elif failing:
        verdict, status = "failed", EXIT_PROBLEM
        summary = f"health: FAILED for {', '.join(failing)} (see the phase verdicts)"
    elif args.strict and (report.warnings or warned):
        verdict, status = "warnings", EXIT_PROBLEM
        summary = f"health: {len(report.warnings) + len(warned)} warning(s) and --strict"
    else:
        verdict, status = "ok", EXIT_OK
        summary = "health: ok" + (
            f" with {len(report.warnings)} warning(s)" if report.warnings else ""
        )
    if args.json:
        print(
            json.dumps(
                {
                    "target": described,
                    "verdict": verdict,
                    "report": report.to_dict(),
                    "phases": {p.phase: {"verdict": p.verdict, "reason": p.reason} for p in phases},
                },
                sort_keys=True,
            )
        )
        return status
    from deepagents_redis.cli._render import print_table

    print_table(("check", "result"), report.to_rows(), header=False)
    print()
    print_table(
        ("phase", "verdict", "reason"), [(p.phase, p.verdict.upper(), p.reason) for p in phases]
    )
    print(summary)
    return status


def _installed_phases() -> list[str]:
    """The phases whose package is installed (the ones this server has to suit)."""
    import importlib.util

    return [
        name
        for name in ("cache", "todos", "fs", "coord", "checkpoint")
        if importlib.util.find_spec(f"deepagents_redis.{name}") is not None
    ]


def _serve(args: argparse.Namespace) -> int:
    """Serve the probes until interrupted (Ctrl-C or SIGTERM from the orchestrator)."""
    from deepagents_redis.core import ConfigurationError, serve_health

    host, sep, port = str(args.serve).rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigurationError(
            f"--serve takes HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:8080, "
            f"not {args.serve!r}"
        )
    phases = args.phase or _installed_phases()
    bound = False

    def ready(_server: Any) -> None:
        # Announced once the socket is bound: before, the line was printed and then the
        # bind failed with a traceback.
        nonlocal bound
        bound = True
        print(
            f"serving /livez and /readyz on http://{host}:{port} (phases: {', '.join(phases)})",
            flush=True,
        )

    with connect(args) as (target, connector):
        try:
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends serving, not an error
                serve_health(
                    connector,
                    host,
                    int(port),
                    phases=phases,
                    strict=args.strict,
                    deadline_seconds=target.settings.deadline_seconds,
                    ready=ready,
                )
        except OSError as exc:
            if bound:
                raise
            # Address in use, a host that does not resolve or is not ours: one line, exit 64
            # (a port an orchestrator restart still holds is the common case).
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise ConfigurationError(f"--serve cannot listen on {host}:{port}: {reason}") from exc
    return EXIT_OK
