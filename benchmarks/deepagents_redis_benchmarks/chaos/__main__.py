"""``python -m deepagents_redis_benchmarks.chaos``: run the chaos suite and write its report."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from deepagents_redis_benchmarks.chaos import (
    FAULTS,
    SHORT,
    WORKLOADS,
    Timing,
    run_pair,
    write_report,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepagents_redis_benchmarks.chaos")
    parser.add_argument("--short", action="store_true", help="Short windows (CI).")
    parser.add_argument("--out", default="benchmarks/results/chaos", help="Report directory.")
    parser.add_argument(
        "--publish",
        default=None,
        metavar="DIR",
        help="Also write the report as DIR/index.md with its plots (the docs site's page).",
    )
    parser.add_argument(
        "--only", action="append", default=None, help="WORKLOAD or WORKLOAD:FAULT (repeatable)."
    )
    args = parser.parse_args(argv)
    pairs = [(w, f) for w in WORKLOADS for f in FAULTS]
    if args.only:
        wanted = [item.split(":", 1) for item in args.only]
        pairs = [
            (w, f)
            for w, f in pairs
            if any(x[0] == w and (len(x) == 1 or x[1] == f) for x in wanted)
        ]
        if not pairs:
            parser.error(f"nothing matches --only {args.only}")
    timing = SHORT if args.short else Timing()
    rows = []
    for workload, fault in pairs:
        started = time.monotonic()
        row = run_pair(workload, fault, timing)
        rows.append(row)
        took = time.monotonic() - started
        print(
            f"{workload:>10} / {fault:<12} ops {row.ops:>4}  acked {row.acked:>4}  "
            f"lost {row.lost}  dup {row.duplicates}  recovery {row.recovery_s}  ({took:.1f} s)",
            flush=True,
        )
    mode = "short" if args.short else "full"
    path = write_report(rows, Path(args.out), mode=mode)
    print(f"wrote {path}")
    if args.publish:
        stamp = time.strftime("%Y-%m-%d", time.gmtime())
        heading = (
            "# Chaos report\n\nThe latest full run of `python -m deepagents_redis_benchmarks.chaos"
            f" --publish docs/chaos` ({stamp}); how to read it: [runbook](../operations/redis.md)."
        )
        page = write_report(rows, Path(args.publish), mode=mode, page="index.md", heading=heading)
        print(f"wrote {page}")
    # acknowledged work lost or applied twice is a failure of the suite, not just a number;
    # except a loss on a primary's kill -9, which Redis' asynchronous replication allows
    # (the runbook says how to bound it): reported, not failed
    for r in rows:
        if r.workload != "cache" and r.lost and FAULTS[r.fault].replication_loss:
            print(
                f"NOTE: {r.workload} / {r.fault}: lost {r.lost} acknowledged writes the killed "
                "primary had not replicated yet",
                file=sys.stderr,
            )
    bad = [
        r
        for r in rows
        if r.workload != "cache"
        and (r.duplicates or (r.lost and not FAULTS[r.fault].replication_loss))
    ]
    for r in bad:
        print(
            f"FAILED: {r.workload} / {r.fault}: lost {r.lost}, duplicated {r.duplicates}",
            file=sys.stderr,
        )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
