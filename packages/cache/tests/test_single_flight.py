"""Single-flight: N concurrent identical misses make exactly one model call."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from deepagents_redis.cache import CacheSettings, RedisLLMCache
from langchain_core.outputs import Generation

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("_sf_worker.py")
PROMPT, LLM = "the same question", "model=fake"

# These tests are about single flight, not deadlines (tests/test_phase_deadlines.py covers
# those): a busy CI machine once took over a second for the first Cluster discovery, the
# lookups failed open at the default 1 s / 0.25 s deadlines and the model was called 3 times.
PATIENT = CacheSettings(deadline_seconds=5.0, connect_deadline_seconds=10.0)


def run_threads(cache_factory: Any, n: int) -> tuple[int, list[Any]]:
    calls = 0
    lock = threading.Lock()
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        nonlocal calls
        cache = cache_factory()
        barrier.wait(timeout=10)
        got = cache.lookup(PROMPT, LLM)
        if got is None:
            with lock:
                calls += 1
            time.sleep(0.2)  # the model takes a while
            got = [Generation(text="answer")]
            cache.update(PROMPT, LLM, got)
        results[i] = got

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return calls, results


def test_eight_threads_one_model_call(make_llm_cache: Any, recorder: Any) -> None:
    shared = make_llm_cache(ttl=60, namespace="sf-threads", cache_settings=PATIENT)
    calls, results = run_threads(lambda: shared, 8)
    assert calls == 1
    assert results == [[Generation(text="answer")]] * 8
    assert recorder.total("cache.single_flight", outcome="leader") == 1


def test_eight_threads_separate_cache_objects(make_llm_cache: Any) -> None:
    caches = [make_llm_cache(ttl=60, namespace="sf-objs", cache_settings=PATIENT) for _ in range(8)]
    it = iter(caches)
    lock = threading.Lock()

    def next_cache() -> RedisLLMCache:
        with lock:
            return next(it)

    calls, results = run_threads(next_cache, 8)
    assert calls == 1
    assert results == [[Generation(text="answer")]] * 8


def test_without_single_flight_every_thread_calls(make_llm_cache: Any) -> None:
    shared = make_llm_cache(ttl=60, namespace="sf-off", single_flight=False, cache_settings=PATIENT)
    calls, _ = run_threads(lambda: shared, 8)
    # All 8 miss together (barrier); nothing makes them wait for each other.
    assert calls == 8


async def test_async_tasks_one_model_call(make_llm_cache: Any) -> None:
    cache = make_llm_cache(ttl=60, namespace="sf-async", cache_settings=PATIENT)
    calls = 0
    start = asyncio.Event()

    async def worker() -> Any:
        nonlocal calls
        await start.wait()
        got = await cache.alookup(PROMPT, LLM)
        if got is None:
            calls += 1
            await asyncio.sleep(0.2)
            got = [Generation(text="answer")]
            await cache.aupdate(PROMPT, LLM, got)
        return got

    tasks = [asyncio.create_task(worker()) for _ in range(8)]
    await asyncio.sleep(0)
    start.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    assert calls == 1
    assert results == [[Generation(text="answer")]] * 8


def child_env(settings: Any) -> dict[str, str]:
    env = dict(os.environ)
    env["DEEPAGENTS_REDIS_URL"] = str(settings.url)
    env["DEEPAGENTS_REDIS_KEY_PREFIX"] = settings.key_prefix
    env["DEEPAGENTS_REDIS_CLUSTER"] = settings.cluster
    return env


# Four fresh interpreters import LangChain (seconds each on a loaded 2-core runner).
@pytest.mark.timeout(300)
def test_four_processes_one_model_call(redis_target: Any) -> None:
    ns = "sf-procs"
    env = child_env(redis_target.settings)
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "race", ns],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    cache = RedisLLMCache(settings=redis_target.settings, namespace=ns)
    ks = cache.connector.keyspace
    cache.close()
    try:
        # Let every child import and connect, then release them together.
        time.sleep(1.0)
        redis_target.client.set(ks.key("test", ns, "go"), 1)
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    lines = sorted(out.strip() for out, _ in outs)
    assert lines == ["CALLED", "HIT", "HIT", "HIT"]
    assert redis_target.client.get(ks.key("test", ns, "calls")) == b"1"


@pytest.mark.timeout(300)
def test_killed_lease_holder_leads_to_exactly_one_takeover(
    redis_target: Any, make_llm_cache: Any, recorder: Any
) -> None:
    ns = "sf-kill"
    holder = subprocess.Popen(
        [sys.executable, str(WORKER), "hold", ns],
        env=child_env(redis_target.settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline().strip()  # bounded by the test timeout
        assert line == "LEASED", holder.stderr.read() if holder.stderr else ""
        holder.kill()
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        for stream in (holder.stdout, holder.stderr):
            if stream is not None:
                stream.close()
    shared = make_llm_cache(ttl=60, namespace=ns, wait_timeout=30)
    calls, results = run_threads(lambda: shared, 6)
    assert calls == 1
    assert results == [[Generation(text="answer")]] * 6
    assert recorder.total("cache.single_flight", outcome="takeover") == 1
    assert recorder.total("cache.single_flight", outcome="leader") == 0


def test_same_thread_re_enters_its_own_lease(make_llm_cache: Any) -> None:
    # The model raised; update() never came; the same caller retries: no self-deadlock.
    cache = make_llm_cache(ttl=60, namespace="sf-retry", wait_timeout=30, lease_ttl=30)
    assert cache.lookup(PROMPT, LLM) is None
    assert cache.lookup(PROMPT, LLM) is None  # immediately: re-entry, not a 30 s wait
    cache.update(PROMPT, LLM, [Generation(text="answer")])
    assert cache.lookup(PROMPT, LLM) == [Generation(text="answer")]


def test_waiter_gives_up_after_wait_timeout(make_llm_cache: Any, recorder: Any) -> None:
    leader = make_llm_cache(ttl=60, namespace="sf-timeout", lease_ttl=30)
    assert leader.lookup(PROMPT, LLM) is None  # holds the lease, never updates
    waiter = make_llm_cache(ttl=60, namespace="sf-timeout", wait_timeout=0.2)
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(waiter.lookup(PROMPT, LLM)))
    t.start()
    t.join(timeout=30)
    assert result == [None]
    assert recorder.total("cache.single_flight", outcome="wait_timeout") == 1


def _script_calls(target: Any) -> int:
    """EVALSHA + EVAL calls the target's servers have answered so far."""
    return int(target.command_calls("evalsha", "eval"))


