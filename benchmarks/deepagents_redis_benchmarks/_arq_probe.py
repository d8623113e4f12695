"""arq's submit -> result round trip, run in its own environment (see suites/coord.py).

arq 0.26+ caps redis-py below 6, and every arq pulls hiredis (which redis-py would then use
everywhere), so arq never enters our workspace: the coord suite runs this file with
``uv run --no-project --with arq==0.25.0``. Prints one JSON object: per-job seconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def noop(ctx: dict[str, object]) -> int:
    return 1


async def main(url: str, n: int, warmup: int) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.jobs import ResultNotFound
    from arq.worker import Worker

    settings = RedisSettings.from_dsn(url)
    worker = Worker(
        functions=[noop],
        redis_settings=settings,
        poll_delay=0.001,
        handle_signals=False,
        queue_name="bench-arq",
    )
    running = asyncio.create_task(worker.async_run())
    pool = await create_pool(settings, default_queue_name="bench-arq")
    samples = []
    for i in range(warmup + n):
        start = time.perf_counter()
        job = await pool.enqueue_job("noop")
        assert job is not None
        try:
            await job.result(timeout=10, poll_delay=0.001)
        except ResultNotFound:
            # arq 0.25 reads the result and the queue in two round trips (its pipeline is
            # not used): a job that finishes between them looks lost. The result is there.
            await job.result(timeout=10, poll_delay=0.001)
        if i >= warmup:
            samples.append(time.perf_counter() - start)
    running.cancel()
    await worker.close()
    await pool.aclose()
    print(json.dumps({"samples": samples}))


async def throughput(url: str, n: int) -> None:
    """Tasks/s one arq worker process drains from a pre-filled queue (max_jobs 8, as ours).

    Measured like ours: the jobs are enqueued first, then one worker drains them; the time
    is from its first job's start to its last job's end, as arq records them.
    """
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker

    settings = RedisSettings.from_dsn(url)
    pool = await create_pool(settings, default_queue_name="bench-arq-tp")
    jobs = [await pool.enqueue_job("noop") for _ in range(n)]
    worker = Worker(
        functions=[noop],
        redis_settings=settings,
        poll_delay=0.001,
        handle_signals=False,
        queue_name="bench-arq-tp",
        max_jobs=8,
        burst=True,
    )
    await worker.async_run()
    infos = [await job.result_info() for job in jobs if job is not None]
    starts = [i.start_time for i in infos if i is not None]
    ends = [i.finish_time for i in infos if i is not None]
    took = (max(ends) - min(starts)).total_seconds()
    await worker.close()
    await pool.aclose()
    print(json.dumps({"done": len(ends), "seconds": took}))


if __name__ == "__main__":
    if sys.argv[1] == "throughput":
        asyncio.run(throughput(sys.argv[2], int(sys.argv[3])))
    else:
        asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
