"""The faults of the chaos suite: each one starts, lasts its window, and stops.

Clients reach a single server through a `FaultProxy` (from the testing package), so network
faults apply to them only; server faults act on the server behind it. The failover faults run
on topologies of their own: a Sentinel-watched master with a replica, and a Cluster whose
primaries have a replica each; their window lasts until the topology has healed (a replica
promoted and serving), bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FAULTS", "Fault", "Stage"]


@dataclass
class Stage:
    """What a fault acts on."""

    server: Any = None
    """The single `EmbeddedRedis` (AOF, appendfsync always, DEBUG enabled)."""
    proxy: Any = None
    """The `FaultProxy` the clients of the single server go through."""
    admin: Any = None
    """A redis-py client straight to the single server (for CONFIG, SCRIPT, DEBUG)."""
    sentinel: Any = None
    """The `SentinelTopology` (topology `sentinel`)."""
    cluster: Any = None
    """The `LocalCluster` with replicas (topology `cluster`)."""
    victim: Any = None
    """The node a failover fault killed."""
    hot_key: Any = None
    """A function giving a key the workload writes now: the Cluster fault kills its primary."""


@dataclass(frozen=True)
class Fault:
    """A fault: what it does at the start and at the end of its window."""

    name: str
    description: str
    start: Callable[[Stage], None]
    stop: Callable[[Stage], None]
    topology: str = "single"
    """`single` (one server behind a proxy), `sentinel` or `cluster`."""
    healed: Callable[[Stage], bool] | None = None
    """When set, the window lasts until this is true (bounded): the topology recovered."""
    replication_loss: bool = False
    """A kill -9 of a primary: writes it acknowledged and had not yet sent to its replica
    are lost by Redis' asynchronous replication itself (reported, not a failure of ours)."""


def _nothing(stage: Stage) -> None:
    return None


def _kill(stage: Stage) -> None:
    stage.server.kill()


def _restart(stage: Stage) -> None:
    stage.server.restart()
    stage.admin.connection_pool.disconnect()


def _mode(mode: str, delay: float = 0.0) -> Callable[[Stage], None]:
    def apply(stage: Stage) -> None:
        stage.proxy.set_mode(mode, delay=delay)  # type: ignore[arg-type]

    return apply


def _flush_scripts(stage: Stage) -> None:
    stage.admin.script_flush()


def _fill(stage: Stage) -> None:
    # a limit below what is already used: every write is refused, as on a full server
    stage.admin.config_set("maxmemory-policy", "noeviction")
    stage.admin.config_set("maxmemory", "1")


def _unfill(stage: Stage) -> None:
    stage.admin.config_set("maxmemory", "0")


def _debug_sleep(seconds: float) -> Callable[[Stage], None]:
    def apply(stage: Stage) -> None:
        # DEBUG SLEEP blocks the server: commands already sent are applied late, replies late
        threading.Thread(
            target=lambda: stage.admin.execute_command("DEBUG", "SLEEP", seconds), daemon=True
        ).start()

    return apply


def _kill_sentinel_master(stage: Stage) -> None:
    stage.victim = stage.sentinel.master
    stage.victim.kill()


def _sentinel_failed_over(stage: Stage) -> bool:
    return bool(stage.sentinel.failed_over(old_master_dead=True))


def _kill_cluster_primary(stage: Stage) -> None:
    # the primary of the slot the workload is writing to (a workload keeps a unit of work in
    # one slot: killing another primary would leave it untouched)
    port = stage.cluster.primary_for(stage.hot_key()) if stage.hot_key else None
    port = port or stage.cluster.primaries()[0]
    stage.victim = next(node for node in stage.cluster.nodes if node.port == port)
    stage.victim.kill()


def _cluster_failed_over(stage: Stage) -> bool:
    return bool(stage.cluster.healthy(without=stage.victim.port))


def _restart_victim(stage: Stage) -> None:
    # it comes back with its data and rejoins as a replica of the promoted node
    stage.victim.restart()


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "kill9", "kill -9 of the server, restart with AOF (appendfsync always)", _kill, _restart
        ),
        Fault(
            "blackhole",
            "the network swallows every byte (timeouts)",
            _mode("blackhole"),
            _mode("pass"),
        ),
        Fault("reset", "every connection is reset (TCP RST)", _mode("reset"), _mode("pass")),
        Fault(
            "latency", "50 ms added to every chunk each way", _mode("delay", 0.05), _mode("pass")
        ),
        Fault(
            "script_flush",
            "SCRIPT FLUSH (another tenant, a restart without scripts)",
            _flush_scripts,
            _nothing,
        ),
        Fault("maxmemory", "maxmemory reached with noeviction (writes refused)", _fill, _unfill),
        Fault(
            "debug_sleep",
            "the server stalls 1 s (DEBUG SLEEP): writes applied, replies late",
            _debug_sleep(1.0),
            _nothing,
        ),
        Fault(
            "sentinel_failover",
            "kill -9 of the Sentinel-watched master; 3 Sentinels promote its replica",
            _kill_sentinel_master,
            _restart_victim,
            topology="sentinel",
            healed=_sentinel_failed_over,
            replication_loss=True,
        ),
        Fault(
            "cluster_failover",
            "kill -9 of a Cluster primary (1 of 3); its replica is promoted",
            _kill_cluster_primary,
            _restart_victim,
            topology="cluster",
            healed=_cluster_failed_over,
            replication_loss=True,
        ),
    )
}
