"""The readiness model and the targets file, loaded and checked before anything is evaluated.

Both files are TOML in ``benchmarks/`` (``readiness.toml``, ``targets.toml``); their headers
document every field. A mistake in either (an unknown evidence kind, a target without a bound,
an item pointing at a target phase that has none) is a `ReadinessModelError`: generation breaks
loudly, while a missed target never does.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "GA_HEADINGS",
    "Evidence",
    "Item",
    "Model",
    "Phase",
    "ReadinessModelError",
    "Target",
    "load_model",
    "load_targets",
]

GA_HEADINGS = {
    "tests": "Tests",
    "docs": "Docs",
    "runbook": "Runbook",
    "alerts": "Alerts",
    "benchmarks": "Benchmarks within targets",
    "oncall": "On-call notes",
}
"""The GA checklist's headings, in page order; every item's ``ga`` is one of these keys."""

_KINDS = {"tests", "targets", "chaos", "docs", "manual"}
_METRICS = {"ratio", "median", "p99", "notes"}


class ReadinessModelError(ValueError):
    """``readiness.toml`` or ``targets.toml`` is malformed (the message names the entry)."""


@dataclass(frozen=True)
class Target:
    """One performance target: a number of one benchmark row and its bound.

    Attributes:
        id: Stable name, ``<phase>.<what>``.
        phase: The phase it belongs to.
        what: The target in words (shown on the pages).
        source: Where the number comes from (the brief's section, an issue).
        suite: The benchmark suite of the row.
        row: Shell-style pattern of the row's operation name.
        baseline: Shell-style pattern of the row's baseline, or None for any.
        metric: ``ratio``, ``median``, ``p99`` or ``notes``.
        max: Upper bound (met when the value is at most this), or None.
        min: Lower bound (met when the value is at least this), or None.
        pattern: For ``notes``: the regex whose first group is the value.
    """

    id: str
    phase: str
    what: str
    source: str
    suite: str
    row: str
    baseline: str | None
    metric: str
    max: float | None = None
    min: float | None = None
    pattern: str | None = None

    def bound_text(self) -> str:
        """The bound as shown on the pages, e.g. ``<= 1.2x`` or ``<= 15.0 µs``."""
        parts = []
        if self.max is not None:
            parts.append(f"<= {format_value(self.metric, self.max)}")
        if self.min is not None:
            parts.append(f">= {format_value(self.metric, self.min)}")
        return ", ".join(parts)


def format_value(metric: str, value: float) -> str:
    """A metric's value for a page: ratios as ``1.23x``, times in µs/ms/s, counts plain."""
    if metric == "ratio":
        return f"{value:.2f}x"
    if metric in ("median", "p99"):
        if value < 1e-3:
            return f"{value * 1e6:.1f} µs"
        if value < 1:
            return f"{value * 1e3:.2f} ms"
        return f"{value:.2f} s"
    return f"{value:g}"


@dataclass(frozen=True)
class Evidence:
    """What an item is checked against (see ``readiness.toml``'s header).

    Attributes:
        kind: ``tests``, ``targets``, ``chaos``, ``docs`` or ``manual``.
        options: The kind's own fields (``paths``, ``match``, ``page``, ...).
    """

    kind: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Item:
    """One checklist item of a phase.

    Attributes:
        id: Stable name within the phase.
        title: What must be true, in words.
        ga: The GA checklist heading it belongs under.
        evidence: How it is checked.
    """

    id: str
    title: str
    ga: str
    evidence: Evidence


@dataclass(frozen=True)
class Phase:
    """A phase of the product and its checklist.

    Attributes:
        id: ``core``, ``cache``, ...
        title: Shown on the pages.
        page: Its docs page, relative to ``docs/``.
        items: Its checklist, in page order.
    """

    id: str
    title: str
    page: str
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Model:
    """The whole readiness model.

    Attributes:
        phases: Every phase, in page order.
        faults: The chaos faults a ``chaos`` item needs (unless it names its own).
        targets: Every performance target.
    """

    phases: tuple[Phase, ...]
    faults: tuple[str, ...]
    targets: tuple[Target, ...]


def _require(entry: dict[str, Any], key: str, where: str) -> Any:
    if key not in entry:
        raise ReadinessModelError(f"{where}: missing {key!r}")
    return entry[key]


def load_targets(path: Path) -> tuple[Target, ...]:
    """Load and check ``targets.toml``.

    Raises:
        ReadinessModelError: An entry lacks a field, has an unknown metric, no bound, a
            ``notes`` metric without a valid ``pattern``, or a duplicate id.
    """
    data = tomllib.loads(path.read_text())
    targets: list[Target] = []
    for n, entry in enumerate(data.get("target", []), start=1):
        where = f"{path.name} target #{n} ({entry.get('id', '?')})"
        metric = _require(entry, "metric", where)
        if metric not in _METRICS:
            raise ReadinessModelError(
                f"{where}: metric {metric!r} is not one of {sorted(_METRICS)}"
            )
        if entry.get("max") is None and entry.get("min") is None:
            raise ReadinessModelError(f"{where}: needs a bound (max or min)")
        pattern = entry.get("pattern")
        if metric == "notes":
            if not pattern:
                raise ReadinessModelError(f"{where}: metric 'notes' needs a pattern")
            try:
                if re.compile(pattern).groups < 1:
                    raise ReadinessModelError(f"{where}: pattern needs one group")
            except re.error as exc:
                raise ReadinessModelError(f"{where}: bad pattern: {exc}") from exc
        targets.append(
            Target(
                id=_require(entry, "id", where),
                phase=_require(entry, "phase", where),
                what=_require(entry, "what", where),
                source=_require(entry, "source", where),
                suite=_require(entry, "suite", where),
                row=_require(entry, "row", where),
                baseline=entry.get("baseline"),
                metric=metric,
                max=entry.get("max"),
                min=entry.get("min"),
                pattern=pattern,
            )
        )
    ids = [t.id for t in targets]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ReadinessModelError(f"{path.name}: duplicate target ids {duplicates}")
    return tuple(targets)


def _evidence(entry: dict[str, Any], where: str, target_phases: set[str]) -> Evidence:
    options = dict(_require(entry, "evidence", where))
    kind = options.pop("kind", None)
    if kind not in _KINDS:
        raise ReadinessModelError(f"{where}: evidence kind {kind!r} is not one of {sorted(_KINDS)}")
    needs = {"tests": ("paths",), "chaos": ("workload",), "docs": ("page",), "manual": ("status",)}
    for key in needs.get(kind, ()):
        _require(options, key, f"{where} evidence")
    if kind == "targets" and "ids" not in options:
        phase = _require(options, "phase", f"{where} evidence")
        if phase not in target_phases:
            raise ReadinessModelError(f"{where}: targets.toml has no target of phase {phase!r}")
    if kind == "manual" and options["status"] not in ("met", "open"):
        raise ReadinessModelError(f"{where}: manual status must be 'met' or 'open'")
    return Evidence(kind=kind, options=options)


def load_model(path: Path, targets_path: Path) -> Model:
    """Load and check ``readiness.toml`` together with the targets it refers to.

    Raises:
        ReadinessModelError: Anything malformed, naming the phase and item.
    """
    targets = load_targets(targets_path)
    target_ids = {t.id for t in targets}
    target_phases = {t.phase for t in targets}
    data = tomllib.loads(path.read_text())
    phases: list[Phase] = []
    for entry in _require(data, "phase", path.name):
        pid = _require(entry, "id", f"{path.name} phase")
        items: list[Item] = []
        for item in _require(entry, "item", f"phase {pid}"):
            where = f"phase {pid} item {item.get('id', '?')}"
            ga = _require(item, "ga", where)
            if ga not in GA_HEADINGS:
                raise ReadinessModelError(f"{where}: ga {ga!r} is not one of {list(GA_HEADINGS)}")
            evidence = _evidence(item, where, target_phases)
            unknown = set(evidence.options.get("ids", ())) - target_ids
            if unknown:
                raise ReadinessModelError(f"{where}: unknown target ids {sorted(unknown)}")
            items.append(
                Item(_require(item, "id", where), _require(item, "title", where), ga, evidence)
            )
        phases.append(
            Phase(pid, _require(entry, "title", pid), _require(entry, "page", pid), tuple(items))
        )
    return Model(phases=tuple(phases), faults=tuple(data.get("faults", ())), targets=targets)
