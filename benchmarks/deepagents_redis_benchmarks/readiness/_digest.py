"""The status digest: what changed since the last one, as a dated page plus its snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deepagents_redis_benchmarks.readiness._evaluate import MET, MISSED, Evaluation
from deepagents_redis_benchmarks.readiness._evidence import Commit
from deepagents_redis_benchmarks.readiness._model import Model
from deepagents_redis_benchmarks.readiness._pages import GENERATED, phase_state

__all__ = ["digest_index", "digest_page", "phase_of", "previous_snapshot", "snapshot"]

_FOLDERS = {"deepagents-redis": "agent"}


def phase_of(path: str) -> str:
    """Which part of the project a changed file belongs to (a phase, or benchmarks, docs, ...)."""
    parts = path.split("/")
    if parts[0] == "packages" and len(parts) > 1:
        return _FOLDERS.get(parts[1], parts[1])
    if parts[0] in ("benchmarks", "docs"):
        return parts[0]
    if parts[0] == "tests":
        return "cross-phase tests"
    if parts[0] in (".ci", ".github", "scripts"):
        return "ci"
    return "project"


def _short(subject: str, most: int = 90) -> str:
    return subject if len(subject) <= most else subject[: most - 1].rstrip() + "…"


def snapshot(evaluation: Evaluation, *, commit: str, date: str) -> dict[str, Any]:
    """The state the next digest compares against."""
    return {
        "commit": commit,
        "date": date,
        "tests": evaluation.tests,
        "items": {f"{r.phase}/{r.item.id}": r.status for r in evaluation.items},
        "targets": {
            r.target.id: {"status": r.status, "value": r.value} for r in evaluation.targets
        },
    }


def previous_snapshot(folder: Path, date: str) -> dict[str, Any] | None:
    """The newest snapshot in `folder` dated before `date` (a same-day rerun replaces its own)."""
    older = sorted(p for p in folder.glob("*.json") if p.stem < date) if folder.is_dir() else []
    return json.loads(older[-1].read_text()) if older else None


def digest_page(
    model: Model,
    evaluation: Evaluation,
    *,
    previous: dict[str, Any] | None,
    commits: list[Commit],
    commit: str,
    date: str,
) -> str:
    """The digest for `date`: commits per phase, readiness deltas, targets, open risks."""
    since = (
        f"since the last digest ({previous['date']}, `{previous['commit']}`)"
        if previous
        else "the first digest, so the latest commits are listed"
    )
    out = [GENERATED, f"# Status digest {date}", "", f"At `{commit}`; {since}.", ""]

    out += ["## Commits per phase", ""]
    by_phase: dict[str, list[Commit]] = {}
    for c in commits:
        for phase in sorted({phase_of(f) for f in c.files}) or ["project"]:
            by_phase.setdefault(phase, []).append(c)
    if by_phase:
        out += ["| part | commits | latest |", "|---|---:|---|"]
        for phase, mine in sorted(by_phase.items(), key=lambda kv: -len(kv[1])):
            latest = "; ".join(f"`{c.short}` {_short(c.subject)}" for c in mine[:3])
            out.append(f"| {phase} | {len(mine)} | {latest} |")
    else:
        out.append("No commits.")

    out += ["", "## Readiness", "", "| phase | now | items changed |", "|---|---|---|"]
    before = (previous or {}).get("items", {})
    for phase in model.phases:
        results = evaluation.phase_items(phase.id)
        changed = [
            f"{r.item.title}: {before[f'{phase.id}/{r.item.id}']} -> {r.status}"
            for r in results
            if f"{phase.id}/{r.item.id}" in before and before[f"{phase.id}/{r.item.id}"] != r.status
        ]
        new = [r.item.title for r in results if f"{phase.id}/{r.item.id}" not in before]
        if previous and new:
            changed.append("new items: " + ", ".join(new))
        out.append(f"| {phase.id} | {phase_state(results)} | {'; '.join(changed) or '-'} |")

    out += ["", "## Targets newly met or missed", ""]
    old_targets = (previous or {}).get("targets", {})
    moved = []
    for r in evaluation.targets:
        was = old_targets.get(r.target.id, {}).get("status")
        if previous and was != r.status and r.status in (MET, MISSED):
            moved.append(
                f"| {r.target.what} | {was or 'new'} "
                f"| {r.status} ({r.value_text}, {r.target.bound_text()}) |"
            )
    out += ["| target | before | now |", "|---|---|---|", *moved] if moved else ["None."]

    out += ["", "## Open risks", ""]
    risks = [
        f"- **{r.phase}**: {r.item.title}: {r.status} ({r.detail})"
        for r in evaluation.items
        if r.status != MET and r.item.evidence.kind != "targets"
    ]
    risks += [
        f"- **{r.target.phase}**: {r.target.what}: {r.value_text} ({r.target.bound_text()})"
        for r in evaluation.targets
        if r.status == MISSED
    ]
    risks += [
        f"- **{r.target.phase}**: {r.target.what}: not measured by any recorded run"
        for r in evaluation.targets
        if r.status not in (MET, MISSED)
    ]
    out += risks or ["None."]
    return "\n".join(out) + "\n"


def digest_index(folder: Path) -> str:
    """``digests/index.md``: every digest, newest first."""
    pages = sorted((p for p in folder.glob("*.md") if p.name != "index.md"), reverse=True)
    lines = [GENERATED, "# Status digests", "", "One page per generation day, newest first:", ""]
    lines += [f"- [{p.stem}]({p.name})" for p in pages] or ["None yet."]
    return "\n".join(lines) + "\n"
