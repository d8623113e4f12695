"""The benchmark harness's arithmetic and bookkeeping (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deepagents_redis_benchmarks import BenchContext, Result, Timing
from deepagents_redis_benchmarks._runner import available_suites, main, markdown_table


def test_timing_median_and_nearest_rank_p99() -> None:
    timing = Timing.from_samples([float(i) for i in range(1, 101)])
    assert timing.median == 50.5
    assert timing.p99 == 99.0
    assert timing.samples == 100
    single = Timing.from_samples([3.0])
    assert (single.median, single.p99) == (3.0, 3.0)


def test_ratio_is_ours_over_baseline() -> None:
    r = Result("ours", Timing(2.0, 3.0, 5), "base", Timing(4.0, 5.0, 5))
    assert r.ratio == 0.5
    assert r.to_json()["ratio"] == 0.5
    assert Result("limit", Timing(1.0, 1.0, 1)).ratio is None


def test_compare_interleaves_and_alternates_order() -> None:
    calls: list[str] = []
    ctx = BenchContext(url="redis://unused", iterations=4, warmup=1)
    ours, base = ctx.compare(lambda: calls.append("o"), lambda: calls.append("b"))
    assert ours.samples == base.samples == 4
    # warm-up (o, b), then rounds alternate which side goes first.
    assert calls == ["o", "b", "o", "b", "b", "o", "o", "b", "b", "o"]


def test_acompare_runs_setup_and_teardown_in_one_loop() -> None:
    events: list[str] = []

    async def setup() -> None:
        events.append("setup")

    async def teardown() -> None:
        events.append("teardown")

    async def op() -> None:
        events.append("op")

    ctx = BenchContext(url="redis://unused", iterations=2, warmup=0)
    ours, base = ctx.acompare(op, None, setup=setup, teardown=teardown)
    assert base is None
    assert ours.samples == 2
    assert events == ["setup", "op", "op", "teardown"]


def test_smoke_scaling() -> None:
    assert BenchContext(url="x", smoke=True).n(5000) == 25
    assert BenchContext(url="x", smoke=True).n(10) == 3
    assert BenchContext(url="x").n(5000) == 5000


def test_markdown_table_has_one_row_per_result() -> None:
    rows = [
        Result("a", Timing(1e-4, 2e-4, 10), suite="s"),
        Result("b", Timing(2e-3, 3e-3, 10), "c", Timing(1e-3, 1e-3, 10), notes="n", suite="s"),
    ]
    table = markdown_table(rows).splitlines()
    assert len(table) == 4
    assert "| s | b | 2.00 ms | 3.00 ms | c | 1.00 ms | 1.00 ms | 2.00x | n |" in table


def test_core_suite_is_discovered() -> None:
    assert "core" in available_suites()


@pytest.mark.integration
def test_smoke_run_writes_json_and_markdown(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--smoke", "--only", "core", "--url", redis_url, "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "latest.json").read_text())
    assert data["meta"]["smoke"] is True
    assert data["meta"]["failed_suites"] == []
    names = {r["name"] for r in data["results"]}
    assert {"redis-py GET 1 KB", "EVALSHA no-op", "create_client() GET 1 KB"} <= names
    assert all(r["suite"] == "core" for r in data["results"])
    md = (tmp_path / "latest.md").read_text()
    assert md.count("\n| core |") == len(data["results"])
    capsys.readouterr()


def test_drop_prefix_deletes_exactly_the_suites_keys(redis_url: str, key_prefix: str) -> None:
    import redis
    from deepagents_redis_benchmarks._harness import drop_prefix

    client = redis.Redis.from_url(redis_url)
    try:
        mine = [f"{key_prefix}-bench:k{i}" for i in range(1_203)]
        client.mset(dict.fromkeys(mine, b"x"))
        client.set(f"{key_prefix}-benchX:other", b"kept")  # same start, another prefix
        assert drop_prefix(redis_url, f"{key_prefix}-bench") == 1_203
        assert client.exists(*mine) == 0
        assert client.get(f"{key_prefix}-benchX:other") == b"kept"
        client.delete(f"{key_prefix}-benchX:other")
    finally:
        client.close()
