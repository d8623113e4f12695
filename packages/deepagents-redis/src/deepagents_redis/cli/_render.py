"""Tables for the CLI, drawn by rich: styled on a terminal, plain aligned text elsewhere.

Every cell is a `rich.text.Text`, never a markup string: names come from users and agents,
and a thread called ``[bold]x[/]`` must print as exactly that. Off a terminal (a pipe, a log
file, a test's captured stdout) there is no colour and no control code, the console is wide
enough that a row never wraps, and trailing padding is stripped, so ``grep`` and ``diff`` see
the same lines a person does.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterable, Sequence
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "PLAIN_WIDTH",
    "console",
    "is_terminal",
    "print_table",
    "printable",
    "table_lines",
]


PLAIN_WIDTH = 1000
"""Columns of a non-terminal console: wide enough that log lines never wrap."""


# Control characters (C0 but newline, DEL, C1) and the bidi overrides that reorder what a
# terminal shows. Names, thread ids and errors come from anyone who can write to Redis; rich
# keeps ESC, so a thread id holding "\x1b]0;...\x07" or "\x1b[2J" reached the operator's
# terminal as a command (retitle, clear, OSC 52 clipboard writes on some terminals).
_UNPRINTABLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    r"""`text` with control characters shown as escapes (``\x1b``), newlines kept.

    Args:
        text: Data to print (a name, an id, an error message).

    Returns:
        The text, safe to write to a terminal.
    """
    return _UNPRINTABLE.sub(
        lambda m: (
            f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}"
        ),
        text,
    )


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal (False for files, pipes and test captures)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed file
        return False


def console(stream: TextIO | None = None) -> Console:
    """A rich console on `stream` (default: the current ``sys.stdout``).

    Markup, emoji codes and highlighting are off whatever the stream: output is data.
    Off a terminal there is no colour and the width is `PLAIN_WIDTH`.

    Args:
        stream: Where to print.

    Returns:
        The console.
    """
    out = stream if stream is not None else sys.stdout
    if is_terminal(out):
        return Console(file=out, markup=False, emoji=False, highlight=False)
    return Console(
        file=out,
        width=PLAIN_WIDTH,
        force_terminal=False,
        no_color=True,
        color_system=None,
        markup=False,
        emoji=False,
        highlight=False,
    )


def _table(columns: Sequence[str], rows: Iterable[Sequence[object]], *, header: bool) -> Table:
    # box=None, 1-cell padding and no edge padding: columns two spaces apart, like `ls -l`.
    table = Table(box=None, show_header=header, header_style="bold", pad_edge=False)
    for name in columns:
        table.add_column(Text(name))
    for row in rows:
        table.add_row(
            *(
                Text(printable(cell.plain), style=cell.style)
                if isinstance(cell, Text)
                else Text(printable(str(cell)))
                for cell in row
            )
        )
    return table


def table_lines(
    columns: Sequence[str], rows: Iterable[Sequence[object]], *, header: bool = True
) -> list[str]:
    """A table as plain lines (no colour, trailing padding stripped).

    Args:
        columns: Column titles.
        rows: One sequence of cells per row; a cell is printed as ``str(cell)`` (a
            `rich.text.Text` as it is), and may hold newlines.
        header: Print the titles as a first line.

    Returns:
        The lines.
    """
    buffer = io.StringIO()
    console(buffer).print(_table(columns, rows, header=header))
    return [line.rstrip() for line in buffer.getvalue().splitlines()]


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    header: bool = True,
    stream: TextIO | None = None,
) -> None:
    """Print a table on `stream` (default: the current ``sys.stdout``).

    On a terminal rich draws it (bold titles, cells wrapped to the window); elsewhere it is
    `table_lines`.

    Args:
        columns: Column titles.
        rows: One sequence of cells per row (see `table_lines`).
        header: Print the titles as a first line.
        stream: Where to print.
    """
    out = stream if stream is not None else sys.stdout
    if is_terminal(out):
        console(out).print(_table(columns, rows, header=header))
        return
    for line in table_lines(columns, rows, header=header):
        out.write(line + "\n")
    out.flush()
