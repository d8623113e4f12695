"""Benchmark suites: one module per suite, each with ``run(ctx) -> list[Result]``."""
