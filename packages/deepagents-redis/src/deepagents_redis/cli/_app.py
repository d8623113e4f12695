"""Builds the argument parser and dispatches to subcommand modules.

Adding a subcommand (phase helpers: this is your extension point):

1. Write ``cli/_<name>.py`` with ``register(subparsers) -> None`` that adds a parser via
   ``subparsers.add_parser(...)`` and sets ``handler=<callable(args) -> int>`` with
   ``parser.set_defaults(handler=...)``. The handler returns an exit status from
   `deepagents_redis.cli._exit`.
2. Add the module's dotted name to `COMMAND_MODULES` below (one line).

A module whose phase package is not installed should import it lazily inside its handler
and say which extra to install, so ``--help`` works with only the core installed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from deepagents_redis.cli._exit import (
    EXIT_INTERRUPTED,
    EXIT_PROBLEM,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    UnreachableError,
)

__all__ = [
    "COMMAND_MODULES",
    "build_parser",
    "main",
    "reference",
    "versions",
]


COMMAND_MODULES: list[str] = [
    "deepagents_redis.cli._health",
    "deepagents_redis.cli._migrate",
    "deepagents_redis.cli._demo",
    "deepagents_redis.cli._todos",
    "deepagents_redis.cli._fs",
    "deepagents_redis.cli._coord",
    "deepagents_redis.cli._checkpoint",
    # phase helpers: add "deepagents_redis.cli._todos", "deepagents_redis.cli._fs", ... here
]
"""Dotted names of the modules whose ``register(subparsers)`` adds a subcommand."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit with ``EX_USAGE`` (64), not 2.

    argparse exits 2 on a usage error, which would collide with our "unreachable" status.
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


_DISTRIBUTIONS = (
    "deepagents-redis",
    "deepagents-redis-core",
    "deepagents-redis-cache",
    "deepagents-redis-todos",
    "deepagents-redis-fs",
    "deepagents-redis-coord",
    "deepagents-redis-checkpoint",
    "deepagents-redis-observe",
    "deepagents",
    "redis",
)

# A phase package the CLI imports lazily -> the extra that installs it.
_PHASE_EXTRAS = {
    "deepagents_redis.cache": "cache",
    "deepagents_redis.todos": "todos",
    "deepagents_redis.fs": "fs",
    "deepagents_redis.coord": "coord",
    "deepagents_redis.checkpoint": "checkpoint",
    "deepagents_redis.observe": "observe",
}


def versions() -> str:
    """The installed versions of our distributions and the libraries we plug into.

    Returns:
        One ``name version`` per line (``not installed`` for a phase you did not install).
    """
    from importlib.metadata import PackageNotFoundError, version

    lines = []
    for name in _DISTRIBUTIONS:
        try:
            lines.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            lines.append(f"{name} not installed")
    return "\n".join(lines)


class _Versions(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        print(versions())
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``deepagents-redis`` parser with every registered subcommand.

    Returns:
        The parser; each subcommand sets a ``handler`` default.
    """
    parser = _Parser(
        prog="deepagents-redis",
        description="Health checks, migrations, demos, workers and tasks for deepagents-redis.",
        epilog=(
            "Exit status: 0 ok; 1 the command found a problem; 2 Redis (or another server "
            "the command needs) is unreachable; 64 usage or configuration error; "
            "130 interrupted. Each command has its own --help."
        ),
    )
    parser.add_argument(
        "--version",
        action=_Versions,
        nargs=0,
        help="Print the installed versions of deepagents-redis and its phases, then exit.",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="More log output (-v: info, -vv: debug).",
    )
    verbosity.add_argument(
        "-q", "--quiet", action="store_true", help="Only errors in the log output."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit status (see `deepagents_redis.cli._exit`).
    """
    from deepagents_redis.core import (
        ConfigurationError,
        DeepAgentsRedisError,
        RedisUnavailableError,
    )

    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    handler: Callable[[Any], int] = args.handler
    try:
        return handler(args)
    except ModuleNotFoundError as exc:
        extra = _PHASE_EXTRAS.get(exc.name or "")
        if extra is None:
            raise
        print(
            f"error: this command needs the {extra} phase, which is not installed: "
            f"pip install 'deepagents-redis[{extra}]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except RedisUnavailableError as exc:
        print(f"error: Redis is unreachable: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except UnreachableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ConfigurationError as exc:
        # A bad DEEPAGENTS_REDIS_* value is said under the variable's name, not the field's
        # ("invalid CoordSettings: lease_seconds"), as create_deep_agent says it.
        from deepagents_redis.agent._env import env_named_any

        print(f"error: {env_named_any(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except DeepAgentsRedisError as exc:
        # e.g. CapabilityError: the server lacks a command. A message, not a traceback.
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        # Ctrl-C in a long command (fs copy, todos backfill): one line, not a traceback.
        # Commands that run until Ctrl-C (worker, events tail, health --serve) handle it.
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _configure_logging(verbose: int, quiet: bool) -> None:
    """Warnings by default; ``-v`` info, ``-vv`` debug, ``-q`` errors only (on stderr)."""
    import logging

    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO)[min(verbose, 1)]
    if verbose >= 2:
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("deepagents_redis").setLevel(level)


def reference() -> str:
    """The CLI reference page (Markdown), generated from the parser itself.

    `docs/cli.md` is this text; a test fails when the two differ, so the page never
    drifts from the commands (regenerate with ``python -m deepagents_redis.cli.reference``).

    Returns:
        The page.
    """
    import os

    parser = build_parser()
    sections = [
        "# Command line reference",
        "",
        "Generated from the parser (`deepagents_redis.cli.reference()`); every command and",
        "option below is what `deepagents-redis` accepts. Exit status: 0 ok, 1 a problem was",
        "found, 2 Redis (or another server the command needs) is unreachable, 64 usage or",
        "configuration error, 130 interrupted (Ctrl-C).",
    ]

    def walk(prog: str, p: argparse.ArgumentParser) -> None:
        sections.extend(["", f"## `{prog}`", "", "```text", p.format_help().rstrip(), "```"])
        for action in p._actions:  # argparse has no public accessor for subcommands
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(f"{prog} {name}", child)

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # stable wrapping whatever the terminal
    try:
        walk("deepagents-redis", parser)
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(sections) + "\n"
