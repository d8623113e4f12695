"""Real Sentinel failover through core's client factory (BRIEF §4: tested, not assumed).

Topology (the testing plugin's ``redis_sentinel_factory``), all private subprocesses on free
loopback ports with their own temp dirs: one master, one replica (``REPLICAOF``), three
Sentinels (quorum 2) with a short ``down-after-milliseconds``. Each test builds ONE client from a
``redis+sentinel://s1,s2,s3/mymaster/0`` URL, makes writes acknowledged by the replica
(``WAIT 1``), triggers a failover (``SENTINEL FAILOVER`` or ``kill -9`` of the master) and then
checks that the same client object:

* only ever fails with our typed errors (``RedisUnavailableError`` / ``OutcomeUnknownError``,
  raised ``from`` the redis-py exception) while the topology switches;
* writes to the promoted replica once Sentinel has switched (it rediscovers the master);
* still reads every write acknowledged before the failover;
* is reported as ``mode == "sentinel"`` by ``check_health``.

With ``kill -9`` every write the client saw succeed must be on the new master (the old one is
dead, so nothing else could have acknowledged it). With ``SENTINEL FAILOVER`` the old master
stays writable until Sentinel demotes it, and writes it acknowledged in that window are lost
(asynchronous replication; see docs/operations.md): the test waits for the demotion before
judging where writes land, and checks that no lost write had been confirmed by ``WAIT 1``.

The ``kill -9`` case also runs over TLS (``tls``): the Sentinels listen on a TLS port and the
client asks them there (``rediss+sentinel://``), reaches each master on its TLS port, and the
replica and Sentinels replicate, monitor and talk to each other over TLS, so after the switch
the Sentinels name the promoted replica's TLS port and the client must follow it there.

Every loop is bounded by an attempt count; no assertion depends on elapsed time.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import redis.asyncio
from deepagents_redis.core import (
    OutcomeUnknownError,
    RedisUnavailableError,
    acheck_health,
    check_health,
    create_async_client,
    create_client,
    redis_errors,
)
from deepagents_redis.testing import SentinelFactory, SentinelTopology

pytestmark = [pytest.mark.integration, pytest.mark.fault]

SERVICE = "mymaster"
TYPED = (RedisUnavailableError, OutcomeUnknownError)
POLL = 0.05  # seconds between polls
SWITCH_POLLS = 300  # bounded wait for the failover (and, for SENTINEL FAILOVER, the demotion)
WRITE_ATTEMPTS = 200  # bounded attempts for the first write after the switch
WAIT_MS = 200  # WAIT's own bound; a 0 reply only means "not known to be replicated"
# Sentinel's own timers are left at their defaults but one: Sentinel INFOs a healthy replica
# every 10 s, so demoting the old master after SENTINEL FAILOVER could wait that long; 1 s
# (Redis >= 7: SENTINEL DEBUG) keeps it short. Shortening more is harmful, as seen here:
# ping-period 200 ms made the leader find "no good replica" (an INFO older than 5 pings is
# stale) and info-period 200 ms leaves little slack for the same check; publish-period
# 200 ms made a Sentinel demote the freshly promoted replica again (it waits 4 publish
# periods, 8 s by default, for news of a failover). Those 8 s are also how long the old
# master of a SENTINEL FAILOVER stays writable after the switch.
_SENTINEL_DEBUG = (("info-period", "1000"),)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("DEEPAGENTS_REDIS_"):
            monkeypatch.delenv(name)


def _direct(port: int) -> redis.Redis:
    """A plain client for probing one node (not the client under test)."""
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=1,
        socket_connect_timeout=1,
        protocol=2,
        retry=None,
    )


def _probe(port: int, *command: Any) -> Any:
    client = _direct(port)
    try:
        return client.execute_command(*command)
    finally:
        client.close()


# (how the failover is made, over TLS): SENTINEL FAILOVER's demotion window is not about
# transport, so TLS runs with kill -9 only.
CASES = [
    pytest.param("sentinel-failover", False, id="sentinel-failover"),
    pytest.param("kill-master", False, id="kill-master"),
    pytest.param("kill-master", True, id="kill-master-tls"),
]


@pytest.fixture
def start(redis_sentinel_factory: SentinelFactory, request: pytest.FixtureRequest) -> Any:
    """``start(tls) -> (topology, client settings)``: the plugin's topology (stopped after)."""

    def run(tls: bool) -> tuple[SentinelTopology, dict[str, Any]]:
        options: dict[str, Any] = {}
        settings: dict[str, Any] = {}
        if tls:
            pki = request.getfixturevalue("pki")
            options["tls"] = {
                "tls-cert-file": str(pki.server_cert),
                "tls-key-file": str(pki.server_key),
                "tls-ca-cert-file": str(pki.ca),
                "tls-auth-clients": "no",
            }
            settings["tls_ca_file"] = str(pki.ca)
        # One master, one replica, three Sentinels (quorum 2), fast failure detection.
        topo = redis_sentinel_factory(
            replicas=1,
            sentinels=3,
            quorum=2,
            service=SERVICE,
            down_after_ms=1000,
            failover_timeout_ms=3000,
            debug=_SENTINEL_DEBUG,
            **options,
        )
        if tls:  # the client must see TLS only
            assert topo.url.startswith("rediss+sentinel://")
            assert topo.client_port(topo.master) != topo.master.port
        return topo, {"url": topo.url, **settings}

    return run


