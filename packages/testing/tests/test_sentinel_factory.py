"""`redis_sentinel_factory`: Sentinels of its own, and failures that fail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from deepagents_redis.testing import _sentinel

pytestmark = pytest.mark.fault
pytest_plugins = ["pytester"]


def test_a_sentinel_port_taken_by_another_server_is_not_adopted(
    redis_server_factory: Callable[..., Any],
    redis_sentinel_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The race of two sessions made certain: the port picked for the Sentinel is bound by
    # another process's server before the Sentinel binds it.
    foreign = redis_server_factory()
    real = _sentinel._free_port
    picks = iter([foreign.port])
    monkeypatch.setattr(_sentinel, "_free_port", lambda: next(picks, None) or real())
    topo = redis_sentinel_factory()
    assert foreign.port not in topo.sentinel_ports
    assert topo.reported_masters() == [topo.master.port]
    with redis.Redis.from_url(foreign.url, protocol=2) as client:
        assert int(client.info("server")["process_id"]) == foreign.pid


def test_a_sentinel_that_cannot_start_fails_the_test(pytester: pytest.Pytester) -> None:
    # Every RuntimeError of the topology was turned into a skip (meant for a missing
    # binary): a Sentinel that exited at startup showed up as "skipped", not as a failure.
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "addopts = -p no:cacheprovider -p no:randomly\n"
    )
    pytester.makepyfile(
        """
        def test_quorum_zero(redis_sentinel_factory):
            redis_sentinel_factory(quorum=0)  # Sentinel refuses its config and exits
        """
    )
    result = pytester.runpytest_inprocess("-rs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*could not start a sentinel of our own*exited*"])