async def test_a_miss_takes_the_lease_in_the_same_call(
    make_llm_cache: Any, redis_target: Any, recorder: Any
) -> None:
    # One script call answers "no entry" and hands this caller the lease (cache_lookup);
    # the old way was a read, then a second call for the lease.
    cache = make_llm_cache(ttl=60, namespace="sf-one-call")
    cache.lookup("warm-up", LLM)  # loads the script on the server (EVALSHA, then EVAL)
    cache.update("warm-up", LLM, [Generation(text="warm")])
    before = _script_calls(redis_target)
    assert cache.lookup(PROMPT, LLM) is None
    assert _script_calls(redis_target) - before == 1
    assert recorder.total("cache.lookup", outcome="miss") == 2
    assert recorder.total("cache.single_flight", outcome="leader") == 2  # and the warm-up
    # The lease is held: another caller waits instead of computing too.
    other = make_llm_cache(ttl=60, namespace="sf-one-call", wait_timeout=0.1)
    assert await other.alookup(PROMPT, LLM) is None
    assert recorder.total("cache.single_flight", outcome="wait_timeout") == 1
    cache.update(PROMPT, LLM, [Generation(text="answer")])
    before = _script_calls(redis_target)
    assert await other.alookup(PROMPT, LLM) == [Generation(text="answer")]
    assert _script_calls(redis_target) - before == 1  # a hit: one call too
    # A stale entry (older generation) is counted as such, and the miss takes the lease.
    cache.clear()
    assert cache.lookup(PROMPT, LLM) is None
    assert recorder.total("cache.lookup", outcome="stale") == 1
    assert recorder.total("cache.single_flight", outcome="leader") == 3


