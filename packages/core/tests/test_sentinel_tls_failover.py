"""Sentinel failover over TLS: the client follows a promotion it can see only through TLS.

``test_sentinel_failover.py`` proves failover on plain ports and ``test_sentinel_tls.py`` proves
discovery over TLS; a TLS deployment needs both at once. Here every hop the client makes is TLS:
it asks the Sentinels on their ``tls-port`` (``rediss+sentinel://``) and reaches each master on
its ``tls-port``; the replica replicates and the Sentinels monitor and talk to each other over
TLS (``tls-replication yes``), so what the Sentinels report after the failover is the promoted
replica's TLS port. Each node keeps a plain port as well, used only by this test's probes.

The master is killed with ``kill -9`` while the client keeps writing: every failure in the
switch must be one of our typed errors, the same client object must then write to the promoted
replica over TLS, and every write it saw succeed must be there (the old master is dead, so
nothing else could have acknowledged it). Every wait is bounded by a poll count.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from deepagents_redis.core import (
    OutcomeUnknownError,
    RedisSettings,
    RedisUnavailableError,
    acheck_health,
    check_health,
    create_async_client,
    create_client,
    redis_errors,
)
from deepagents_redis.core.embedded import find_redis_server, free_port

pytestmark = [pytest.mark.integration, pytest.mark.fault]

SERVICE = "mymaster"
TYPED = (RedisUnavailableError, OutcomeUnknownError)
POLL = 0.05  # seconds between polls
SPAWN_ATTEMPTS = 3
POLLS = 600  # bounded waits: replication, Sentinel start and agreement, the failover
WRITE_ATTEMPTS = 200  # bounded attempts for the first write after the switch
BEFORE = {f"tls-failover:before:{i}": f"v{i}".encode() for i in range(20)}


def _probe(port: int, *command: Any) -> Any:
    """One command on a node's plain port (the test's own view, never the client under test)."""
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1, retry=None)
    try:
        return client.execute_command(*command)
    finally:
        client.close()


def _pid(port: int, pki: Any = None) -> int | None:
    """The PID of the server answering on `port` (over TLS with `pki`), None if none answers."""
    tls = {"ssl": True, "ssl_ca_certs": str(pki.ca)} if pki is not None else {}
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1, **tls)
    try:
        return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError, KeyError, ValueError):
        return None
    finally:
        client.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(reply: Any) -> dict[str, str]:
    """A reply of field/value pairs (redis-py parses some into a dict, RESP2 gives a list)."""
    if isinstance(reply, dict):
        return {_text(k): _text(v) for k, v in reply.items()}
    items = [_text(x) for x in reply]
    return dict(zip(items[::2], items[1::2], strict=True))


def _wait(condition: Callable[[], bool], what: str) -> None:
    for _ in range(POLLS):
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(POLL)
    raise TimeoutError(f"gave up waiting for {what} after {POLLS} polls")


def _tls_conf(pki: Any) -> dict[str, str]:
    return {
        "tls-cert-file": str(pki.server_cert),
        "tls-key-file": str(pki.server_key),
        "tls-ca-cert-file": str(pki.ca),
        "tls-auth-clients": "no",
        "tls-replication": "yes",  # replicas and Sentinels reach the masters over TLS
    }


class TlsTopology:
    """A master and a replica with TLS ports, and three Sentinels on TLS (quorum 2)."""

    def __init__(self, factory: Any, workdir: Path, pki: Any) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.master_tls, self.replica_tls = free_port(), free_port()
        master_conf = {"tls-port": str(self.master_tls), "repl-diskless-sync-delay": "0"}
        self.master = factory(config={**master_conf, **_tls_conf(pki)})
        self.replica = factory(config={"tls-port": str(self.replica_tls), **_tls_conf(pki)})
        _probe(self.replica.port, "REPLICAOF", "127.0.0.1", str(self.master_tls))
        _wait(self._replica_synced, "the replica to sync over TLS")
        self.sentinel_tls: list[int] = []
        self.sentinel_plain: list[int] = []
        binary = find_redis_server()
        assert binary is not None
        try:
            for index in range(3):
                self._spawn(binary, workdir / f"sentinel-{index}", pki)
            for plain in self.sentinel_plain:
                _wait(lambda plain=plain: self._ready(plain), f"sentinel {plain} to see all")
        except BaseException:
            self.stop()
            raise

    def _replica_synced(self) -> bool:
        info = _probe(self.replica.port, "INFO", "replication")  # parsed by redis-py
        return bool(info.get("master_link_status") == "up")

    def _spawn(self, binary: str, home: Path, pki: Any) -> None:
        home.mkdir(parents=True)
        for _ in range(SPAWN_ATTEMPTS):
            # A port picked free can be bound by another process (another xdist worker's
            # server) before this Sentinel binds it: it then exits while the stranger answers
            # our PING. Only a Sentinel that answers with its own PID on both ports is kept.
            plain, tls = free_port(), free_port()
            conf = home / "sentinel.conf"  # Sentinel rewrites its own config: one file each
            lines = [
                "bind 127.0.0.1",
                f"dir {home}",
                f"port {plain}",
                f"tls-port {tls}",
                *(f"{name} {value}" for name, value in _tls_conf(pki).items()),
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_tls} 2",
                f"sentinel down-after-milliseconds {SERVICE} 1000",
                f"sentinel failover-timeout {SERVICE} 3000",
            ]
            conf.write_text("\n".join(lines) + "\n")
            with (home / "sentinel.log").open("ab") as log:
                proc = subprocess.Popen(  # fixed argv, no shell; stopped by its own PID
                    [binary, str(conf), "--sentinel"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=home,
                )
            self.procs.append(proc)
            _wait(
                lambda proc=proc, plain=plain: proc.poll() is not None or _probe(plain, "PING"),
                f"sentinel {plain} to start",
            )
            if proc.poll() is None and _pid(plain) == proc.pid == _pid(tls, pki):
                self.sentinel_plain.append(plain)
                self.sentinel_tls.append(tls)
                return
            proc.kill()
            proc.wait(timeout=10)
            self.procs.remove(proc)
        raise RuntimeError(f"could not start a sentinel of our own, see {home / 'sentinel.log'}")

    def _ready(self, plain: int) -> bool:
        fields = _pairs(_probe(plain, "SENTINEL", "MASTER", SERVICE))
        replicas = _probe(plain, "SENTINEL", "REPLICAS", SERVICE)
        return (
            fields.get("flags") == "master"
            and fields.get("num-other-sentinels") == "2"
            and len(replicas) == 1
        )

    def reported(self) -> set[int | None]:
        ports: set[int | None] = set()
        for plain in self.sentinel_plain:
            try:
                reply = _probe(plain, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            except redis.RedisError:
                ports.add(None)
                continue
            ports.add(int(reply[1]) if reply else None)
        return ports

    def failed_over(self) -> bool:
        """Every Sentinel names the replica's TLS port and the replica says it is a master."""
        try:
            role = _text(_probe(self.replica.port, "ROLE")[0])
        except redis.RedisError:
            return False
        return self.reported() == {self.replica_tls} and role == "master"

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_tls)
        return f"rediss+sentinel://{hosts}/{SERVICE}/0"

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait(timeout=10)


