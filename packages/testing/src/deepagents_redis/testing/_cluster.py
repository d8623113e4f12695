"""A local 3-primary Redis Cluster built from private `redis-server` processes."""

from __future__ import annotations

import functools
import shutil
import subprocess
import time
from typing import TYPE_CHECKING, Any, Self

import redis
from deepagents_redis.core import Closing
from redis.backoff import NoBackoff
from redis.retry import Retry

from ._servers import served_by, start_owned

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from deepagents_redis.core.embedded import EmbeddedRedis

__all__ = ["LocalCluster"]

_SLOTS = 16_384


class LocalCluster(Closing):
    """Cluster-enabled primaries on free loopback ports (three by default), and replicas.

    Each node is an `EmbeddedRedis` started with `--cluster-enabled yes` and its own
    `nodes.conf` in its own data directory; the slots are assigned with
    `redis-cli --cluster create` (or `CLUSTER ADDSLOTSRANGE` + `CLUSTER MEET` when redis-cli is
    missing). `start()` returns only when EVERY node reports `cluster_state:ok` with all 16384
    slots assigned and all nodes agree on `CLUSTER SLOTS`: a client that connects to a node
    that has not converged yet sees `CLUSTERDOWN` or a partial slot map (BRIEF §4).
    """

    def __init__(
        self,
        *,
        primaries: int = 3,
        replicas: int = 0,
        node_timeout_ms: int = 5000,
        redis_server: str | None = None,
        ready_timeout: float = 60.0,
        node_config: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        """Configure (but do not start) the cluster.

        Args:
            primaries: Number of primaries (3 is the minimum `redis-cli --cluster` accepts).
            replicas: Replicas per primary (they need `redis-cli`); a killed primary's replica
                is promoted about `node_timeout_ms` later.
            node_timeout_ms: `cluster-node-timeout`: how long a node may be unreachable before
                the others fail it over.
            redis_server: Path of the `redis-server` binary; found on PATH when None.
            ready_timeout: Seconds to wait for the cluster to converge.
            node_config: Called once per node for more `redis-server` options (a TLS
                cluster needs a `tls-port` of its own on each node).
        """
        self._primaries = primaries
        self._replicas = replicas
        self._node_timeout_ms = node_timeout_ms
        self._redis_server = redis_server
        self._ready_timeout = ready_timeout
        self._node_config = node_config
        self.nodes: list[EmbeddedRedis] = []
        """The node servers (`.url`, `.port`, `.kill()`, ...), in creation order."""

    @property
    def url(self) -> str:
        """URL of the first node; a cluster client discovers the others from it."""
        if not self.nodes:
            raise RuntimeError("the cluster has not been started")
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        """The nodes' client ports."""
        return [node.port for node in self.nodes]

    @property
    def version(self) -> str | None:
        """Server version of the nodes."""
        return self.nodes[0].version if self.nodes else None

    @property
    def served_by(self) -> str:
        """Which server the nodes run, for reports (see `served_by`)."""
        return served_by(self.nodes[0]) if self.nodes else "no nodes"

    def start(self) -> Self:
        """Start the nodes, assign the slots and wait until the cluster is consistent.

        Returns:
            This object.

        Raises:
            RuntimeError: A node did not start or the cluster did not converge in time.
        """
        try:
            for _ in range(self._primaries * (1 + self._replicas)):
                # start_owned: a node whose port another process took meanwhile would have
                # joined someone else's server to this cluster.
                extra = dict(self._node_config()) if self._node_config else {}
                self.nodes.append(start_owned(functools.partial(self._build_node, extra)))
            self._create()
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _build_node(self, extra: Mapping[str, str]) -> EmbeddedRedis:
        from deepagents_redis.core.embedded import EmbeddedRedis

        return EmbeddedRedis(
            config={
                "cluster-enabled": "yes",
                "cluster-config-file": "nodes.conf",
                "cluster-node-timeout": str(self._node_timeout_ms),
                # Without this, CLUSTERDOWN is returned while the nodes gossip.
                "cluster-require-full-coverage": "yes",
                **extra,
            },
            allow_fallback=False,
            redis_server=self._redis_server,
            cluster_bus=True,
        )

    def close(self) -> None:
        """Stop every node (by its own PID) and remove their data directories."""
        for node in self.nodes:
            node.close()
        self.nodes = []

    def __enter__(self) -> Self:
        return self.start()

    def primaries(self) -> list[int]:
        """The ports of the nodes that serve slots now (after a failover: the promoted ones)."""
        for node in self.nodes:
            try:
                with _client(node.port) as client:
                    slots: Any = client.execute_command("CLUSTER", "SLOTS")
            except redis.exceptions.RedisError:
                continue  # a killed node
            return sorted({int(s[2][1]) for s in slots})
        return []

    def primary_for(self, key: str) -> int | None:
        """The port of the primary that serves `key`'s slot now (None if none answers)."""
        for node in self.nodes:
            try:
                with _client(node.port) as client:
                    slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
                    slots: Any = client.execute_command("CLUSTER", "SLOTS")
            except redis.exceptions.RedisError:
                continue  # a killed node
            for start, end, primary, *_replicas in slots:
                if int(start) <= slot <= int(end):
                    return int(primary[1])
        return None

    def healthy(self, *, without: int | None = None) -> bool:
        """Whether every running node says `cluster_state:ok` and no slot is served by `without`.

        Args:
            without: The port of a killed primary: healthy once its slots moved to a replica.

        Returns:
            True when the cluster serves every slot again.
        """
        for node in self.nodes:
            if node.port == without:
                continue
            try:
                with _client(node.port) as client:
                    info = _parse_info(client.execute_command("CLUSTER", "INFO"))
            except redis.exceptions.RedisError:
                return False
            if info.get("cluster_state") != "ok":
                return False
        return without not in self.primaries()

    def _create(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            if self._replicas:
                raise RuntimeError("a LocalCluster with replicas needs redis-cli on PATH")
            self._create_manually()
            return
        command = [cli, "--cluster", "create"]
        command += [f"127.0.0.1:{node.port}" for node in self.nodes]
        command += ["--cluster-replicas", str(self._replicas), "--cluster-yes"]
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            command,
            capture_output=True,
            timeout=self._ready_timeout,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")[-2000:]
            raise RuntimeError(f"redis-cli --cluster create failed: {output}")

    def _create_manually(self) -> None:
        share = _SLOTS // len(self.nodes)
        first = self.nodes[0]
        for index, node in enumerate(self.nodes):
            start = index * share
            end = _SLOTS - 1 if index == len(self.nodes) - 1 else start + share - 1
            with _client(node.port) as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", start, end)
                if node is not first:
                    client.execute_command("CLUSTER", "MEET", "127.0.0.1", first.port)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._ready_timeout
        while True:
            problem = self._not_ready_reason()
            if problem is None:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster did not converge: {problem}")
            time.sleep(0.05)

    def _not_ready_reason(self) -> str | None:
        maps: list[list[tuple[int, int, int]]] = []
        for node in self.nodes:
            with _client(node.port) as client:
                try:
                    info = _parse_info(client.execute_command("CLUSTER", "INFO"))
                    slots: Any = client.execute_command("CLUSTER", "SLOTS")
                except redis.exceptions.RedisError as exc:
                    return f"node {node.port}: {exc}"
            if info.get("cluster_state") != "ok":
                return f"node {node.port}: cluster_state={info.get('cluster_state')}"
            if info.get("cluster_slots_assigned") != str(_SLOTS):
                return f"node {node.port}: {info.get('cluster_slots_assigned')} slots assigned"
            if info.get("cluster_known_nodes") != str(len(self.nodes)):
                return f"node {node.port}: knows {info.get('cluster_known_nodes')} nodes"
            maps.append(sorted((int(s[0]), int(s[1]), int(s[2][1])) for s in slots))
        if any(m != maps[0] for m in maps):
            return "nodes disagree on CLUSTER SLOTS"
        served = {port for _, _, port in maps[0]}
        for node in self.nodes:
            if node.port in served:
                continue
            with _client(node.port) as client:
                try:
                    role = client.execute_command("ROLE")
                except redis.exceptions.RedisError as exc:
                    return f"replica {node.port}: {exc}"
            if str(role[0]) != "slave" or str(role[3]) != "connected":
                return f"replica {node.port}: not in sync with its primary yet"
        covered = sum(end - start + 1 for start, end, _ in maps[0])
        if covered != _SLOTS:
            return f"CLUSTER SLOTS covers {covered} slots"
        return None


def _client(port: int) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        protocol=2,
        decode_responses=True,
        retry=Retry(NoBackoff(), 0),  # the readiness loop is the retry
    )


def _parse_info(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}
