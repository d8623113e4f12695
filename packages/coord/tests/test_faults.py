"""Workers as real processes: kill -9, SIGSTOP (a stale worker), SIGTERM, long runs.

Each test starts worker processes (`_proc_worker.py`) on the session's private server and
counts executions per task in a hash, so "run once" is measured, not assumed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deepagents_redis.coord import TaskClient
from deepagents_redis.core import RedisConnector, RedisSettings, create_client

from .conftest import FAST

pytestmark = [pytest.mark.integration, pytest.mark.fault]

SCRIPT = Path(__file__).with_name("_proc_worker.py")


class Fleet:
    def __init__(self, settings: RedisSettings, counter: str) -> None:
        self.settings = settings
        self.counter = counter
        self.procs: list[subprocess.Popen[bytes]] = []
        self.raw = create_client(settings)

    def start(
        self, concurrency: int = 4, grace: float = 10.0, chat: bool = False, **options: Any
    ) -> subprocess.Popen[bytes]:
        cfg = {
            "url": self.settings.url,
            "prefix": self.settings.key_prefix,
            "counter": self.counter,
            "cluster": self.settings.cluster == "on",
            "concurrency": concurrency,
            "grace": grace,
            "chat": chat,
            "options": {**FAST, **options},
        }
        proc = subprocess.Popen([sys.executable, str(SCRIPT), json.dumps(cfg)])
        self.procs.append(proc)
        return proc

    def wait_ready(self, tasks: TaskClient, n: int) -> None:
        for _ in range(1_200):  # a loaded machine takes seconds to import a worker
            if len(tasks.workers()) >= n:
                return
            time.sleep(0.05)
        raise AssertionError("workers did not start")

    def runs(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.raw.hgetall(self.counter).items()}

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        self.raw.close()


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> RedisSettings:
    """The standalone server, or the cluster when a test asks for it (indirect param)."""
    if getattr(request, "param", "standalone") == "cluster":
        return request.getfixturevalue("cluster_settings")  # type: ignore[no-any-return]
    return request.getfixturevalue("redis_settings")  # type: ignore[no-any-return]


@pytest.fixture
def fleet(settings: RedisSettings) -> Iterator[Fleet]:
    f = Fleet(settings, f"{settings.key_prefix}:runs")
    yield f
    f.close()


@pytest.fixture
def client(settings: RedisSettings) -> Iterator[TaskClient]:
    conn = RedisConnector(settings=settings)
    yield TaskClient(connector=conn, check_agents=False, **FAST)
    conn.close()


def _wait_status(tasks: TaskClient, task_id: str, status: str) -> None:
    for _ in range(500):
        if tasks.get(task_id).status == status:
            return
        time.sleep(0.01)
    raise AssertionError(f"task never reached {status}")


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param("standalone", id="standalone"),
        pytest.param("cluster", id="cluster", marks=pytest.mark.cluster),
    ],
    indirect=True,
)
def test_kill_9_mid_run_every_task_completes_once(fleet: Fleet, client: TaskClient) -> None:
    victim = fleet.start(concurrency=4)
    fleet.start(concurrency=4)
    fleet.start(concurrency=4)
    fleet.wait_ready(client, 3)
    ids = [client.submit("work", {"sleep": 0.005}) for _ in range(1_000)]
    while sum(fleet.runs().values()) < 300:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    infos = [client.join(task_id, timeout=60) for task_id in ids]
    assert {i.status for i in infos} == {"success"}
    runs = fleet.runs()
    assert set(runs) == set(ids)  # every task ran
    extra = sum(runs.values()) - len(ids)
    print(f"\nexecutions beyond one per task after kill -9: {extra} (killed worker ran 4 at most)")
    assert extra <= 4  # at most the killed worker's in-flight tasks ran twice
    # a claim the victim made but had not started counts as an attempt without a run
    assert all(i.attempts >= runs[i.task_id] for i in infos)


def test_long_task_is_not_rerun_while_its_worker_lives(fleet: Fleet, client: TaskClient) -> None:
    fleet.start(concurrency=1)
    fleet.start(concurrency=1)
    fleet.wait_ready(client, 2)
    task_id = client.submit("work", {"sleep": 3 * FAST["lease_seconds"]})
    info = client.join(task_id, timeout=30)
    assert info.status == "success"
    assert info.attempts == 1
    assert fleet.runs() == {task_id: 1}


def _wait_run_started(fleet: Fleet, task_id: str) -> None:
    """Until the agent function itself ran (not just the claim): its side effect is counted."""
    for _ in range(500):
        if fleet.runs().get(task_id):
            return
        time.sleep(0.01)
    raise AssertionError("the run never started")


def _holder(fleet: Fleet, tasks: TaskClient, task_id: str) -> subprocess.Popen[bytes]:
    pid = int((tasks.get(task_id).worker or "").split("-")[-2])
    return next(p for p in fleet.procs if p.pid == pid)


def test_after_kill_9_a_long_task_runs_again_once(fleet: Fleet, client: TaskClient) -> None:
    fleet.start(concurrency=1)
    fleet.start(concurrency=1)
    fleet.wait_ready(client, 2)
    task_id = client.submit("work", {"sleep": 2.0})
    _wait_run_started(fleet, task_id)
    first = _holder(fleet, client, task_id)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    info = client.join(task_id, timeout=30)
    assert info.status == "success"
    survivor = next(p for p in fleet.procs if p is not first)
    assert info.result == {"pid": survivor.pid}
    assert info.attempts == 2
    assert fleet.runs() == {task_id: 2}
    assert [h["error"] for h in info.history] == ["worker stopped heartbeating"]


def test_a_revived_stale_worker_cannot_overwrite_the_result(
    fleet: Fleet, client: TaskClient
) -> None:
    fleet.start(concurrency=1)
    fleet.start(concurrency=1)
    fleet.wait_ready(client, 2)
    task_id = client.submit("work", {"sleep": 1.0})
    _wait_run_started(fleet, task_id)
    stale = _holder(fleet, client, task_id)
    fresh = next(p for p in fleet.procs if p is not stale)
    stale.send_signal(signal.SIGSTOP)  # frozen: no heartbeats, its lease runs out
    try:
        info = client.join(task_id, timeout=30)
    finally:
        stale.send_signal(signal.SIGCONT)
    assert info.result == {"pid": fresh.pid}
    time.sleep(2.0)  # the revived worker finishes its copy and tries to write
    after = client.get(task_id)
    assert after.result == {"pid": fresh.pid}
    assert after.attempts == 2
    assert fleet.runs() == {task_id: 2}
    events = [e.type.rsplit(".", 1)[-1] for _, e in client.events(task_id)]
    assert events.count("completed") == 1


def test_sigterm_hands_in_flight_tasks_back_and_exits_0(fleet: Fleet, client: TaskClient) -> None:
    leaving = fleet.start(concurrency=1, grace=0.1)
    fleet.wait_ready(client, 1)
    staying = fleet.start(concurrency=1)
    task_id = client.submit("work", {"sleep": 2.0})
    _wait_status(client, task_id, "running")
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(timeout=15) == 0
    info = client.join(task_id, timeout=30)
    assert info.status == "success"
    assert info.result == {"pid": staying.pid}
    assert info.attempts == 1  # a hand-back is not a failed attempt
    kinds = [e.type.rsplit(".", 1)[-1] for _, e in client.events(task_id)]
    assert kinds.count("handed_back") == 1
    assert kinds.count("started") == 2


def _contents(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m.type, m.content) for m in result["messages"]]


def _wait_event(tasks: TaskClient, task_id: str, kind: str) -> None:
    for _ in range(1_000):
        if any(e.type.endswith(kind) for _, e in tasks.events(task_id)):
            return
        time.sleep(0.01)
    raise AssertionError(f"no {kind} event")


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param("standalone", id="standalone"),
        pytest.param("cluster", id="cluster", marks=pytest.mark.cluster),
    ],
    indirect=True,
)
def test_an_interrupting_follow_up_stops_the_remote_run_and_runs_once(
    fleet: Fleet, client: TaskClient
) -> None:
    fleet.start(concurrency=2, chat=True)
    fleet.wait_ready(client, 1)
    task_id = client.submit("chat", {"messages": [{"role": "user", "content": "slow question"}]})
    _wait_event(client, task_id, "task.started")
    time.sleep(0.3)  # the note is taken; the answer takes 60 s
    client.send(task_id, {"role": "user", "content": "quick one"}, strategy="interrupt")
    info = client.join(task_id, timeout=30)  # about a heartbeat, not the 60 s answer
    assert info.status == "success"
    assert info.attempts == 1  # an interrupt is not a failed attempt
    # the conversation so far (the note of the stopped run), the follow-up, its answer
    assert _contents(info.result) == [
        ("human", "slow question"),
        ("ai", "noted: slow question"),
        ("human", "quick one"),
        ("ai", "noted: quick one"),
        ("ai", "answer to quick one"),
    ]
    assert fleet.runs() == {f"{task_id}:answers": 1}  # the stopped answer never ran on
    kinds = [e.type.rsplit(".", 1)[-1] for _, e in client.events(task_id)]
    assert kinds.count("interrupted") == 1
    assert kinds.count("completed") == 1
    # the stopped run's token is stale: it can write nothing, no result either
    raw = fleet.raw
    keys = client.keys.task(task_id)
    assert int(raw.hget(keys.record, "fence")) == 2


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param("standalone", id="standalone"),
        pytest.param("cluster", id="cluster", marks=pytest.mark.cluster),
    ],
    indirect=True,
)
def test_an_enqueued_follow_up_runs_after_the_remote_run(fleet: Fleet, client: TaskClient) -> None:
    fleet.start(concurrency=2, chat=True)
    fleet.wait_ready(client, 1)
    task_id = client.submit("chat", {"messages": [{"role": "user", "content": "first"}]})
    client.send(task_id, {"role": "user", "content": "second"}, strategy="enqueue")
    info = client.join(task_id, timeout=30)
    assert info.status == "success"
    contents = _contents(info.result)
    assert contents[-1] == ("ai", "answer to second")
    assert ("ai", "answer to first") in contents or contents[:2] == [
        ("human", "first"),
        ("human", "second"),
    ]  # sent before the run started, the follow-up joins the first call
    kinds = [e.type.rsplit(".", 1)[-1] for _, e in client.events(task_id)]
    assert "interrupted" not in kinds