@pytest.fixture
def topology(redis_server_factory: Any, tmp_path: Path, pki: Any) -> Iterator[TlsTopology]:
    if find_redis_server() is None:
        pytest.skip("no redis-server binary")  # the plugin itself fails this under CI=true
    topo = TlsTopology(redis_server_factory, tmp_path, pki)
    try:
        yield topo
    finally:
        topo.stop()


def _settings(topo: TlsTopology, pki: Any) -> RedisSettings:
    return RedisSettings(url=topo.url, tls_ca_file=str(pki.ca), deadline_seconds=10)


def _check_typed(error: BaseException) -> None:
    assert isinstance(error, TYPED), repr(error)
    assert isinstance(error.__cause__, redis.exceptions.RedisError), repr(error.__cause__)


def _verify(topo: TlsTopology, acknowledged: list[str]) -> None:
    """Read the promoted replica directly: everything the client saw succeed is there."""
    assert _probe(topo.replica.port, "MGET", *BEFORE) == list(BEFORE.values())
    missing = [key for key in acknowledged if not _probe(topo.replica.port, "EXISTS", key)]
    assert missing == []


def test_sync_client_follows_a_tls_failover(topology: TlsTopology, pki: Any) -> None:
    client = create_client(_settings(topology, pki))
    try:
        with redis_errors():
            pipe = client.pipeline(transaction=False)
            for key, value in BEFORE.items():
                pipe.set(key, value)
            pipe.wait(1, 5000)
            assert pipe.execute()[-1] >= 1  # acknowledged by the replica too
            assert client.connection_pool.master_address == ("127.0.0.1", topology.master_tls)
        assert check_health(client).mode == "sentinel"

        topology.master.kill()  # SIGKILL by its own PID
        acknowledged: list[str] = []
        for i in range(POLLS):  # keep writing through the switch
            key = f"tls-failover:during:{i}"
            try:
                with redis_errors():
                    client.set(key, b"d")
                acknowledged.append(key)
            except TYPED as exc:
                _check_typed(exc)
            if topology.failed_over():
                break
            time.sleep(POLL)
        else:
            pytest.fail(f"no failover after {POLLS} polls: sentinels say {topology.reported()}")

        for _ in range(WRITE_ATTEMPTS):  # the same client object now writes over TLS...
            try:
                with redis_errors():
                    client.set("tls-failover:after", b"a")
                break
            except TYPED as exc:
                _check_typed(exc)
                time.sleep(POLL)
        else:
            pytest.fail("the client never wrote after the failover")
        acknowledged.append("tls-failover:after")
        with redis_errors():
            assert client.connection_pool.master_address == ("127.0.0.1", topology.replica_tls)
            assert client.mget(list(BEFORE)) == list(BEFORE.values())
        _verify(topology, acknowledged)
        assert check_health(client).mode == "sentinel"
    finally:
        client.close()


