"""One generation: load the model and evidence, evaluate, write every page."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from deepagents_redis_benchmarks.readiness._digest import (
    digest_index,
    digest_page,
    previous_snapshot,
    snapshot,
)
from deepagents_redis_benchmarks.readiness._evaluate import Evaluation, evaluate
from deepagents_redis_benchmarks.readiness._evidence import (
    EvidenceError,
    TestCase,
    commits_since,
    head_commit,
    load_chaos,
    load_history,
    load_junit,
    record_run,
)
from deepagents_redis_benchmarks.readiness._model import ReadinessModelError, load_model
from deepagents_redis_benchmarks.readiness._pages import (
    ga_page,
    latest_results,
    phase_table,
    readiness_page,
    replace_section,
    targets_table,
    write_plots,
)

__all__ = ["generate", "main"]

ROOT = Path(__file__).resolve().parents[3]
"""The repository root (``benchmarks/deepagents_redis_benchmarks/readiness/`` is three down)."""


def _cases(junit: Path | list[Path] | None) -> list[TestCase] | None:
    """Every testcase of the junit files given (None when none were)."""
    if not junit:
        return None
    files = [junit] if isinstance(junit, Path) else junit
    present = [path for path in files if path.exists()]
    for path in files:
        if not path.exists():
            # A test step that died before writing its report: its items show "no evidence";
            # that is the report's finding, not a reason for generation to fail.
            print(
                f"readiness: no junit file at {path}; its tests count as not run", file=sys.stderr
            )
    return [case for path in present for case in load_junit(path)] if present else None


def generate(
    *,
    root: Path,
    junit: Path | list[Path] | None,
    chaos: Path | None,
    docs: Path,
    digest: bool,
    date: str,
    commit: str,
) -> Evaluation:
    """Evaluate the model and write the readiness pages under `docs`.

    Writes ``readiness/index.md``, ``readiness/ga.md``, ``readiness/plots/*.svg``, the marked
    sections of ``benchmarks.md`` and ``index.md``, and with `digest` the day's
    ``readiness/digests/<date>.md`` plus its snapshot and the digests' index.

    Raises:
        ReadinessModelError: The model or targets file is malformed.
        EvidenceError: An evidence file exists but cannot be read.
        ValueError: A page lost its generated-section markers.
    """
    model = load_model(root / "benchmarks/readiness.toml", root / "benchmarks/targets.toml")
    runs = load_history(root / "benchmarks/history")
    evaluation = evaluate(
        model,
        root=root,
        cases=_cases(junit),
        runs=runs,
        chaos=load_chaos(chaos) if chaos else None,
    )
    out = docs / "readiness"
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.md").write_text(readiness_page(model, evaluation, commit=commit, date=date))
    (out / "ga.md").write_text(ga_page(model, evaluation, commit=commit, date=date))
    write_plots(evaluation, out / "plots")

    bench = docs / "benchmarks.md"
    text = replace_section(bench.read_text(), "targets", targets_table(evaluation))
    text = replace_section(text, "latest", latest_results(evaluation))
    bench.write_text(text)
    home = docs / "index.md"
    home.write_text(
        replace_section(
            home.read_text(),
            "phases",
            phase_table(model, evaluation)
            + f"\n\nFrom the [readiness page](readiness/index.md), generated at `{commit}` "
            f"on {date}.",
        )
    )

    digests = out / "digests"
    digests.mkdir(parents=True, exist_ok=True)
    if digest:
        previous = previous_snapshot(digests, date)
        commits = commits_since(root, previous["commit"] if previous else None, most=30)
        page = digest_page(
            model, evaluation, previous=previous, commits=commits, commit=commit, date=date
        )
        (digests / f"{date}.md").write_text(page)
        state = snapshot(evaluation, commit=commit, date=date)
        (digests / f"{date}.json").write_text(json.dumps(state, indent=1) + "\n")
    (digests / "index.md").write_text(digest_index(digests))
    return evaluation


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: exit 0 when the pages were generated (targets missed or not), 1 when not."""
    parser = argparse.ArgumentParser(
        prog="python -m deepagents_redis_benchmarks.readiness",
        description=(
            "Generate the readiness page, the GA checklist and the status digest from the "
            "latest test run, the benchmark history and the chaos report."
        ),
    )
    parser.add_argument(
        "--junit",
        type=Path,
        action="append",
        help="Junit XML of a test run (pytest --junitxml); repeat for several runs.",
    )
    parser.add_argument(
        "--chaos",
        type=Path,
        default=ROOT / "docs/chaos/chaos.json",
        help="Chaos report JSON (default: the published full run, docs/chaos/chaos.json).",
    )
    parser.add_argument(
        "--docs", type=Path, default=ROOT / "docs", help="Docs folder to write into."
    )
    parser.add_argument("--digest", action="store_true", help="Also write today's status digest.")
    parser.add_argument(
        "--record",
        type=Path,
        metavar="LATEST_JSON",
        help="First add this full benchmark run (the runner's latest.json) to benchmarks/history/.",
    )
    parser.add_argument(
        "--suite", action="append", help="With --record: keep only this suite's rows (repeatable)."
    )
    parser.add_argument(
        "--date", default=time.strftime("%Y-%m-%d", time.gmtime()), help="Digest date."
    )
    args = parser.parse_args(argv)
    try:
        commit = head_commit(ROOT)
        if args.record:
            written = record_run(
                args.record, ROOT / "benchmarks/history", commit=commit, suites=args.suite
            )
            print(f"recorded {written.relative_to(ROOT)}")
        evaluation = generate(
            root=ROOT,
            junit=args.junit,
            chaos=args.chaos,
            docs=args.docs,
            digest=args.digest,
            date=args.date,
            commit=commit,
        )
    except (ReadinessModelError, EvidenceError, ValueError, OSError) as exc:
        print(f"readiness: generation failed: {exc}", file=sys.stderr)
        return 1
    counts: dict[str, int] = {}
    for item in evaluation.items:
        counts[item.status] = counts.get(item.status, 0) + 1
    met = sum(t.status == "met" for t in evaluation.targets)
    print(
        f"readiness: {len(evaluation.items)} items "
        f"({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}); "
        f"targets {met} of {len(evaluation.targets)} met; pages in {args.docs / 'readiness'}"
    )
    return 0
