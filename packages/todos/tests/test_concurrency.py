"""Concurrency and retry safety on a real server (standalone and cluster)."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections import Counter
from typing import Any

import pytest
import redis
from deepagents_redis.core import ConflictError, OutcomeUnknownError, RedisSettings
from deepagents_redis.todos import (
    ItemClaimedError,
    RedisTodoRepository,
    TodoList,
    TodosSettings,
)

pytestmark = pytest.mark.integration

PROCESSES = 4
MUTATIONS = 300
MAX_ATTEMPTS = 500  # per mutation; bounded, far above what contention between 4 needs


def _mutate_once(
    repo: RedisTodoRepository, rng: random.Random, plan: TodoList, scope: str, tag: str
) -> tuple[TodoList, str, str]:
    """One random mutation based on ``plan`` (expected_version = plan.version)."""
    v = plan.version
    n = len(plan.items)
    roll = rng.random()
    if n < 3 or (roll < 0.3 and n < 30):
        item_id = f"{tag}"
        return repo.add(scope, f"item {tag}", item_id=item_id, expected_version=v), "add", item_id
    item = rng.choice(plan.items)
    if roll < 0.45:
        return repo.remove(scope, item.id, expected_version=v), "remove", item.id
    if roll < 0.7:
        status = rng.choice(["pending", "in_progress", "completed"])
        return (
            repo.update(
                scope, item.id, status=status, content=f"{item.content}.", expected_version=v
            ),
            "update",
            item.id,
        )
    if roll < 0.8:
        owner = f"owner-{tag.split('-')[0]}"
        return repo.claim(scope, item.id, owner, 0.05, expected_version=v), "claim", item.id
    if roll < 0.9:
        return repo.complete(scope, item.id, expected_version=v), "complete", item.id
    reordered = list(reversed(plan.items))
    return repo.replace(scope, reordered, expected_version=v), "replace", ""


def _worker(url: str, prefix: str, cluster: bool, scope: str, worker: int, queue: Any) -> None:
    settings = RedisSettings(url=url, key_prefix=prefix, cluster="on" if cluster else "off")
    repo = RedisTodoRepository(
        settings=settings, todos_settings=TodosSettings(max_items=40, log_maxlen=100_000)
    )
    rng = random.Random(worker)
    applied: list[tuple[int, str, str]] = []
    conflicts = 0
    try:
        for i in range(MUTATIONS):
            for _ in range(MAX_ATTEMPTS):
                plan = repo.get(scope)
                try:
                    result, op, item_id = _mutate_once(repo, rng, plan, scope, f"{worker}-{i}")
                except ItemClaimedError:
                    continue  # someone holds that item: pick another mutation
                except ConflictError:
                    conflicts += 1
                    continue
                except Exception as exc:  # completed items cannot be claimed: pick again
                    if "is completed" in str(exc):
                        continue
                    raise
                applied.append((result.version, op, item_id))
                break
            else:
                raise AssertionError(f"mutation {i} of worker {worker} never applied")
        queue.put((worker, applied, conflicts, None))
    except BaseException as exc:
        queue.put((worker, applied, conflicts, repr(exc)))
    finally:
        repo.close()


def test_four_processes_of_random_mutations(redis_target: Any) -> None:
    scope = "shared-plan"
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                redis_target.url,
                redis_target.key_prefix,
                redis_target.is_cluster,
                scope,
                w,
                queue,
            ),
        )
        for w in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=100) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    queue.close()
    queue.join_thread()
    errors = [r[3] for r in results if r[3]]
    assert not errors
    applied = [entry for r in results for entry in r[1]]
    assert len(applied) == PROCESSES * MUTATIONS
    assert sum(r[2] for r in results) > 0  # the workers really contended

    repo = RedisTodoRepository(client=redis_target.client, settings=redis_target.settings)
    plan = repo.get(scope)
    # Every applied mutation produced exactly one version, and nothing else did.
    assert plan.version == len(applied)
    assert sorted(v for v, _, _ in applied) == list(range(1, len(applied) + 1))
    # Membership: everything added and not removed is there, exactly once.
    added = Counter(item for _, op, item in applied if op == "add")
    removed = Counter(item for _, op, item in applied if op == "remove")
    assert all(c == 1 for c in added.values())
    assert all(c == 1 for c in removed.values())
    assert set(removed) <= set(added)
    assert len(plan.ids) == len(set(plan.ids))
    assert set(plan.ids) == set(added) - set(removed)
    # The change log agrees with the workers' accounts.
    log = repo.history(scope, limit=len(applied) + 10)
    assert [c.version for c in log] == list(range(1, len(applied) + 1))
    assert Counter(c.op for c in log) == Counter(op for _, op, _ in applied)


def test_claim_under_contention_has_one_owner_per_item(redis_target: Any) -> None:
    scope = "claims"
    repo = RedisTodoRepository(client=redis_target.client, settings=redis_target.settings)
    repo.replace(scope, [{"id": f"i{n}", "content": f"item {n}"} for n in range(30)])
    workers = 8
    barrier = threading.Barrier(workers)
    won: dict[str, list[str]] = {f"w{w}": [] for w in range(workers)}
    failures: list[BaseException] = []

    def contend(name: str) -> None:
        try:
            barrier.wait(timeout=30)
            order = list(range(30))
            random.Random(name).shuffle(order)
            for n in order:
                try:
                    repo.claim(scope, f"i{n}", name, lease_seconds=60)
                except ItemClaimedError:
                    continue
                won[name].append(f"i{n}")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=contend, args=(name,)) for name in won]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures
    claimed = [item for items in won.values() for item in items]
    assert sorted(claimed) == sorted(f"i{n}" for n in range(30))  # each item won exactly once
    plan = repo.get(scope)
    owners = {item.id: item.owner for item in plan.items}
    for name, items in won.items():
        assert all(owners[i] == name for i in items)
    assert plan.version == 1 + 30


def test_retried_mutation_after_timeout_applies_once(redis_server_factory: Any) -> None:
    server = redis_server_factory(debug=True)
    settings = RedisSettings(
        url=server.url, key_prefix="p", socket_timeout=0.25, retries=0, cluster="off"
    )
    repo = RedisTodoRepository(settings=settings, retries=0, eviction_check="off")
    admin = redis.Redis.from_url(server.url)
    probe = redis.Redis.from_url(server.url, socket_timeout=0.05)
    try:
        repo.add("s", "seed", item_id="a")  # loads the script

        def block(seconds: str) -> threading.Thread:
            sleeper = threading.Thread(
                target=admin.execute_command, args=("DEBUG", "SLEEP", seconds)
            )
            sleeper.start()
            # Wait until the server is inside DEBUG SLEEP: a PING stops being answered.
            for _ in range(500):
                try:
                    probe.ping()
                except redis.exceptions.TimeoutError:
                    return sleeper
                time.sleep(0.005)
            raise AssertionError("DEBUG SLEEP never started")

        # 1. The client times out; the command is still queued on the server.
        sleeper = block("1.0")
        with pytest.raises(OutcomeUnknownError):
            repo.update("s", "a", status="completed", op_id="op-1")
        sleeper.join(timeout=30)
        # The server applied it once after waking; the retry returns the recorded reply.
        again = repo.update("s", "a", status="completed", op_id="op-1")
        assert again.version == 2
        assert repo.get("s").version == 2

        # 2. The repository's own retries (same op id) while the server sleeps.
        retrying = RedisTodoRepository(settings=settings, retries=6, eviction_check="off")
        try:
            sleeper = block("0.6")
            try:
                plan = retrying.add("s", "second", item_id="b", op_id="op-2")
            except OutcomeUnknownError:
                sleeper.join(timeout=30)
                plan = retrying.add("s", "second", item_id="b", op_id="op-2")
            sleeper.join(timeout=30)
            assert plan.version == 3
        finally:
            retrying.close()
        final = repo.get("s")
        assert final.version == 3
        assert final.ids == ["a", "b"]
        assert [c.op for c in repo.history("s")] == ["add", "update", "add"]
    finally:
        admin.close()
        probe.close()
        repo.close()