async def test_async_client_follows_a_tls_failover(topology: TlsTopology, pki: Any) -> None:
    client = await create_async_client(_settings(topology, pki))
    try:
        async with redis_errors():
            pipe = client.pipeline(transaction=False)
            for key, value in BEFORE.items():
                pipe.set(key, value)
            pipe.wait(1, 5000)
            assert (await pipe.execute())[-1] >= 1
            assert client.connection_pool.master_address == ("127.0.0.1", topology.master_tls)
        assert (await acheck_health(client)).mode == "sentinel"

        await asyncio.to_thread(topology.master.kill)
        acknowledged: list[str] = []
        for i in range(POLLS):
            key = f"tls-failover:during:{i}"
            try:
                async with redis_errors():
                    await client.set(key, b"d")
                acknowledged.append(key)
            except TYPED as exc:
                _check_typed(exc)
            if await asyncio.to_thread(topology.failed_over):
                break
            await asyncio.sleep(POLL)
        else:
            pytest.fail(f"no failover after {POLLS} polls: sentinels say {topology.reported()}")

        for _ in range(WRITE_ATTEMPTS):
            try:
                async with redis_errors():
                    await client.set("tls-failover:after", b"a")
                break
            except TYPED as exc:
                _check_typed(exc)
                await asyncio.sleep(POLL)
        else:
            pytest.fail("the client never wrote after the failover")
        acknowledged.append("tls-failover:after")
        async with redis_errors():
            assert client.connection_pool.master_address == ("127.0.0.1", topology.replica_tls)
            assert await client.mget(list(BEFORE)) == list(BEFORE.values())
        await asyncio.to_thread(_verify, topology, acknowledged)
        assert (await acheck_health(client)).mode == "sentinel"
    finally:
        await client.aclose()
