"""The chaos suite runs, counts what it should, and writes its report (short windows)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deepagents_redis_benchmarks.chaos import SHORT, run_pair, write_report

pytestmark = pytest.mark.integration


def test_faults_are_seen_and_no_acknowledged_write_is_lost(tmp_path: Path) -> None:
    reset = run_pair("todos", "reset", SHORT)
    flush = run_pair("checkpoint", "script_flush", SHORT)
    full = run_pair("fs", "maxmemory", SHORT)
    # the fault was felt: errors of a named type during the window, then recovery
    assert any(k != "ok" for k in reset.outcomes)
    assert reset.recovery_s is not None
    assert any(k != "ok" for k in full.outcomes)  # OOM refused the writes
    # SCRIPT FLUSH is absorbed: the next call reloads its script
    assert set(flush.outcomes) == {"ok"}
    for row in (reset, flush, full):
        assert row.lost == 0
        assert row.duplicates == 0
        assert row.still_failed == 0
        assert row.acked == row.ops
    page = write_report([reset, flush, full], tmp_path, mode="short")
    text = page.read_text()
    assert "| todos | reset |" in text
    data = json.loads((tmp_path / "chaos.json").read_text())
    assert [r["fault"] for r in data["rows"]] == ["reset", "script_flush", "maxmemory"]
    svg = (tmp_path / "plots" / "todos-reset.svg").read_text()
    # every error is drawn; successes and misses are thinned to about 400 points each
    failures = sum(n for outcome, n in reset.outcomes.items() if outcome != "ok")
    assert failures <= svg.count("<circle") <= reset.ops


@pytest.mark.cluster
def test_a_cluster_primary_killed_fails_over_and_nothing_is_applied_twice() -> None:
    row = run_pair("checkpoint", "cluster_failover", SHORT)
    start, end = row.window
    assert end - start >= SHORT.during  # the window lasted until a replica was promoted
    assert any(k != "ok" for k in row.outcomes)  # the killed primary's slots failed a while
    assert row.recovery_s is not None
    assert row.duplicates == 0
    assert row.still_failed == 0  # every failed put went through on the caller's retry
    # a loss is possible in principle (asynchronous replication); on loopback none is seen
    assert row.lost <= 1
