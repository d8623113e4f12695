"""A worker process for the fault tests: `python _proc_worker.py '<json config>'`.

Its one agent, `work`, counts each execution in a hash (task id -> runs) before it sleeps
`input["sleep"]` seconds and returns its pid, so a test can tell who ran what, and how often.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from deepagents_redis.coord import TaskContext, Worker
from deepagents_redis.core import RedisSettings, create_client


def main() -> None:
    cfg = json.loads(sys.argv[1])
    settings = RedisSettings(
        url=cfg["url"], key_prefix=cfg["prefix"], cluster="on" if cfg.get("cluster") else "off"
    )
    counter = create_client(settings)

    def work(value: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        counter.hincrby(cfg["counter"], ctx.task_id, 1)
        end = time.monotonic() + float(value.get("sleep", 0))
        while time.monotonic() < end and not ctx.cancelled.is_set():
            time.sleep(0.01)
        return {"pid": os.getpid()}

    Worker(
        settings=settings,
        agents={"work": work},
        concurrency=cfg.get("concurrency", 4),
        stop_grace_seconds=cfg.get("grace", 10.0),
        **cfg["options"],
    ).run()


if __name__ == "__main__":
    main()
