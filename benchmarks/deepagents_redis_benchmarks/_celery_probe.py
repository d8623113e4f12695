"""Celery's submit -> result round trip on its Redis broker and backend (see suites/coord.py).

Run in its own environment (``uv run --no-project --with 'celery[redis]==5.5.*'``) so Celery
and kombu never enter our workspace. One worker process (``--pool solo``: one task at a time,
like the no-op round trip we compare with) is started from this file; the client submits
no-op tasks one after another and waits for each result. Every key lives under a random
``global_keyprefix`` (broker and backend), deleted at the end. Prints one JSON object.

Usage: ``python _celery_probe.py URL N WARMUP``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

PREFIX = os.environ.get("BENCH_CELERY_PREFIX") or f"bench-celery-{uuid.uuid4().hex[:8]}:"
URL = os.environ.get("BENCH_CELERY_URL", "redis://127.0.0.1:6379/0")


def _app():  # type: ignore[no-untyped-def]
    from celery import Celery

    app = Celery("bench_celery", broker=URL, backend=URL)
    app.conf.update(
        broker_transport_options={"global_keyprefix": PREFIX},
        result_backend_transport_options={"global_keyprefix": PREFIX},
        task_default_queue="bench",
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )

    @app.task(name="noop")
    def noop() -> int:
        return 1

    return app


app = _app()


def main(url: str, n: int, warmup: int) -> None:
    env = {**os.environ, "BENCH_CELERY_PREFIX": PREFIX, "BENCH_CELERY_URL": url}
    here = os.path.dirname(os.path.abspath(__file__))
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "_celery_probe",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            "bench",
        ],
        cwd=here,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    samples: list[float] = []
    try:
        noop = app.tasks["noop"]
        noop.delay().get(timeout=60)  # the worker is up and connected
        for i in range(warmup + n):
            start = time.perf_counter()
            noop.delay().get(timeout=10)
            if i >= warmup:
                samples.append(time.perf_counter() - start)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        import redis

        raw = redis.Redis.from_url(url)
        for key in raw.scan_iter(match=f"{PREFIX}*", count=1_000):
            raw.delete(key)
        raw.close()
    print(json.dumps({"samples": samples}))


if __name__ == "__main__":
    URL = sys.argv[1]
    app.conf.broker_url = app.conf.result_backend = URL
    main(URL, int(sys.argv[2]), int(sys.argv[3]))
