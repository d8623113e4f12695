import asyncio
import threading

import pytest
from deepagents_redis.core import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


def test_closed_until_threshold_consecutive_failures(clock):
    b = CircuitBreaker(failure_threshold=3, reset_timeout=10, clock=clock)
    assert b.state is BreakerState.CLOSED
    b.record_failure()
    b.record_failure()
    assert b.allow()
    assert b.state is BreakerState.CLOSED
    b.record_success()  # resets the streak
    assert b.failures == 0
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED
    b.record_failure()
    assert b.state is BreakerState.OPEN
    assert b.allow() is False


def test_open_becomes_half_open_after_reset_timeout(clock):
    b = CircuitBreaker(failure_threshold=1, reset_timeout=5, clock=clock)
    b.record_failure()
    clock.advance(4.999)
    assert b.state is BreakerState.OPEN
    assert not b.allow()
    clock.advance(0.001)
    assert b.state is BreakerState.HALF_OPEN


def test_half_open_admits_limited_probes_then_closes_on_success(clock):
    b = CircuitBreaker(failure_threshold=1, reset_timeout=1, half_open_max_calls=2, clock=clock)
    b.record_failure()
    clock.advance(1)
    assert b.allow()
    assert b.allow()
    assert not b.allow()  # both probe slots in flight
    assert b.state is BreakerState.HALF_OPEN
    b.record_success()
    assert b.state is BreakerState.CLOSED
    assert all(b.allow() for _ in range(10))


def test_failed_probe_reopens_and_restarts_the_timer(clock):
    b = CircuitBreaker(failure_threshold=2, reset_timeout=3, clock=clock)
    b.record_failure()
    b.record_failure()
    clock.advance(3)
    assert b.allow()
    b.record_failure()  # a single probe failure re-opens, regardless of the threshold
    assert b.state is BreakerState.OPEN
    clock.advance(2.9)
    assert not b.allow()
    clock.advance(0.1)
    assert b.allow()
    assert b.state is BreakerState.HALF_OPEN


def test_reset_and_repr(clock):
    b = CircuitBreaker(failure_threshold=1, clock=clock)
    b.record_failure()
    assert "open" in repr(b)
    b.reset()
    assert b.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": 0},
        {"reset_timeout": 0},
        {"reset_timeout": float("nan")},  # accepted before: the breaker never half-opened
        # Accepted before: open for good after the threshold (inf never elapses; NaN never
        # reached, so never opened; no probe slot below NaN, so half-open refused all).
        {"reset_timeout": float("inf")},
        {"failure_threshold": float("nan")},
        {"failure_threshold": 2.5},
        {"half_open_max_calls": float("nan")},
        {"half_open_max_calls": True},
        {"half_open_max_calls": 0},
    ],
)
def test_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker(**kwargs)


def test_thread_safe_probe_accounting(clock):
    b = CircuitBreaker(failure_threshold=1, reset_timeout=1, half_open_max_calls=3, clock=clock)
    b.record_failure()
    clock.advance(1)
    admitted = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait(timeout=10)
        admitted.extend(b.allow() for _ in range(50))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sum(admitted) == 3  # exactly the probe budget, never more


async def test_usable_from_async_code(clock):
    b = CircuitBreaker(failure_threshold=2, reset_timeout=1, clock=clock)

    async def call(fail):
        if not b.allow():
            return "short-circuit"
        await asyncio.sleep(0)
        if fail:
            b.record_failure()
            return "failed"
        b.record_success()
        return "ok"

    results = [await call(True) for _ in range(3)]
    assert results == ["failed", "failed", "short-circuit"]
    clock.advance(1)
    assert await call(False) == "ok"
    assert b.state is BreakerState.CLOSED
