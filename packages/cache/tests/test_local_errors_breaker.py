"""A request the client refuses to encode is not an outage: the breaker stays as it was.

`FailOpen` counted every exception that is not a server reply as connection trouble, so a
call whose arguments redis-py refused to encode (a ``UnicodeEncodeError`` for a lone
surrogate, a ``DataError`` for a value of the wrong type) was a breaker failure, although
nothing was sent: a few of them opened the breaker and every other call of the cache missed
for ``breaker_reset_seconds`` (673c665 removed the one trigger found, in the node cache; this
is the policy underneath). Such a call is still a fail-open miss (or, strict, an error) and
counted as an error; it neither trips the breaker nor counts as the server answering, and a
half-open breaker's probe spent on one is given back.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from deepagents_redis.cache._failopen import FAILED, FailOpen
from deepagents_redis.core import (
    BreakerState,
    CircuitBreaker,
    DeepAgentsRedisError,
    RedisConnector,
    RedisSettings,
    RedisUnavailableError,
)

pytestmark = pytest.mark.integration

# Real refusals by redis-py's encoder, before anything is sent.
_REFUSED = {
    "lone-surrogate": "\ud800",  # UnicodeEncodeError
    "wrong-type": {"a": 1},  # DataError
}


# What strict raises for them: the encoder's own error, or core's typed translation.
_RAISED = (UnicodeError, DeepAgentsRedisError, redis.exceptions.DataError)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client(redis_settings: RedisSettings, closer: Any) -> Any:
    return closer(RedisConnector(settings=redis_settings)).client()


def _guard(*, strict: bool = False) -> tuple[FailOpen, _Clock]:
    clock = _Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    guard = FailOpen(
        metric_prefix="cache", strict=strict, breaker=breaker, warn_interval=60, deadline_seconds=5
    )
    return guard, clock


@pytest.mark.parametrize("value", list(_REFUSED.values()), ids=list(_REFUSED))
def test_refused_requests_do_not_open_the_breaker(
    client: Any, key_prefix: str, recorder: Any, value: Any
) -> None:
    guard, _ = _guard()
    for _ in range(5):
        assert guard.run("update", lambda: client.set(f"{key_prefix}:k", value)) is FAILED
    assert recorder.total("cache.update", outcome="error") == 5
    assert guard.breaker.state is BreakerState.CLOSED
    assert guard.run("update", lambda: client.set(f"{key_prefix}:k", b"v")) is True


@pytest.mark.parametrize("value", list(_REFUSED.values()), ids=list(_REFUSED))
def test_strict_raises_and_leaves_the_breaker_to_the_server(
    client: Any, key_prefix: str, value: Any
) -> None:
    guard, clock = _guard(strict=True)
    for _ in range(3):
        with pytest.raises(_RAISED) as caught:
            guard.run("update", lambda: client.set(f"{key_prefix}:k", value))
        assert not isinstance(caught.value, RedisUnavailableError)  # not an outage
    assert guard.breaker.state is BreakerState.CLOSED
    # A half-open probe spent on a refused request is given back, not held for good.
    guard.breaker.record_failure()
    clock.now += 2.0
    with pytest.raises(_RAISED):
        guard.run("update", lambda: client.set(f"{key_prefix}:k", value))
    assert guard.breaker.state is not BreakerState.CLOSED
    clock.now += 2.0
    assert guard.run("update", lambda: client.set(f"{key_prefix}:k", b"v")) is True
    assert guard.breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize("value", list(_REFUSED.values()), ids=list(_REFUSED))
def test_a_refused_half_open_probe_neither_closes_nor_wedges_the_breaker(
    client: Any, key_prefix: str, value: Any
) -> None:
    guard, clock = _guard()
    guard.breaker.record_failure()
    clock.now += 2.0
    assert guard.breaker.state is BreakerState.HALF_OPEN
    assert guard.run("update", lambda: client.set(f"{key_prefix}:k", value)) is FAILED
    # Nothing reached the server, so it proved nothing: the breaker did not close...
    assert guard.breaker.state is not BreakerState.CLOSED
    clock.now += 2.0
    # ...and the probe slot was given back: the next probe goes out and closes it.
    assert guard.run("update", lambda: client.set(f"{key_prefix}:k", b"v")) is True
    assert guard.breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize("strict", [False, True], ids=["fail-open", "strict"])
@pytest.mark.parametrize("value", list(_REFUSED.values()), ids=list(_REFUSED))
async def test_async_refusals_leave_the_breaker_to_the_server(
    redis_settings: RedisSettings, key_prefix: str, value: Any, strict: bool
) -> None:
    async with RedisConnector(settings=redis_settings) as connector:
        aclient = await connector.aclient()
        guard, clock = _guard(strict=strict)

        async def refused() -> Any:
            if strict:
                with pytest.raises(_RAISED) as caught:
                    await guard.arun("update", lambda: aclient.set(f"{key_prefix}:k", value))
                assert not isinstance(caught.value, RedisUnavailableError)
                return None
            return await guard.arun("update", lambda: aclient.set(f"{key_prefix}:k", value))

        for _ in range(3):
            assert await refused() in (None, FAILED)
        assert guard.breaker.state is BreakerState.CLOSED
        guard.breaker.record_failure()
        clock.now += 2.0
        await refused()
        assert guard.breaker.state is not BreakerState.CLOSED
        clock.now += 2.0
        assert await guard.arun("update", lambda: aclient.set(f"{key_prefix}:k", b"v")) is True
        assert guard.breaker.state is BreakerState.CLOSED
