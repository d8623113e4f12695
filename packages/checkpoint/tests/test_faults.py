"""Concurrency and faults: writers in two processes, threads sharing a saver, lost replies."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.core import DeepAgentsRedisError, RedisConnector, RedisSettings
from langgraph.checkpoint.base import empty_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from _proc_writer import build

WRITER = Path(__file__).parent / "_proc_writer.py"


def _check_thread(saver: RedisSaver, thread: str) -> None:
    graph = build(saver)
    config = {"configurable": {"thread_id": thread}}
    state = graph.get_state(config)
    assert state.values["n"] == 20
    assert state.values["log"] == [f"s{i}" for i in range(20)]
    history = list(saver.list(config))
    assert [t.metadata["step"] for t in history] == list(range(20, -2, -1))
    # every checkpoint's parent is the next one down the list
    for newer, older in itertools.pairwise(history):
        assert newer.parent_config is not None
        assert newer.parent_config["configurable"]["checkpoint_id"] == older.checkpoint["id"]


def test_two_processes_write_their_threads_concurrently(
    redis_target: Any, connector: RedisConnector
) -> None:
    settings = redis_target.settings
    procs = [
        subprocess.Popen(
            [sys.executable, str(WRITER), settings.url, settings.key_prefix, name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("p1", "p2")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
    saver = RedisSaver(connector=connector)
    for name in ("p1", "p2"):
        for i in range(5):
            _check_thread(saver, f"{name}-{i}")
    threads = {t.config["configurable"]["thread_id"] for t in saver.list(None)}
    assert threads >= {f"{n}-{i}" for n in ("p1", "p2") for i in range(5)}


def test_threads_share_one_saver(connector: RedisConnector) -> None:
    saver = RedisSaver(connector=connector)
    graph = build(saver)
    errors: list[BaseException] = []
    prefix = uuid.uuid4().hex[:8]

    def run(i: int) -> None:
        try:
            graph.invoke({"n": 0, "log": []}, {"configurable": {"thread_id": f"{prefix}-{i}"}})
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not errors
    for i in range(8):
        _check_thread(saver, f"{prefix}-{i}")


async def test_async_runs_share_one_saver(connector: RedisConnector) -> None:
    import asyncio

    saver = RedisSaver(connector=connector)
    graph = build(saver)
    prefix = uuid.uuid4().hex[:8]
    await asyncio.gather(
        *(
            graph.ainvoke({"n": 0, "log": []}, {"configurable": {"thread_id": f"{prefix}-{i}"}})
            for i in range(8)
        )
    )
    for i in range(8):
        _check_thread(saver, f"{prefix}-{i}")


def _wait(predicate: Any, seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.05)


@pytest.mark.parametrize("retries", [0, 2])
@pytest.mark.parametrize("blob_bytes", [32_768, 0])  # blobs through the scripts / around them
def test_a_put_retried_after_a_lost_reply_is_applied_once(
    redis_url: str, key_prefix: str, fault_proxy: Any, retries: int, blob_bytes: int
) -> None:
    """The reply to a put is lost (the request reaches Redis late); the caller retries.

    With ``script_blob_bytes=0`` the put and put_writes are MULTIs of plain HSET/HSETNX and
    their script: re-sent whole, they store the same thing once too."""
    proxy = fault_proxy(redis_url)
    settings = RedisSettings(
        url=proxy.url,
        key_prefix=key_prefix,
        socket_timeout=0.3,
        retries=retries,
        deadline_seconds=1.0,
    )
    saver = RedisSaver(settings=settings, script_blob_bytes=blob_bytes)
    direct = RedisSaver(settings=RedisSettings(url=redis_url, key_prefix=key_prefix))
    thread = f"t-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    first = empty_checkpoint()
    first["channel_values"] = {"v": 1}
    first["channel_versions"] = {"v": "1"}
    saver.put(config, first, {"step": 0}, {"v": "1"})  # connections warm, thread indexed
    second = empty_checkpoint()
    second["channel_values"] = {"v": 2}
    second["channel_versions"] = {"v": "2"}
    parent = {"configurable": {**config["configurable"], "checkpoint_id": first["id"]}}
    proxy.set_mode("delay", delay=0.5)
    with pytest.raises(DeepAgentsRedisError):
        saver.put(parent, second, {"step": 1}, {"v": "2"})
    # the request did reach Redis: the put was applied though its caller saw an error
    _wait(
        lambda: (
            direct.get_tuple(config) is not None
            and direct.get_tuple(config).checkpoint["id"] == second["id"]
        )
    )  # type: ignore[union-attr]
    proxy.set_mode("pass")
    stored = saver.put(parent, second, {"step": 1}, {"v": "2"})  # the caller's retry
    history = list(direct.list(config))
    assert [t.checkpoint["id"] for t in history] == [second["id"], first["id"]]
    assert history[0].checkpoint["channel_values"] == {"v": 2}
    # a retried put_writes keeps the writes stored first, once
    saver.put_writes(stored, [("v", "a"), ("v", "b")], "task")
    saver.put_writes(stored, [("v", "x"), ("v", "y")], "task")
    tup = direct.get_tuple(stored)
    assert tup is not None
    assert tup.pending_writes == [("task", "v", "a"), ("task", "v", "b")]
    direct.delete_thread(thread)
    saver.close()
    direct.close()
