"""The chaos report: JSON, a Markdown table, and one SVG latency plot per pair."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from deepagents_redis_benchmarks.chaos._faults import FAULTS
from deepagents_redis_benchmarks.chaos._runner import Row

__all__ = ["write_report"]

_COLORS = {"ok": "#2e7d32", "miss": "#f9a825"}


def _thinned(samples: list[tuple[float, float, str]], most: int = 400) -> list[Any]:
    """About `most` points per kind: every error, evenly spaced successes and misses."""
    kept: set[int] = set()
    for kind in ("ok", "miss"):
        same = [s for s in samples if s[2] == kind]
        step = max(1, -(-len(same) // most))  # ceil: never more than `most`
        kept.update(id(s) for s in same[::step])
    return [s for s in samples if s[2] not in ("ok", "miss") or id(s) in kept]


def _svg(row: Row) -> str:
    """Latency (log scale, 0.1 ms to 3 s) over time, the fault window shaded."""
    width, height, left, bottom = 520, 170, 44, 22
    end = max((t for t, _, _ in row.samples), default=1.0) or 1.0
    low, high = math.log10(0.1), math.log10(3000)

    def x(t: float) -> float:
        return left + (width - left - 8) * t / end

    def y(ms: float) -> float:
        value = min(max(math.log10(max(ms, 0.1)), low), high)
        return 8 + (height - bottom - 8) * (high - value) / (high - low)

    shade = max(1.0, x(row.window[1]) - x(row.window[0]))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="10">',
        f'<rect x="{x(row.window[0]):.1f}" y="8" width="{shade:.1f}" '
        f'height="{height - bottom - 8}" fill="#ef9a9a" opacity="0.35"/>',
    ]
    for ms in (1, 10, 100, 1000):
        parts.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y(ms):.1f}" y2="{y(ms):.1f}" stroke="#ddd"/>'
            f'<text x="2" y="{y(ms) + 3:.1f}">{ms} ms</text>'
        )
    for t, ms, outcome in _thinned(row.samples):
        color = _COLORS.get(outcome, "#c62828")
        parts.append(f'<circle cx="{x(t):.1f}" cy="{y(ms):.1f}" r="1.6" fill="{color}"/>')
    parts.append(
        f'<text x="{left}" y="{height - 6}">{row.workload} / {row.fault}: latency per operation '
        f"over {end:.1f} s (green ok, thinned; yellow miss; red error; shaded: the fault)"
        "</text></svg>"
    )
    return "\n".join(parts)


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def write_report(
    rows: list[Row], out: Path, *, mode: str, page: str = "chaos.md", heading: str = ""
) -> Path:
    """Write ``chaos.json``, the Markdown page and ``plots/*.svg`` under `out`.

    Args:
        rows: The results.
        out: The directory.
        mode: ``short`` or ``full``.
        page: The Markdown file's name (``index.md`` when publishing to the docs).
        heading: Text put above the table (the docs page's title and context).

    Returns:
        The Markdown file.
    """
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    data = []
    for row in rows:
        (plots / f"{row.workload}-{row.fault}.svg").write_text(_svg(row))
        record = asdict(row)
        record.pop("samples")
        data.append(record)
    (out / "chaos.json").write_text(json.dumps({"mode": mode, "rows": data}, indent=1))
    lines = [
        *([heading, ""] if heading else []),
        f"Mode: {mode}. Each row: a private redis-server (AOF, `appendfsync always`) behind a "
        "fault proxy, or for the failover faults a master with a replica watched by three "
        "Sentinels, or a Cluster of three primaries with a replica each "
        "(`cluster-node-timeout` 1 s); the workload runs before, during and after the fault "
        "(a failover's window lasts until a replica is promoted and serving), then retries "
        "each failed operation once and checks every acknowledged one.",
        "",
        "| workload | fault | ops | acknowledged | lost | duplicated | outcomes "
        "| retried ok / still failing | p50 / p99 ms before | during | after | window s "
        "| recovery s | plot |",
        "|---|---|---:|---:|---:|---:|---|---|---|---|---|---:|---:|---|",
    ]
    for row in rows:
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(row.outcomes.items()))
        lat = row.latency_ms
        phases = [
            f"{_ms(lat[p]['p50'])} / {_ms(lat[p]['p99'])}" for p in ("before", "during", "after")
        ]
        recovery = "-" if row.recovery_s is None else f"{row.recovery_s:.2f}"
        cells = [
            row.workload,
            row.fault,
            row.ops,
            row.acked,
            row.lost,
            row.duplicates,
            outcomes,
            f"{row.retried_ok} / {row.still_failed}",
            *phases,
            f"{row.window[1] - row.window[0]:.2f}",
            recovery,
            f"[svg](plots/{row.workload}-{row.fault}.svg)",
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += ["", "Faults:", ""] + [f"- `{f.name}`: {f.description}" for f in FAULTS.values()]
    path = out / page
    path.write_text("\n".join(lines) + "\n")
    return path