def _trigger(topo: SentinelTopology, how: str) -> None:
    if how == "kill-master":
        topo.master.kill()  # SIGKILL by its own PID, waits for the process to go
    else:
        assert _probe(topo.sentinel_ports[0], "SENTINEL", "FAILOVER", SERVICE)


def _check_typed(error: BaseException) -> None:
    """A failure during the switch must be ours, chained to the redis-py cause."""
    assert isinstance(error, TYPED), repr(error)
    assert isinstance(error.__cause__, redis.exceptions.RedisError), repr(error.__cause__)


@dataclass
class Outcome:
    """One write made through the client under test while the topology switched."""

    key: str
    error: BaseException | None = None
    replicated: bool = False  # WAIT 1 counted the replica


BEFORE = {f"failover:before:{i}": f"v{i}".encode() for i in range(20)}


def _verify_on_new_master(topo: SentinelTopology, outcomes: list[Outcome], *, dead: bool) -> None:
    """Look at the promoted replica directly, not through the client under test."""
    for outcome in outcomes:
        if outcome.error is not None:
            _check_typed(outcome.error)
    new_master = _direct(topo.replicas[0].port)
    try:
        assert new_master.mget(list(BEFORE)) == list(BEFORE.values())
        assert new_master.get("failover:after") == b"a"
        assert new_master.get("failover:after:9") == b"a"
        # Replicated before the promotion means it was in the promoted replica's data set.
        missing = [o.key for o in outcomes if o.replicated and not new_master.exists(o.key)]
        assert missing == []
        if dead:  # only the new master was alive to acknowledge anything
            missing = [o.key for o in outcomes if o.error is None and not new_master.exists(o.key)]
            assert missing == []
    finally:
        new_master.close()


# --------------------------------------------------------------------------- sync
@pytest.mark.parametrize(("how", "tls"), CASES)
def test_sync_client_survives_failover(start: Any, how: str, tls: bool) -> None:
    topology, settings = start(tls)
    client = create_client(**settings)
    try:
        _run_sync(client, topology, how)
    finally:
        client.close()


def _sync_set(client: Any, key: str, value: bytes) -> BaseException | None:
    try:
        with redis_errors():
            client.set(key, value)
    except TYPED as exc:
        return exc
    return None


def _sync_set_wait(client: Any, key: str) -> Outcome:
    """SET then WAIT 1 on the same connection (one pipeline): WAIT counts per connection."""
    try:
        with redis_errors():
            pipe = client.pipeline(transaction=False)
            pipe.set(key, b"d").wait(1, WAIT_MS)
            _, replicas = pipe.execute()
    except TYPED as exc:
        return Outcome(key, error=exc)
    return Outcome(key, replicated=replicas >= 1)


