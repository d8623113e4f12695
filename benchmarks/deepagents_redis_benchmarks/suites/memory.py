"""Suite ``memory``: how much Python memory `RedisBackend` needs for big files and big folders.

The performance issue's bounds: a 50 MB file written and read through `RedisBackend` peaks at
most ~2x its size in the Python process, and `ls`, `glob` and `grep` over a 10,000-file
namespace stay bounded (they stream; they never hold every file's content). Measured with
`tracemalloc` (Python allocations: the bytes redis-py reads, our buffers, the strings we
return), the peak above what was allocated before the call. Each row's time is the call's own
duration under tracing (slower than untraced; not comparable with the other suites); the
memory is in its notes as a multiple of the data involved.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepagents_redis_benchmarks._harness import BenchContext, Result, Timing, drop_prefix

_MB = 1_000_000


def _peak(call: Callable[[], Any]) -> tuple[float, int, Any]:
    """Run `call` under tracemalloc: (seconds, peak bytes above the start, its result)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        started = time.perf_counter()
        result = call()
        took = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return took, peak - base, result


def run(ctx: BenchContext) -> list[Result]:
    """Peak memory of a 50 MB write and read, and of ls/glob/grep over 10,000 files."""
    from deepagents_redis.core import RedisSettings
    from deepagents_redis.fs import RedisBackend

    prefix = f"bench:mem:{uuid.uuid4().hex[:8]}"
    settings = RedisSettings(url=ctx.url, key_prefix=prefix)
    tmp = Path(tempfile.mkdtemp(prefix="bench-mem-"))
    backend = RedisBackend(settings=settings, namespace="mem", blob_dir=str(tmp / "blobs"))
    results: list[Result] = []
    try:
        size = (5 if ctx.smoke else 50) * _MB
        line = "a line of an agent's big report, with some words in it: 0123456789\n"
        content = line * (size // len(line))
        nbytes = len(content.encode())
        took, peak, wrote = _peak(lambda: backend.write("/big/report.md", content))
        assert wrote.error is None, wrote.error
        results.append(
            Result(
                f"RedisBackend write {nbytes / _MB:.0f} MB, peak Python memory",
                Timing(took, took, 1),
                notes=f"peak {peak / nbytes:.2f}x the file ({peak / _MB:.1f} MB traced)",
            )
        )
        lines = content.count("\n")
        took, peak, read = _peak(lambda: backend.read("/big/report.md", 0, lines))
        assert read.error is None, read.error
        results.append(
            Result(
                f"RedisBackend read {nbytes / _MB:.0f} MB (every line), peak Python memory",
                Timing(took, took, 1),
                notes=f"peak {peak / nbytes:.2f}x the file ({peak / _MB:.1f} MB traced)",
            )
        )

        took, peak, window = _peak(lambda: backend.read("/big/report.md", 0, 2_000))
        assert window.error is None, window.error
        results.append(
            Result(
                f"RedisBackend read 2,000 lines of {nbytes / _MB:.0f} MB, peak Python memory",
                Timing(took, took, 1),
                notes=f"peak {peak / nbytes:.2f}x the file ({peak / _MB:.1f} MB traced)",
            )
        )
        took, peak, got = _peak(lambda: backend.download_files(["/big/report.md"]))
        assert got[0].error is None, got[0].error
        results.append(
            Result(
                f"RedisBackend download {nbytes / _MB:.0f} MB (bytes), peak Python memory",
                Timing(took, took, 1),
                notes=f"peak {peak / nbytes:.2f}x the file ({peak / _MB:.1f} MB traced)",
            )
        )

        files = ctx.n(10_000)
        body = "x" * 1_000 + "\n"
        batch: list[tuple[str, bytes]] = []
        for i in range(files):
            text = body if i % 100 else "NEEDLE " + body
            batch.append((f"/many/d{i % 100}/f{i}.py", text.encode()))
            if len(batch) == 500:
                backend.upload_files(batch)
                batch = []
        if batch:
            backend.upload_files(batch)
        total = files * len(body)
        for label, call in (
            ("ls /many/d7", lambda: backend.ls("/many/d7")),
            ("glob /many/**/*.py", lambda: backend.glob("**/*.py", "/many")),
            ("grep NEEDLE /many", lambda: backend.grep("NEEDLE", "/many")),
        ):
            took, peak, _ = _peak(call)
            results.append(
                Result(
                    f"RedisBackend {label} ({files:,} files), peak Python memory",
                    Timing(took, took, 1),
                    notes=(
                        f"peak {peak / total:.3f}x the namespace's {total / _MB:.1f} MB of "
                        f"content ({peak / _MB:.2f} MB traced)"
                    ),
                )
            )
    finally:
        with contextlib.suppress(Exception):
            backend.close()
        drop_prefix(ctx.url, prefix)
        shutil.rmtree(tmp, ignore_errors=True)
    return results
