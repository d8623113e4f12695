"""Readiness dashboard: each phase's checklist checked against the evidence of the latest run.

Run ``uv run --frozen python -m deepagents_redis_benchmarks.readiness --junit junit.xml
[--digest] [--record benchmarks/results/latest.json]``. The model is ``benchmarks/readiness.toml``,
the targets ``benchmarks/targets.toml``, the benchmark history ``benchmarks/history/``; the pages
go to ``docs/readiness/`` and the marked sections of ``docs/benchmarks.md`` and ``docs/index.md``.
"""

from deepagents_redis_benchmarks.readiness._evaluate import Evaluation, evaluate
from deepagents_redis_benchmarks.readiness._evidence import EvidenceError, record_run
from deepagents_redis_benchmarks.readiness._generate import generate, main
from deepagents_redis_benchmarks.readiness._model import (
    ReadinessModelError,
    load_model,
    load_targets,
)

__all__ = [
    "Evaluation",
    "EvidenceError",
    "ReadinessModelError",
    "evaluate",
    "generate",
    "load_model",
    "load_targets",
    "main",
    "record_run",
]
