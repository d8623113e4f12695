"""``deepagents-redis health``: print core's HealthReport as a table.

Exit status: 0 when the server answered (warnings are printed but do not fail unless
``--strict``), 1 with ``--strict`` and at least one warning, 2 when Redis is unreachable.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from deepagents_redis.cli._exit import EXIT_OK, EXIT_PROBLEM
from deepagents_redis.cli._table import format_table
from deepagents_redis.cli._target import add_target_arguments, resolve_target


def register(subparsers: Any) -> None:
    """Add the ``health`` subcommand."""
    parser = subparsers.add_parser(
        "health",
        help="Check the server: latency, version, mode, persistence, eviction, durability.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_arguments(parser)
    parser.add_argument(
        "--strict",
        action="store_true",
        help="Exit 1 when the report has warnings (for readiness probes and CI).",
    )
    parser.set_defaults(handler=run)


def report_rows(report: Any) -> list[tuple[str, str]]:
    """Turn a HealthReport into ``(field, value)`` rows, warnings last.

    Args:
        report: A :class:`deepagents_redis.core.HealthReport`.

    Returns:
        One row per field, in declaration order.
    """
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        values = {f.name: getattr(report, f.name) for f in dataclasses.fields(report)}
    else:  # a pydantic model
        values = dict(report.model_dump())
    warnings = values.pop("warnings", ())
    rows = [(name, _format_value(value)) for name, value in values.items()]
    rows.append(("warnings", "\n".join(str(w) for w in warnings) if warnings else "none"))
    return rows


def _format_value(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return "\n".join(f"{k}: {_format_value(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(_format_value(v) for v in value) or "-"
    return str(getattr(value, "value", value))


def run(args: argparse.Namespace) -> int:
    """Run the health check and print the report.

    Args:
        args: Parsed arguments (``url``, ``prefix``, ``strict``).

    Returns:
        The exit status.
    """
    from deepagents_redis.core import RedisConnector, check_health

    with resolve_target(args, allow_embedded=False) as target:
        print(f"target: {target.describe()}")
        connector = RedisConnector(settings=target.settings)
        try:
            report = check_health(connector.sync())
        finally:
            connector.close()
    print(format_table(report_rows(report), headers=("check", "result")))
    if args.strict and report.warnings:
        return EXIT_PROBLEM
    return EXIT_OK
