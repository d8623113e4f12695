"""Discover suites, run them against one server, write JSON + markdown."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import pkgutil
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from deepagents_redis_benchmarks import suites as suites_pkg
from deepagents_redis_benchmarks._harness import BenchContext, Result

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
"""Default output folder: ``benchmarks/results/`` (gitignored)."""


def available_suites() -> list[str]:
    """Names of the modules in ``deepagents_redis_benchmarks/suites/``, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(suites_pkg.__path__) if not m.ispkg)


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[tuple[str, str]]:
    if url:
        yield url, "--url"
        return
    from deepagents_redis.core.embedded import EmbeddedRedis

    # A private server on a free port (never 6379), killed by its own PID afterwards.
    # No persistence: we measure round trips, not fsync.
    with EmbeddedRedis(config={"save": "", "appendonly": "no"}) as server:
        yield server.url, f"embedded {server.kind}"


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def markdown_table(results: Sequence[Result]) -> str:
    """Render results as a GitHub-flavoured markdown table."""
    lines = [
        "| suite | operation | median | p99 | baseline | baseline median | baseline p99 "
        "| ratio | notes |",
        "|---|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in results:
        base = r.baseline_timing
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        lines.append(
            f"| {r.suite} | {r.name} | {_fmt_seconds(r.ours.median)} | {_fmt_seconds(r.ours.p99)} "
            f"| {r.baseline or '-'} | {_fmt_seconds(base.median if base else None)} "
            f"| {_fmt_seconds(base.p99 if base else None)} | {ratio} | {r.notes} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m deepagents_redis_benchmarks",
        description="Run deepagents-redis benchmarks side by side with their baselines.",
    )
    parser.add_argument("--smoke", action="store_true", help="Tiny iteration counts (CI).")
    parser.add_argument(
        "--only", action="append", choices=available_suites(), help="Run only this suite."
    )
    parser.add_argument("--url", default=None, help="Use this Redis instead of a private one.")
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="Output folder (default benchmarks/results)."
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected suites and write ``latest.json`` and ``latest.md``.

    Returns:
        0 when every suite produced results, 1 otherwise.
    """
    args = parse_args(argv)
    names = args.only or available_suites()
    results: list[Result] = []
    failed: list[str] = []
    with _server(args.url) as (url, source):
        print(f"server: {source}; suites: {', '.join(names)}; smoke: {args.smoke}", flush=True)
        for name in names:
            ctx = BenchContext(url=url, smoke=args.smoke)
            if args.smoke:
                ctx.iterations, ctx.warmup = 20, 5
            module = importlib.import_module(f"deepagents_redis_benchmarks.suites.{name}")
            started = time.perf_counter()
            try:
                suite_results = module.run(ctx)
            except Exception as exc:
                print(f"suite {name} FAILED: {exc!r}", file=sys.stderr, flush=True)
                failed.append(name)
                continue
            for r in suite_results:
                r.suite = name
            results.extend(suite_results)
            print(
                f"suite {name}: {len(suite_results)} rows in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
    table = markdown_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "smoke": args.smoke,
        "server": source,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "failed_suites": failed,
    }
    (args.out / "latest.json").write_text(
        json.dumps({"meta": meta, "results": [r.to_json() for r in results]}, indent=2) + "\n"
    )
    (args.out / "latest.md").write_text(table + "\n")
    print(table)
    print(f"\nwrote {args.out / 'latest.json'} and {args.out / 'latest.md'}")
    if failed:
        print(f"failed suites: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or not results else 0
