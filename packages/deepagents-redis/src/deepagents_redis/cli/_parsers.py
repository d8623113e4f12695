"""How every subcommand module declares its parsers (one shape, not seven copies).

A command's `--help` shows its module docstring verbatim (`RawDescriptionHelpFormatter`
keeps its line breaks), so that docstring is written for users: plain text, no markup, no
notes for developers (those go on the functions and constants). A command with actions
(`todos reconcile`, `fs copy`...) requires one: `deepagents-redis todos` alone is a usage
error (exit 64), not a silent no-op.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

__all__ = ["add_actions", "add_command", "grace_seconds", "nonempty"]


def add_command(subparsers: Any, name: str, *, help: str, doc: str | None) -> Any:
    """Add the subcommand `name`, its description the module docstring `doc`.

    Args:
        subparsers: The top-level parser's subparsers.
        name: The command's name.
        help: One line for `deepagents-redis --help`.
        doc: The description shown by `deepagents-redis NAME --help` (usually the module
            docstring; plain text for users).

    Returns:
        The command's parser.
    """
    return subparsers.add_parser(
        name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_actions(parser: Any, *, dest: str = "action", metavar: str = "ACTION") -> Any:
    """Give `parser` required sub-actions (the sub-parsers inherit its exit-64 class).

    Args:
        parser: A command's parser.
        dest: Where the chosen action's name is stored.
        metavar: How the action is shown in usage lines.

    Returns:
        The sub-parsers, to `add_parser` each action on.
    """
    actions = parser.add_subparsers(dest=dest, metavar=metavar, parser_class=type(parser))
    actions.required = True
    return actions


def nonempty(text: str) -> str:
    """An option value that must not be empty (`--url`, `--namespace`): else exit 64.

    Read as "not given", an empty value chose for the user: `--url "$STAGING_URL"` with the
    variable unset ran against $DEEPAGENTS_REDIS_URL (or the demo's embedded server), and
    `--namespace ""` against the namespace 'default'.
    """
    if not text:
        raise argparse.ArgumentTypeError("must not be empty (leave the option out instead)")
    return text


def grace_seconds(text: str) -> float:
    """A grace period (`worker --grace`, `fs gc --orphan-grace`): seconds, finite, >= 0.

    Anything else is exit 64. A negative grace handed every run back the moment a worker
    stopped, and moved gc's cutoff into the future (it deleted blobs a writer had uploaded
    and not yet committed); NaN and infinity reached the worker's waits, and NaN made gc
    silently delete nothing.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the grace must be a finite number of seconds, at least 0"
        )
    return value
