"""The readiness generator: the model checks, each evidence kind, the pages and the digest."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from deepagents_redis_benchmarks.readiness import (
    EvidenceError,
    ReadinessModelError,
    evaluate,
    generate,
    load_model,
    main,
    record_run,
)
from deepagents_redis_benchmarks.readiness._evidence import load_history, load_junit
from deepagents_redis_benchmarks.readiness._pages import replace_section

ROOT = Path(__file__).resolve().parent.parent

TARGETS = """
[[target]]
id = "cache.hit"
phase = "cache"
what = "hit within 1.2x of GET"
source = "BRIEF"
suite = "cache"
row = "hit *"
baseline = "GET*"
metric = "ratio"
max = 1.2

[[target]]
id = "cache.calls"
phase = "cache"
what = "one model call"
source = "BRIEF"
suite = "cache"
row = "single-flight"
metric = "notes"
pattern = "ours ([0-9.,]+)"
max = 1.0

[[target]]
id = "cache.never"
phase = "cache"
what = "a row no run has"
source = "BRIEF"
suite = "cache"
row = "nothing like this"
metric = "median"
max = 1e-3
"""

MODEL = """
faults = ["kill9", "reset"]

[[phase]]
id = "cache"
title = "cache"
page = "packages/cache.md"

[[phase.item]]
id = "tests"
title = "tests pass"
ga = "tests"
evidence = { kind = "tests", paths = ["packages/cache/tests"], min = 2 }

[[phase.item]]
id = "cluster"
title = "cluster tier"
ga = "tests"
evidence = { kind = "tests", paths = ["packages/cache/tests"], match = ["[cluster"] }

[[phase.item]]
id = "chaos"
title = "chaos"
ga = "tests"
evidence = { kind = "chaos", workload = "cache" }

[[phase.item]]
id = "docs"
title = "page"
ga = "docs"
evidence = { kind = "docs", page = "docs/packages/cache.md", contains = ["```python"] }

[[phase.item]]
id = "benchmarks"
title = "targets"
ga = "benchmarks"
evidence = { kind = "targets", phase = "cache" }

[[phase.item]]
id = "published"
title = "on PyPI"
ga = "docs"
evidence = { kind = "manual", status = "open", note = "not yet", date = "2026-12-04" }
"""

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="packages.cache.tests.test_a" name="test_one[standalone]"/>
<testcase classname="packages.cache.tests.test_a" name="test_one[cluster]"/>
<testcase classname="packages.cache.tests.test_b" name="test_two"><skipped message="x"/></testcase>
<testcase classname="packages.cachex.tests.test_c" name="test_elsewhere">
<failure message="no"/></testcase>
</testsuite></testsuites>
"""


def _row(
    name: str, ratio: float | None, *, baseline: str | None = "GET 1 KB", notes: str = ""
) -> dict[str, Any]:
    return {
        "suite": "cache",
        "name": name,
        "ours": {"median": 2e-4, "p99": 3e-4, "samples": 100},
        "baseline": baseline,
        "baseline_timing": None
        if ratio is None
        else {"median": 2e-4 / ratio, "p99": 3e-4, "samples": 100},
        "notes": notes,
        "ratio": ratio,
    }


def _project(tmp_path: Path, *, model: str = MODEL, targets: str = TARGETS) -> Path:
    root = tmp_path / "repo"
    (root / "benchmarks/history").mkdir(parents=True)
    (root / "benchmarks/readiness.toml").write_text(model)
    (root / "benchmarks/targets.toml").write_text(targets)
    docs = root / "docs"
    (docs / "packages").mkdir(parents=True)
    (docs / "packages/cache.md").write_text("# cache\n\n```python\nprint(1)\n```\n")
    (docs / "index.md").write_text(
        "# home\n<!-- readiness:phases -->\nold\n<!-- /readiness:phases -->\n"
    )
    (docs / "benchmarks.md").write_text(
        "# b\n<!-- readiness:targets -->\n<!-- /readiness:targets -->\n"
        "<!-- readiness:latest -->\n<!-- /readiness:latest -->\n"
    )
    (root / "junit.xml").write_text(JUNIT)
    (root / "chaos.json").write_text(
        json.dumps(
            {
                "mode": "full",
                "rows": [
                    {"workload": "cache", "fault": f, "acked": 10, "lost": 0, "duplicates": 0}
                    for f in ("kill9", "reset")
                ],
            }
        )
    )
    return root


