"""Private Sentinel topologies for tests: a master, replicas and Sentinels on free ports.

`SentinelTopology.start(factory, workdir, ...)` (or the `redis_sentinel_factory` fixture)
builds one from the plugin's `redis_server_factory`: the master and replicas are private
`redis-server`s, the Sentinels are `redis-server --sentinel` subprocesses with their own
config file and directory, stopped by their own PID. Every wait is bounded by a poll count.

With `tls=` (the TLS lines of a server's config: certificate, key, CA) every node and Sentinel
also listens on a TLS port, the replicas replicate and the Sentinels monitor and talk to each
other over TLS (``tls-replication yes``), and `.url` is a ``rediss+sentinel://`` URL on the
Sentinels' TLS ports: the client sees only TLS. The plain ports stay open for the topology's
own probes.
"""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis

from . import _reaper

__all__ = ["SentinelTopology"]

_POLL = 0.05
_POLLS = 600  # bounded waits: replication, Sentinel start and discovery
_SPAWN_ATTEMPTS = 3


def _direct(port: int, tls: Mapping[str, str] | None = None) -> redis.Redis:
    """A client for probing one node (never the client under test); over TLS with `tls`."""
    ssl: dict[str, Any] = {}
    if tls:
        ssl = {"ssl": True, "ssl_ca_certs": tls.get("tls-ca-cert-file")}
        if tls.get("tls-auth-clients", "yes") != "no":  # mutual TLS: the node's own pair
            ssl.update(ssl_certfile=tls["tls-cert-file"], ssl_keyfile=tls["tls-key-file"])
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1, **ssl
    )


def _tls_port(port: int | None) -> dict[str, str]:
    return {"tls-port": str(port)} if port is not None else {}


def probe(port: int, *command: Any) -> Any:
    """Run one command on the node at `port` with a throwaway client."""
    client = _direct(port)
    try:
        return client.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        client.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(reply: Any) -> dict[str, str]:
    if isinstance(reply, dict):
        return {_text(k): _text(v) for k, v in reply.items()}
    items = [_text(x) for x in reply]
    return dict(zip(items[::2], items[1::2], strict=True))


def wait_for(condition: Callable[[], bool], what: str, polls: int = _POLLS) -> None:
    """Poll `condition` up to `polls` times; raise `TimeoutError` naming `what` if never true."""
    for _ in range(polls):
        if condition():
            return
        time.sleep(_POLL)
    raise TimeoutError(f"gave up waiting for {what} after {polls} polls")


def _free_port() -> int:
    from deepagents_redis.core.embedded import free_port

    return int(free_port())