OUTCOMES = ("leader", "wait_timeout")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_worker_waits_on_its_parents_lease(make_llm_cache: Any, recorder: Any) -> None:
    # A lease token names this cache object (a random prefix) and the thread; a forked child
    # kept the prefix and its main thread has the parent's thread id, so it re-entered the
    # parent's lease as its own and called the model too (prefork servers: once per worker).
    cache = make_llm_cache(
        ttl=60, namespace="sf-fork", lease_ttl=30, wait_timeout=0, cache_settings=PATIENT
    )
    assert cache.lookup(PROMPT, LLM) is None  # this thread leads and never updates
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the same question, on the same cache object
        code = 1
        try:
            before = [recorder.total("cache.single_flight", outcome=o) for o in OUTCOMES]
            got = cache.lookup(PROMPT, LLM)
            after = [recorder.total("cache.single_flight", outcome=o) for o in OUTCOMES]
            counts = " ".join(str(a - b) for a, b in zip(after, before, strict=True))
            os.write(out_w, f"{got is None} {counts}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(out_w)
    reply = os.read(out_r, 64).decode()
    os.close(out_r)
    status = 1
    for _ in range(3000):  # bounded: 3000 * 10 ms
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert status == 0
    # A waiter that gave up (wait_timeout=0), not a second leader.
    assert reply == "True 0 1"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_lease_without_an_expiry_is_taken_over_at_once(
    make_llm_cache: Any, redis_target: Any, recorder: Any, mode: str
) -> None:
    # Every cache lease is SET with PX; one without an expiry (a copy that dropped TTLs,
    # another tool) never ended: each lookup of that prompt waited the whole wait_timeout
    # (75 s by default) and then missed, forever.
    cache = make_llm_cache(ttl=60, namespace="sf-persist", wait_timeout=10, cache_settings=PATIENT)
    lease = cache.redis_keys(PROMPT, LLM)["lease"]
    redis_target.client.set(lease, b"not-a-cache-token")
    got = cache.lookup(PROMPT, LLM) if mode == "sync" else await cache.alookup(PROMPT, LLM)
    assert got is None
    assert recorder.total("cache.single_flight", outcome="leader") == 1
    assert recorder.total("cache.single_flight", outcome="wait_timeout") == 0
    assert 0 < redis_target.client.pttl(lease) <= 60_000
    if mode == "sync":
        cache.update(PROMPT, LLM, [Generation(text="answer")])
    else:
        await cache.aupdate(PROMPT, LLM, [Generation(text="answer")])
    assert redis_target.client.exists(lease) == 0


@pytest.mark.parametrize("after_a_hit", [False, True], ids=["script", "plain-reads"])
def test_waiters_on_an_unreadable_entry_wait_for_the_leader(
    make_llm_cache: Any, redis_target: Any, recorder: Any, after_a_hit: bool
) -> None:
    # A fresh entry that does not decode (another version's format, a planted value): the
    # first caller takes the lease, the others must wait for its value. Their poll got the
    # same unreadable bytes back, counted them corrupt and 'served', and returned a miss
    # without the lease: every waiter called the model too.
    shared = make_llm_cache(
        ttl=60, namespace="sf-unreadable", cache_settings=PATIENT, wait_timeout=10
    )
    if after_a_hit:
        shared.update("warm", LLM, [Generation(text="warm")])
        assert shared.lookup("warm", LLM) == [Generation(text="warm")]
    keys = shared.redis_keys(PROMPT, LLM)
    client = redis_target.client
    gen = client.get(keys["generation"]) or b"0"
    client.set(keys["entry"], gen + b":not an envelope")
    calls, results = run_threads(lambda: shared, 4)
    assert calls == 1
    assert results == [[Generation(text="answer")]] * 4
    assert recorder.total("cache.single_flight", outcome="served") == 3


def test_a_skipped_update_without_single_flight_leaves_others_leases_alone(
    make_llm_cache: Any, redis_target: Any
) -> None:
    # A cache without single flight holds no lease, but an update it skipped (a value over
    # max_entry_bytes, or one that does not serialise) deleted the entry's lease anyway: a
    # round trip for nothing, and the lease of another cache on the namespace was gone, so
    # its waiters took over and called the model again.
    settings = CacheSettings(
        max_entry_bytes=4_096, deadline_seconds=5.0, connect_deadline_seconds=10.0
    )
    leader = make_llm_cache(namespace="sf-skip", cache_settings=settings)
    plain = make_llm_cache(namespace="sf-skip", cache_settings=settings, single_flight=False)
    assert leader.lookup(PROMPT, LLM) is None  # takes the lease
    lease = leader.redis_keys(PROMPT, LLM)["lease"]
    assert redis_target.client.exists(lease) == 1
    plain.update(PROMPT, LLM, [Generation(text="x" * 8_192)])  # skipped: oversize
    assert redis_target.client.exists(lease) == 1
    leader.update(PROMPT, LLM, [Generation(text="x" * 8_192)])  # skipped: frees its lease
    assert redis_target.client.exists(lease) == 0


@pytest.mark.parametrize("skipped", [False, True], ids=["stored", "skipped"])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_update_leaves_a_lease_another_caller_took_after_ours_expired(
    make_llm_cache: Any, redis_target: Any, mode: str, skipped: bool
) -> None:
    # Our model call outlived our lease; another caller took the key over (its lease, its
    # token) and its waiters wait for its value. Our update deleted whatever lease was on
    # the key: a skipped update (oversize) left those waiters with no lease and no value,
    # and one of them called the model again. Only the caller's own lease may be dropped.
    settings = CacheSettings(
        max_entry_bytes=4_096, deadline_seconds=5.0, connect_deadline_seconds=10.0
    )
    cache = make_llm_cache(namespace=f"sf-stolen-{mode}-{skipped}", cache_settings=settings)
    lease = cache.redis_keys(PROMPT, LLM)["lease"]
    client = redis_target.client
    assert (
        cache.lookup(PROMPT, LLM) if mode == "sync" else await cache.alookup(PROMPT, LLM)
    ) is None
    ours = client.get(lease)
    assert ours is not None
    client.set(lease, b"another-callers-token", px=60_000)  # ours expired; it was taken over
    answer = [Generation(text="x" * (8_192 if skipped else 10))]
    if mode == "sync":
        cache.update(PROMPT, LLM, answer)
    else:
        await cache.aupdate(PROMPT, LLM, answer)
    assert client.get(lease) == b"another-callers-token"
    # Our own lease is still dropped by our update, stored or skipped.
    client.set(lease, ours, px=60_000)
    if mode == "sync":
        cache.update(PROMPT, LLM, answer)
    else:
        await cache.aupdate(PROMPT, LLM, answer)
    assert client.exists(lease) == 0
