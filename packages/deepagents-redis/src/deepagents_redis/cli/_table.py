"""Plain-text tables for terminal output (no dependency on rich/tabulate)."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(rows: Sequence[tuple[str, str]], *, headers: tuple[str, str]) -> str:
    """Render two-column rows as an aligned text table.

    Args:
        rows: ``(name, value)`` pairs; values may span several lines.
        headers: The two column titles.

    Returns:
        The table, without a trailing newline.
    """
    width = max([len(headers[0])] + [len(name) for name, _ in rows])
    lines = [f"{headers[0]:<{width}}  {headers[1]}", f"{'-' * width}  {'-' * len(headers[1])}"]
    for name, value in rows:
        parts = str(value).splitlines() or [""]
        lines.append(f"{name:<{width}}  {parts[0]}")
        lines.extend(f"{'':<{width}}  {part}" for part in parts[1:])
    return "\n".join(lines)
