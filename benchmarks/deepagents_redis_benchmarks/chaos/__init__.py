"""The chaos suite: each phase's workload through each fault, with a report.

``python -m deepagents_redis_benchmarks.chaos [--short] [--out DIR] [--only WORKLOAD[:FAULT]]``
runs every workload (cache, todos, fs, coord, checkpoint) through every fault (kill -9 and
restart with AOF, blackhole, connection reset, latency, SCRIPT FLUSH, maxmemory, DEBUG SLEEP)
on a private server per pair, and writes ``chaos.json``, ``chaos.md`` and one SVG plot per
pair. For each pair: operations, acknowledged, lost, duplicated, outcomes by type, latency
before, during and after the fault, and the time to the first success after it.
"""

from deepagents_redis_benchmarks.chaos._faults import FAULTS
from deepagents_redis_benchmarks.chaos._report import write_report
from deepagents_redis_benchmarks.chaos._runner import SHORT, Row, Timing, run_pair
from deepagents_redis_benchmarks.chaos._workloads import WORKLOADS

__all__ = ["FAULTS", "SHORT", "WORKLOADS", "Row", "Timing", "run_pair", "write_report"]
