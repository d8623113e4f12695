"""Progress for long CLI commands: a redrawn bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

__all__ = ["progress_bar"]


def progress_bar(label: str, stream: TextIO | None = None) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback: a redrawn bar on a terminal, else plain lines.

    Args:
        label: Shown before the bar.
        stream: Where to draw (default: ``sys.stderr``).

    Returns:
        The callback; it ends the line when ``done == total``.
    """
    out = stream or sys.stderr
    if not getattr(out, "isatty", lambda: False)():
        # Not a terminal (a log file, CI): a redrawn bar would be one long line of \r
        # frames. Print a plain line at each tenth instead.
        shown = -1

        def log(done: int, total: int) -> None:
            nonlocal shown
            tenth = 10 if total == 0 else 10 * done // total
            if tenth > shown or done >= total:
                shown = tenth
                out.write(f"{label}: {done}/{total}\n")
                out.flush()

        return log

    def draw(done: int, total: int) -> None:
        width = 30
        filled = width if total == 0 else width * done // total
        out.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            out.write("\n")
        out.flush()

    return draw
