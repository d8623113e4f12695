"""Progress for long CLI commands: a rich progress bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from deepagents_redis.cli._render import is_terminal

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(label: str, stream: TextIO | None = None) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback for the block: a bar on a terminal, else lines.

    On a terminal it is a `rich.progress.Progress` (bar, count, time left), stopped when the
    block exits, also on an error. Anywhere else (a log file, CI) a redrawn bar would be one
    long line of carriage-return frames, so a plain ``label: done/total`` line is printed at each
    tenth and at the end.

    Args:
        label: Shown before the bar.
        stream: Where to draw (default: the current ``sys.stderr``).

    Yields:
        The callback.
    """
    out = stream if stream is not None else sys.stderr
    if not is_terminal(out):
        yield _plain_lines(label, out)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(file=out, markup=False, emoji=False, highlight=False),
    )
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield update


def _plain_lines(label: str, out: TextIO) -> Callable[[int, int], None]:
    shown = -1

    def log(done: int, total: int) -> None:
        nonlocal shown
        tenth = 10 if total == 0 else 10 * done // total
        if tenth > shown or done >= total:
            shown = tenth
            out.write(f"{label}: {done}/{total}\n")
            out.flush()

    return log