def _run_sync(client: Any, topo: SentinelTopology, how: str) -> None:
    with redis_errors():
        pipe = client.pipeline(transaction=False)
        for key, value in BEFORE.items():
            pipe.set(key, value)
        pipe.wait(1, 5000)
        assert pipe.execute()[-1] >= 1  # acknowledged by the replica too
        assert client.connection_pool.master_address == ("127.0.0.1", topo.client_port(topo.master))
    assert check_health(client).mode == "sentinel"

    _trigger(topo, how)
    dead = how == "kill-master"
    outcomes: list[Outcome] = []
    for i in range(SWITCH_POLLS):  # keep writing through the switch
        outcomes.append(_sync_set_wait(client, f"failover:during:{i}"))
        if topo.failed_over(old_master_dead=dead):
            break
        time.sleep(POLL)
    else:
        pytest.fail(f"no failover after {SWITCH_POLLS} polls: {topo.describe()}")

    # The same client object now writes to the promoted replica...
    for _ in range(WRITE_ATTEMPTS):
        error = _sync_set(client, "failover:after", b"a")
        outcomes.append(Outcome("failover:after", error=error))
        if error is None:
            break
        _check_typed(error)
        time.sleep(POLL)
    else:
        pytest.fail(f"the client never wrote after the failover: {outcomes[-1].error!r}")
    with redis_errors():
        for i in range(10):  # ...and keeps doing so, without errors
            assert client.set(f"failover:after:{i}", b"a")
        promoted = ("127.0.0.1", topo.client_port(topo.replicas[0]))
        assert client.connection_pool.master_address == promoted
        assert client.mget(list(BEFORE)) == list(BEFORE.values())
    _verify_on_new_master(topo, outcomes, dead=dead)
    report = check_health(client)
    assert report.mode == "sentinel"
    assert "failover" in report.durability


# --------------------------------------------------------------------------- async
@pytest.mark.parametrize(("how", "tls"), CASES)
async def test_async_client_survives_failover(start: Any, how: str, tls: bool) -> None:
    topology, settings = await asyncio.to_thread(start, tls)
    client = await create_async_client(**settings)
    try:
        await _run_async(client, topology, how)
    finally:
        await client.aclose()


async def _async_set(client: Any, key: str, value: bytes) -> BaseException | None:
    try:
        async with redis_errors():
            await client.set(key, value)
    except TYPED as exc:
        return exc
    return None


async def _async_set_wait(client: Any, key: str) -> Outcome:
    try:
        async with redis_errors():
            pipe = client.pipeline(transaction=False)
            pipe.set(key, b"d").wait(1, WAIT_MS)
            _, replicas = await pipe.execute()
    except TYPED as exc:
        return Outcome(key, error=exc)
    return Outcome(key, replicated=replicas >= 1)


async def _run_async(client: Any, topo: SentinelTopology, how: str) -> None:
    async with redis_errors():
        pipe = client.pipeline(transaction=False)
        for key, value in BEFORE.items():
            pipe.set(key, value)
        pipe.wait(1, 5000)
        assert (await pipe.execute())[-1] >= 1
        assert client.connection_pool.master_address == ("127.0.0.1", topo.client_port(topo.master))
    assert (await acheck_health(client)).mode == "sentinel"

    await asyncio.to_thread(_trigger, topo, how)
    dead = how == "kill-master"
    outcomes: list[Outcome] = []
    for i in range(SWITCH_POLLS):
        outcomes.append(await _async_set_wait(client, f"failover:during:{i}"))
        if await asyncio.to_thread(topo.failed_over, old_master_dead=dead):
            break
        await asyncio.sleep(POLL)
    else:
        pytest.fail(f"no failover after {SWITCH_POLLS} polls: {topo.describe()}")

    for _ in range(WRITE_ATTEMPTS):
        error = await _async_set(client, "failover:after", b"a")
        outcomes.append(Outcome("failover:after", error=error))
        if error is None:
            break
        _check_typed(error)
        await asyncio.sleep(POLL)
    else:
        pytest.fail(f"the client never wrote after the failover: {outcomes[-1].error!r}")
    async with redis_errors():
        for i in range(10):
            assert await client.set(f"failover:after:{i}", b"a")
        promoted = ("127.0.0.1", topo.client_port(topo.replicas[0]))
        assert client.connection_pool.master_address == promoted
        assert await client.mget(list(BEFORE)) == list(BEFORE.values())
    await asyncio.to_thread(_verify_on_new_master, topo, outcomes, dead=dead)
    report = await acheck_health(client)
    assert report.mode == "sentinel"
    assert "failover" in report.durability
