"""Checking each item and target of the model against the evidence."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from deepagents_redis_benchmarks.readiness._evidence import HistoryRun, TestCase
from deepagents_redis_benchmarks.readiness._model import Item, Model, Target, format_value

__all__ = [
    "MET",
    "MISSED",
    "NO_EVIDENCE",
    "OPEN",
    "Evaluation",
    "ItemResult",
    "TargetResult",
    "evaluate",
]

MET, MISSED, NO_EVIDENCE, OPEN = "met", "missed", "no evidence", "open"

REPO = "https://github.com/deepagents-redis/deepagents-redis/tree/main"
"""Where evidence paths link to (the docs' other pages link there too)."""


@dataclass(frozen=True)
class TargetResult:
    """A target checked against the latest run that measured its row.

    Attributes:
        target: The target.
        status: ``met``, ``missed`` or ``no evidence``.
        value: The measured value (worst of the matching rows), or None.
        run: The run it came from, or None.
        trend: ``(date, commit, value)`` of every recorded run that measured it, oldest first.
    """

    target: Target
    status: str
    value: float | None
    run: HistoryRun | None
    trend: list[tuple[str, str, float]] = field(default_factory=list)

    @property
    def value_text(self) -> str:
        """The value formatted for a page (``-`` when not measured)."""
        return "-" if self.value is None else format_value(self.target.metric, self.value)


@dataclass(frozen=True)
class ItemResult:
    """A checklist item checked against its evidence.

    Attributes:
        phase: The phase id.
        item: The item.
        status: ``met``, ``missed``, ``no evidence`` or ``open`` (a manual item not done).
        detail: What was seen, in words.
        link: Where the evidence is (a docs-relative page or a repository URL), or None.
    """

    phase: str
    item: Item
    status: str
    detail: str
    link: str | None


@dataclass(frozen=True)
class Evaluation:
    """Everything the pages show.

    Attributes:
        items: Every item's result, in model order.
        targets: Every target's result, in file order.
        tests: Junit totals (``passed``, ``failed``, ``skipped``), or None without a junit.
        runs: The benchmark history, oldest first.
    """

    items: list[ItemResult]
    targets: list[TargetResult]
    tests: dict[str, int] | None
    runs: list[HistoryRun]

    def phase_items(self, phase: str) -> list[ItemResult]:
        """The results of one phase's items."""
        return [r for r in self.items if r.phase == phase]


def _row_value(target: Target, row: dict[str, Any]) -> float | None:
    if target.metric == "ratio":
        return row.get("ratio")
    if target.metric in ("median", "p99"):
        return float(row["ours"][target.metric])
    match = re.search(target.pattern or "", row.get("notes") or "")
    return float(match.group(1).replace(",", "")) if match else None


def _value_in(target: Target, run: HistoryRun) -> float | None:
    values = []
    for row in run.results:
        if row.get("suite") != target.suite or not fnmatchcase(row.get("name", ""), target.row):
            continue
        if target.baseline is not None and not fnmatchcase(
            row.get("baseline") or "", target.baseline
        ):
            continue
        value = _row_value(target, row)
        if value is not None:
            values.append(value)
    if not values:
        return None
    # The worst matching row decides: the largest against an upper bound, else the smallest.
    return max(values) if target.max is not None else min(values)


def _check(target: Target, value: float) -> bool:
    return (target.max is None or value <= target.max) and (
        target.min is None or value >= target.min
    )


def evaluate_target(target: Target, runs: list[HistoryRun]) -> TargetResult:
    """Check one target against the latest run that measured it; collect its trend."""
    trend = []
    latest: tuple[HistoryRun, float] | None = None
    for run in runs:
        value = _value_in(target, run)
        if value is not None:
            trend.append((run.date, run.commit, value))
            latest = (run, value)
    if latest is None:
        return TargetResult(target, NO_EVIDENCE, None, None, trend)
    run, value = latest
    return TargetResult(target, MET if _check(target, value) else MISSED, value, run, trend)


def _tests_item(phase: str, item: Item, cases: list[TestCase] | None) -> ItemResult:
    opts = item.evidence.options
    link = f"{REPO}/{opts['paths'][0]}"
    if cases is None:
        return ItemResult(phase, item, NO_EVIDENCE, "no junit results given to this run", link)
    prefixes = [p.strip("/").replace("/", ".") for p in opts["paths"]]
    match = opts.get("match", [])
    run = opts.get("run", "")
    chosen = [
        c
        for c in cases
        if any(c.module == p or c.module.startswith(p + ".") for p in prefixes)
        and (not match or any(m in c.id for m in match))
        and run in c.run
    ]
    passed = sum(c.outcome == "passed" for c in chosen)
    failed = [c for c in chosen if c.outcome == "failed"]
    skipped = sum(c.outcome == "skipped" for c in chosen)
    least = int(opts.get("min", 1))
    detail = f"{passed} passed, {len(failed)} failed, {skipped} skipped"
    if failed:
        names = ", ".join(c.name for c in failed[:3])
        return ItemResult(phase, item, MISSED, f"{detail} (failed: {names})", link)
    if passed < least:
        status = NO_EVIDENCE if not chosen else MISSED
        return ItemResult(phase, item, status, f"{detail}; needs at least {least} passing", link)
    return ItemResult(phase, item, MET, detail, link)


def _targets_item(phase: str, item: Item, results: list[TargetResult]) -> ItemResult:
    ids = item.evidence.options.get("ids")
    wanted = item.evidence.options.get("phase")
    mine = [r for r in results if (r.target.id in ids if ids else r.target.phase == wanted)]
    met = [r for r in mine if r.status == MET]
    missed = [r for r in mine if r.status == MISSED]
    unmeasured = [r for r in mine if r.status == NO_EVIDENCE]
    parts = [f"{len(met)} of {len(mine)} met"]
    if missed:
        parts.append(
            "missed: "
            + ", ".join(f"{r.target.id} {r.value_text} ({r.target.bound_text()})" for r in missed)
        )
    if unmeasured:
        parts.append("not measured: " + ", ".join(r.target.id for r in unmeasured))
    status = MISSED if missed else NO_EVIDENCE if unmeasured else MET
    return ItemResult(phase, item, status, "; ".join(parts), f"#targets-{phase}")


def _chaos_item(
    phase: str, item: Item, rows: list[dict[str, Any]] | None, faults: tuple[str, ...]
) -> ItemResult:
    opts = item.evidence.options
    link = "../chaos/index.md"
    if rows is None:
        return ItemResult(phase, item, NO_EVIDENCE, "no chaos report given", link)
    mine = {r["fault"]: r for r in rows if r.get("workload") == opts["workload"]}
    wanted = tuple(opts.get("faults", faults))
    absent = [f for f in wanted if f not in mine]
    bad = [
        f"{f}: {r['lost']} lost, {r['duplicates']} doubled"
        for f, r in mine.items()
        if r["lost"] or r["duplicates"]
    ]
    acked = sum(int(r.get("acked", 0)) for r in mine.values())
    if bad:
        return ItemResult(phase, item, MISSED, "; ".join(bad), link)
    if absent:
        return ItemResult(phase, item, NO_EVIDENCE, f"faults not run: {', '.join(absent)}", link)
    return ItemResult(
        phase,
        item,
        MET,
        f"{len(wanted)} faults, {acked:,} acknowledged operations, none lost or doubled",
        link,
    )


def _docs_item(phase: str, item: Item, root: Path) -> ItemResult:
    opts = item.evidence.options
    page = opts["page"]
    link = "../" + page.removeprefix("docs/") if page.startswith("docs/") else f"{REPO}/{page}"
    path = root / page
    if not path.is_file():
        return ItemResult(phase, item, MISSED, f"{page} does not exist", link)
    text = path.read_text()
    absent = [s for s in opts.get("contains", []) if s not in text]
    if absent:
        return ItemResult(
            phase, item, MISSED, f"{page} lacks {', '.join(repr(s) for s in absent)}", link
        )
    return ItemResult(phase, item, MET, f"{page} present", link)


def evaluate(
    model: Model,
    *,
    root: Path,
    cases: list[TestCase] | None,
    runs: list[HistoryRun],
    chaos: list[dict[str, Any]] | None,
) -> Evaluation:
    """Check every target and item.

    Args:
        model: The readiness model with its targets.
        root: The repository root (docs pages are read from it).
        cases: Junit testcases, or None when this run has no test results.
        runs: The benchmark history, oldest first.
        chaos: The chaos report's rows, or None.
    """
    targets = [evaluate_target(t, runs) for t in model.targets]
    items: list[ItemResult] = []
    for phase in model.phases:
        for item in phase.items:
            kind = item.evidence.kind
            if kind == "tests":
                items.append(_tests_item(phase.id, item, cases))
            elif kind == "targets":
                items.append(_targets_item(phase.id, item, targets))
            elif kind == "chaos":
                items.append(_chaos_item(phase.id, item, chaos, model.faults))
            elif kind == "docs":
                items.append(_docs_item(phase.id, item, root))
            else:  # manual
                opts = item.evidence.options
                status = MET if opts["status"] == "met" else OPEN
                detail = f"{opts.get('note', '')} ({opts.get('date', 'undated')})"
                items.append(ItemResult(phase.id, item, status, detail, None))
    totals = None
    if cases is not None:
        totals = {k: sum(c.outcome == k for c in cases) for k in ("passed", "failed", "skipped")}
    return Evaluation(items, targets, totals, runs)