def _run(root: Path, name: str, date: str, rows: list[dict[str, Any]]) -> None:
    record = {"commit": name, "date": date, "meta": {}, "results": rows}
    (root / f"benchmarks/history/{date[:10]}-{name}.json").write_text(json.dumps(record))


def test_the_projects_own_model_and_targets_load_and_name_real_phases() -> None:
    model = load_model(ROOT / "benchmarks/readiness.toml", ROOT / "benchmarks/targets.toml")
    phases = {p.id for p in model.phases}
    assert {"core", "cache", "todos", "fs", "coord", "observe", "checkpoint"} <= phases
    assert {t.phase for t in model.targets} <= phases
    for phase in model.phases:
        assert {i.evidence.kind for i in phase.items} >= {"tests", "docs"}, phase.id
        for item in phase.items:
            if item.evidence.kind == "docs":
                assert (ROOT / item.evidence.options["page"]).is_file(), item


def test_targets_use_the_latest_run_that_measured_them_and_the_worst_row(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _run(
        root,
        "aaa",
        "2026-12-01T00:00:00Z",
        [_row("hit 1 KB", 1.9), _row("single-flight", None, notes="ours 1.0, off 8.0")],
    )
    _run(root, "bbb", "2026-12-02T00:00:00Z", [_row("hit 1 KB", 1.1), _row("hit 1 MB", 1.15)])
    # A later run of another suite only must not hide what the earlier runs measured.
    _run(root, "ccc", "2026-12-03T00:00:00Z", [{**_row("other", 5.0), "suite": "fs"}])
    model = load_model(root / "benchmarks/readiness.toml", root / "benchmarks/targets.toml")
    runs = load_history(root / "benchmarks/history")
    assert [r.commit for r in runs] == ["aaa", "bbb", "ccc"]
    ev = evaluate(model, root=root, cases=None, runs=runs, chaos=None)
    hit, calls, never = ev.targets
    assert (hit.status, hit.value, hit.run and hit.run.commit) == ("met", 1.15, "bbb")
    assert [(c, v) for _, c, v in hit.trend] == [("aaa", 1.9), ("bbb", 1.15)]
    assert (calls.status, calls.value) == ("met", 1.0)
    assert (never.status, never.value, never.run) == ("no evidence", None, None)
    item = next(r for r in ev.items if r.item.id == "benchmarks")
    assert item.status == "no evidence"
    assert "not measured: cache.never" in item.detail

    _run(root, "ddd", "2026-12-04T00:00:00Z", [_row("hit 1 KB", 1.21)])
    ev = evaluate(
        model, root=root, cases=None, runs=load_history(root / "benchmarks/history"), chaos=None
    )
    assert ev.targets[0].status == "missed"
    item = next(r for r in ev.items if r.item.id == "benchmarks")
    assert item.status == "missed"
    assert "cache.hit 1.21x (<= 1.20x)" in item.detail


def test_tests_chaos_docs_and_manual_items(tmp_path: Path) -> None:
    root = _project(tmp_path)
    model = load_model(root / "benchmarks/readiness.toml", root / "benchmarks/targets.toml")
    cases = load_junit(root / "junit.xml")
    chaos = json.loads((root / "chaos.json").read_text())["rows"]
    ev = evaluate(model, root=root, cases=cases, runs=[], chaos=chaos)
    status = {r.item.id: (r.status, r.detail) for r in ev.items}
    # packages.cachex is not under packages/cache/tests: its failure does not count here.
    assert status["tests"] == ("met", "2 passed, 0 failed, 1 skipped")
    assert status["cluster"] == ("met", "1 passed, 0 failed, 0 skipped")
    assert status["chaos"][0] == "met"
    assert status["docs"][0] == "met"
    assert status["published"] == ("open", "not yet (2026-12-04)")
    assert ev.tests == {"passed": 2, "failed": 1, "skipped": 1}

    failing = [c for c in cases if "standalone" not in c.name]
    assert (
        evaluate(model, root=root, cases=failing, runs=[], chaos=chaos).items[0].status == "missed"
    )
    broken = [{**row, "lost": 1} if row["fault"] == "reset" else row for row in chaos]
    ev = evaluate(model, root=root, cases=None, runs=[], chaos=broken)
    assert next(r for r in ev.items if r.item.id == "chaos").detail == "reset: 1 lost, 0 doubled"
    ev = evaluate(model, root=root, cases=None, runs=[], chaos=chaos[:1])
    assert next(r for r in ev.items if r.item.id == "chaos").status == "no evidence"
    assert next(r for r in ev.items if r.item.id == "tests").status == "no evidence"
    (root / "docs/packages/cache.md").write_text("# cache, no example\n")
    ev = evaluate(model, root=root, cases=cases, runs=[], chaos=chaos)
    assert next(r for r in ev.items if r.item.id == "docs").status == "missed"


@pytest.mark.parametrize(
    ("model", "targets", "message"),
    [
        (MODEL.replace('kind = "chaos"', 'kind = "vibes"'), TARGETS, "evidence kind 'vibes'"),
        (MODEL.replace('ga = "docs"', 'ga = "marketing"', 1), TARGETS, "ga 'marketing'"),
        (
            MODEL.replace('phase = "cache" }', 'phase = "nope" }'),
            TARGETS,
            "no target of phase 'nope'",
        ),
        (MODEL.replace('status = "open"', 'status = "done"'), TARGETS, "manual status"),
        (MODEL, TARGETS.replace("max = 1.2\n", ""), "needs a bound"),
        (MODEL, TARGETS.replace('pattern = "ours ([0-9.,]+)"\n', ""), "needs a pattern"),
        (MODEL, TARGETS.replace('id = "cache.never"', 'id = "cache.hit"'), "duplicate target ids"),
        (MODEL, TARGETS.replace('metric = "median"', 'metric = "vibes"'), "metric 'vibes'"),
    ],
)
def test_a_malformed_model_is_an_error_naming_the_entry(
    tmp_path: Path, model: str, targets: str, message: str
) -> None:
    root = _project(tmp_path, model=model, targets=targets)
    with pytest.raises(ReadinessModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_model(root / "benchmarks/readiness.toml", root / "benchmarks/targets.toml")


def test_generate_writes_every_page_and_the_digest_compares_with_the_last(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _run(root, "aaa", "2026-12-01T00:00:00Z", [_row("hit 1 KB", 1.5)])
    kwargs: dict[str, Any] = {
        "root": root,
        "junit": root / "junit.xml",
        "chaos": root / "chaos.json",
        "docs": root / "docs",
        "digest": True,
    }
    # The digest lists commits: give the temporary project a git history of its own.
    (root / "packages/cache").mkdir(parents=True)
    (root / "packages/cache/x.py").write_text("x = 1\n")
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "cache: first"],
    ):
        subprocess.run(["git", "-C", str(root), *args], check=True)
    generate(**kwargs, date="2026-12-03", commit="c1")
    docs = root / "docs"
    page = (docs / "readiness/index.md").read_text()
    assert "| tests pass | met |" in page
    assert "| targets | **missed** |" in page
    assert "![cache.hit](plots/cache.hit.svg)" in page
    assert (docs / "readiness/plots/cache.hit.svg").read_text().startswith("<svg")
    ga = (docs / "readiness/ga.md").read_text()
    assert "- [x] **Tests**" in ga
    assert "- [ ] **Benchmarks within targets**" in ga
    assert "on PyPI (open: not yet (2026-12-04)) *manual*" in ga
    home = (docs / "index.md").read_text()
    assert "old" not in home
    assert "not ready (4 of 6 items met)" in home
    bench = (docs / "benchmarks.md").read_text()
    assert "hit within 1.2x of GET" in bench
    assert "Full run at `aaa` on 2026-12-01" in bench
    first = (docs / "readiness/digests/2026-12-03.md").read_text()
    assert "the first digest, so the latest commits are listed" in first
    assert "| cache | 1 |" in first
    assert "- **cache**: on PyPI: open" in first

    _run(root, "bbb", "2026-12-04T00:00:00Z", [_row("hit 1 KB", 1.1)])
    generate(**kwargs, date="2026-12-04", commit="c2")
    second = (docs / "readiness/digests/2026-12-04.md").read_text()
    assert "At `c2`; since the last digest (2026-12-03, `c1`)." in second
    assert "| hit within 1.2x of GET | missed | met (1.10x, <= 1.20x) |" in second
    index = (docs / "readiness/digests/index.md").read_text()
    assert index.index("2026-12-04") < index.index("2026-12-03")


def test_main_exits_0_when_pages_are_written_and_1_when_generation_breaks(tmp_path: Path) -> None:
    # (A missed target not failing generation: the first generate() above has one.)
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    assert (
        main(["--docs", str(docs), "--junit", str(_project(tmp_path).joinpath("junit.xml"))]) == 0
    )
    assert (docs / "readiness/index.md").read_text().startswith("<!-- generated")
    (docs / "benchmarks.md").write_text("# the markers are gone\n")
    assert main(["--docs", str(docs)]) == 1


def test_replace_section_needs_its_markers() -> None:
    assert "new" in replace_section("<!-- readiness:x -->\nold\n<!-- /readiness:x -->", "x", "new")
    with pytest.raises(ValueError, match="markers"):
        replace_section("no markers", "x", "new")


def test_record_run_refuses_smoke_and_failed_runs_and_keeps_chosen_suites(tmp_path: Path) -> None:
    latest = tmp_path / "latest.json"
    meta = {"smoke": False, "time": "2026-12-04T10:11:12Z", "failed_suites": []}
    rows = [_row("hit 1 KB", 1.1), {**_row("x", 1.0), "suite": "fs"}]
    latest.write_text(json.dumps({"meta": meta, "results": rows}))
    out = record_run(latest, tmp_path / "history", commit="abc+dirty", suites=["cache"])
    assert out.name == "2026-12-04T1011-abc-dirty.json"
    assert [r["suite"] for r in json.loads(out.read_text())["results"]] == ["cache"]
    for bad, message in (({"smoke": True}, "smoke"), ({"failed_suites": ["fs"]}, "suites failed")):
        latest.write_text(json.dumps({"meta": {**meta, **bad}, "results": rows}))
        with pytest.raises(EvidenceError, match=message):
            record_run(latest, tmp_path / "history", commit="abc")


def test_a_broken_evidence_file_is_an_error_not_an_empty_result(tmp_path: Path) -> None:
    bad = tmp_path / "junit.xml"
    bad.write_text("<testsuites><testcase")
    with pytest.raises(EvidenceError, match="junit"):
        load_junit(bad)


def test_junit_files_are_combined_and_a_missing_one_counts_as_not_run(tmp_path: Path) -> None:
    from deepagents_redis_benchmarks.readiness._generate import _cases

    root = _project(tmp_path)
    other = tmp_path / "other.xml"
    other.write_text(JUNIT.replace("packages.cache.tests.test_a", "tests.test_time_travel"))
    cases = _cases([root / "junit.xml", other, tmp_path / "missing.xml"])
    assert cases is not None
    assert len(cases) == 8
    assert sum(c.module == "tests.test_time_travel" for c in cases) == 2
    assert _cases([tmp_path / "missing.xml"]) is None


def test_an_item_can_count_one_run_only(tmp_path: Path) -> None:
    # `run` picks the testcases of the junit files whose name holds it (CI's Valkey tier
    # writes junit-valkey.xml): the same tests in another run neither meet nor fail it.
    from deepagents_redis_benchmarks.readiness._generate import _cases

    root = _project(
        tmp_path,
        model=MODEL.replace('match = ["[cluster"] }', 'match = ["[cluster"], run = "valkey" }'),
    )
    model = load_model(root / "benchmarks/readiness.toml", root / "benchmarks/targets.toml")
    valkey = tmp_path / "junit-valkey.xml"
    valkey.write_text(JUNIT)

    def cluster_item(paths: list[Path]) -> tuple[str, str]:
        ev = evaluate(model, root=root, cases=_cases(paths), runs=[], chaos=None)
        result = next(r for r in ev.items if r.item.id == "cluster")
        return result.status, result.detail

    assert cluster_item([root / "junit.xml"]) == (
        "no evidence",
        "0 passed, 0 failed, 0 skipped; needs at least 1 passing",
    )
    assert cluster_item([root / "junit.xml", valkey]) == ("met", "1 passed, 0 failed, 0 skipped")
    valkey.write_text(
        JUNIT.replace(
            'name="test_one[cluster]"/>', 'name="test_one[cluster]"><failure/></testcase>'
        )
    )
    assert cluster_item([root / "junit.xml", valkey])[0] == "missed"
    # Items without `run` count every run: a failure on Valkey fails the package's tests.
    ev = evaluate(model, root=root, cases=_cases([root / "junit.xml", valkey]), runs=[], chaos=None)
    assert next(r for r in ev.items if r.item.id == "tests").status == "missed"
