"""Side-by-side benchmarks for deepagents-redis.

Run ``uv run --frozen python -m deepagents_redis_benchmarks [--smoke] [--only SUITE] [--url URL]``.
Suite authors: see ``benchmarks/README.md``, :class:`Result` and :class:`BenchContext`.
"""

from deepagents_redis_benchmarks._harness import BenchContext, Result, Timing

__all__ = ["BenchContext", "Result", "Timing"]