@dataclass
class SentinelTopology:
    """A running master, its replicas and the Sentinels that watch them.

    Attributes:
        master: The master's server handle (`.port`, `.url`, `.kill()`...).
        replicas: The replicas' server handles.
        sentinel_ports: One port per Sentinel (plain text, for probes).
        service: The monitored master name.
        tls_ports: With TLS, each node's TLS port by its plain port (empty without TLS).
        sentinel_tls_ports: With TLS, each Sentinel's TLS port (empty without TLS).
    """

    master: Any
    replicas: list[Any]
    sentinel_ports: list[int]
    service: str = "mymaster"
    tls_ports: dict[int, int] = field(default_factory=dict)
    sentinel_tls_ports: list[int] = field(default_factory=list)
    _tls: dict[str, str] = field(default_factory=dict, repr=False)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    _logs: list[IO[bytes]] = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        """``redis+sentinel://<every sentinel>/<service>/0`` (``rediss+sentinel://`` on TLS)."""
        if self._tls:
            hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_tls_ports)
            return f"rediss+sentinel://{hosts}/{self.service}/0"
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def client_port(self, node: Any) -> int:
        """The port a client of `url` reaches `node` on: its TLS port with TLS, else its port."""
        port: int = node.port
        return self.tls_ports.get(port, port)

    @classmethod
    def start(
        cls,
        server_factory: Callable[..., Any],
        workdir: Path,
        *,
        replicas: int = 0,
        sentinels: int = 1,
        quorum: int | None = None,
        service: str = "mymaster",
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        debug: tuple[tuple[str, str], ...] = (),
        tls: Mapping[str, str] | None = None,
    ) -> SentinelTopology:
        """Start a topology and wait until every Sentinel sees all of it.

        Args:
            server_factory: The plugin's `redis_server_factory`.
            workdir: A directory for the Sentinels' config files and logs.
            replicas: How many replicas of the master.
            sentinels: How many Sentinels.
            quorum: Sentinels needed to agree the master is down (default: a majority).
            service: The master name.
            down_after_ms: ``down-after-milliseconds``.
            failover_timeout_ms: ``failover-timeout``.
            debug: ``SENTINEL DEBUG`` name/value pairs (Redis >= 7; ignored before).
            tls: TLS config lines for every node and Sentinel (``tls-cert-file``,
                ``tls-key-file``, ``tls-ca-cert-file``, ...); the certificate must also be
                good for client authentication (the nodes use it to reach each other). With
                it, replication, monitoring and `url` go over TLS (see the module docstring).

        Returns:
            The running topology; `stop()` it (the fixture does).
        """
        from deepagents_redis.core.embedded import find_redis_server

        binary = find_redis_server()  # the same server as the data nodes (REDIS_SERVER_BIN)
        if binary is None:
            raise RuntimeError("a Sentinel topology needs the redis-server binary")
        conf = {**tls, "tls-replication": "yes"} if tls else {}
        tls_ports: dict[int, int] = {}

        def node(**extra: str) -> Any:
            port = _free_port() if tls else None
            server = server_factory(config={**extra, **conf, **_tls_port(port)})
            if port is not None:
                tls_ports[server.port] = port
            return server

        # No diskless-sync delay before a replica's first full sync.
        master = node(**{"repl-diskless-sync-delay": "0"})
        copies = [node() for _ in range(replicas)]
        master_port = tls_ports.get(master.port, master.port)
        for replica in copies:
            probe(replica.port, "REPLICAOF", "127.0.0.1", str(master_port))
        for replica in copies:
            wait_for(functools.partial(_link_up, replica.port), f"replica {replica.port} to sync")
        topo = cls(
            master=master,
            replicas=copies,
            sentinel_ports=[],
            service=service,
            tls_ports=tls_ports,
            _tls=conf,
        )
        majority = quorum if quorum is not None else sentinels // 2 + 1
        try:
            for index in range(sentinels):
                topo._spawn(
                    binary,
                    workdir / f"sentinel-{index}",
                    majority,
                    down_after_ms,
                    failover_timeout_ms,
                )
            for port, proc in zip(topo.sentinel_ports, topo._procs, strict=True):
                wait_for(
                    functools.partial(_started, proc, port), f"sentinel on port {port} to start"
                )
                if proc.poll() is not None:
                    raise RuntimeError(f"sentinel on port {port} exited (see {workdir})")
                for name, value in debug:
                    try:
                        probe(port, "SENTINEL", "DEBUG", name, value)
                    except redis.exceptions.ResponseError:
                        break  # Redis < 7: keep the default timers
            for port in topo.sentinel_ports:
                wait_for(
                    functools.partial(topo._ready, port),
                    f"sentinel {port} to see the master, its replicas and the other sentinels",
                )
        except BaseException:
            topo.stop()
            raise
        return topo

    def _spawn(
        self, binary: str, home: Path, quorum: int, down_after_ms: int, failover_ms: int
    ) -> None:
        home.mkdir(parents=True)
        log = (home / "sentinel.log").open("ab")
        self._logs.append(log)
        conf = home / "sentinel.conf"  # Sentinel rewrites its own config: one file each
        problem = ""
        for _ in range(_SPAWN_ATTEMPTS):
            # A port picked free can be bound by another process (another test session)
            # before this Sentinel binds it: this one then exits, but the server already
            # there answered the startup PING, and the topology was built on a stranger.
            port = _free_port()
            tls_port = _free_port() if self._tls else None
            tls_lines = "".join(
                f"{name} {value}\n" for name, value in {**self._tls, **_tls_port(tls_port)}.items()
            )
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {home}\n{tls_lines}"
                f"sentinel monitor {self.service} 127.0.0.1 {self.client_port(self.master)} "
                f"{quorum}\n"
                f"sentinel down-after-milliseconds {self.service} {down_after_ms}\n"
                f"sentinel failover-timeout {self.service} {failover_ms}\n"
            )
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell; stopped by PID
                [binary, str(conf), "--sentinel"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=home,
            )
            wait_for(functools.partial(_started, proc, port), f"sentinel on port {port} to start")
            answering = _process_id(port)
            if (
                proc.poll() is None
                and answering == proc.pid
                and (tls_port is None or _process_id(tls_port, self._tls) == proc.pid)
            ):
                _reaper.register(home, remove=False)  # stopped even if the session is killed
                self._procs.append(proc)
                self.sentinel_ports.append(port)
                if tls_port is not None:
                    self.sentinel_tls_ports.append(tls_port)
                return
            problem = (
                f"port {port} is answered by another process (pid {answering})"
                if proc.poll() is None or answering is not None
                else f"the sentinel on port {port} exited"
            )
            proc.kill()
            proc.wait(timeout=10)
        raise RuntimeError(f"could not start a sentinel of our own: {problem} (see {home})")

    def _ready(self, port: int) -> bool:
        try:
            master = _pairs(probe(port, "SENTINEL", "MASTER", self.service))
            replicas = [_pairs(r) for r in probe(port, "SENTINEL", "REPLICAS", self.service)]
        except redis.exceptions.RedisError:
            return False
        return (
            master.get("flags") == "master"
            and master.get("num-other-sentinels") == str(len(self.sentinel_ports) - 1)
            and len(replicas) == len(self.replicas)
            and all(r.get("flags") == "slave" for r in replicas)
            and all(r.get("master-link-status") == "ok" for r in replicas)
        )

    def reported_masters(self) -> list[int | None]:
        """The master each Sentinel reports, by its plain port (None when it cannot be asked).

        With TLS the Sentinels report TLS ports; they are mapped back to the nodes' ports.
        """
        by_tls = {tls: plain for plain, tls in self.tls_ports.items()}
        ports: list[int | None] = []
        for port in self.sentinel_ports:
            try:
                reply = probe(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
            except redis.exceptions.RedisError:
                ports.append(None)
                continue
            reported = int(reply[1]) if reply else None
            ports.append(by_tls.get(reported, reported) if reported is not None else None)
        return ports

    def role(self, port: int) -> str | None:
        """``master`` or ``slave`` for the node at `port` (None when it does not answer)."""
        try:
            return _text(probe(port, "ROLE")[0])
        except redis.exceptions.RedisError:
            return None

    def failed_over(self, *, old_master_dead: bool = False) -> bool:
        """Whether a failover to the first replica has completed.

        Every Sentinel names the replica, the replica says it is a master, and the old master
        is gone (`old_master_dead=True`, e.g. after `master.kill()`) or demoted to a replica.
        Until the demotion Redis itself has two writable masters: after `SENTINEL FAILOVER`
        a test that judges where writes land must wait for it.

        Args:
            old_master_dead: The old master was killed, so it cannot be asked for its role.

        Returns:
            True once all of the above holds.
        """
        if not self.replicas:
            return False
        promoted = self.replicas[0].port
        if any(port != promoted for port in self.reported_masters()):
            return False
        if self.role(promoted) != "master":
            return False
        return old_master_dead or self.role(self.master.port) == "slave"

    def describe(self) -> str:
        """What the Sentinels report and each node's role, for a failure message."""
        roles = ", ".join(
            f"{node.port} is {self.role(node.port)}" for node in [self.master, *self.replicas]
        )
        return f"sentinels report masters {self.reported_masters()}; {roles}"

    def stop(self) -> None:
        """Stop every Sentinel (by its own PID); the servers belong to the factory."""
        for proc in self._procs:
            proc.kill()
            proc.wait(timeout=10)
        self._procs.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()


def _link_up(port: int) -> bool:
    client = _direct(port)
    try:
        return dict(client.info("replication")).get("master_link_status") == "up"
    finally:
        client.close()


def _started(proc: subprocess.Popen[bytes], port: int) -> bool:
    return proc.poll() is not None or _answers(port)


def _process_id(port: int, tls: Mapping[str, str] | None = None) -> int | None:
    """The PID of the server answering on `port` (None when none answers); TLS with `tls`."""
    client = _direct(port, tls)
    try:
        info = client.execute_command("INFO", "server")  # type: ignore[no-untyped-call]
        return int(_pairs_info(info).get("process_id", 0)) or None
    except (redis.exceptions.RedisError, ValueError, OSError):
        return None
    finally:
        client.close()


def _pairs_info(reply: Any) -> dict[str, str]:
    if isinstance(reply, dict):
        return {_text(k): _text(v) for k, v in reply.items()}
    lines = _text(reply).splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line and not line.startswith("#"))


def _answers(port: int) -> bool:
    try:
        return bool(probe(port, "PING"))
    except redis.exceptions.RedisError:
        return False
