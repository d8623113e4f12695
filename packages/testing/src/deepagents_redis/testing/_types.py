"""Types of what the plugin's factory fixtures hand out, for annotating tests precisely."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from ._proxy import FaultProxy
from ._servers import ServerHandle

if TYPE_CHECKING:
    from ._sentinel import SentinelTopology

__all__ = [
    "ClusterHandle",
    "ProxyFactory",
    "SentinelFactory",
    "ServerFactory",
]


class ClusterHandle(Protocol):
    """The `redis_cluster` fixture: the local cluster, or the one in `REDIS_CLUSTER_URL`."""

    @property
    def url(self) -> str:
        """URL of one node; a cluster client discovers the others from it."""

    @property
    def nodes(self) -> Sequence[ServerHandle]:
        """The node servers (empty for a `REDIS_CLUSTER_URL` cluster: nothing to control)."""

    @property
    def version(self) -> str | None:
        """Server version of the nodes."""


class ServerFactory(Protocol):
    """The `redis_server_factory` fixture."""

    def __call__(
        self, *, aof: bool = False, debug: bool = False, config: Mapping[str, str] | None = None
    ) -> ServerHandle:
        """Start a dedicated `redis-server`; it is stopped after the test.

        Args:
            aof: Append-only file with `appendfsync always`.
            debug: Enable `DEBUG` (`--enable-debug-command local`).
            config: Any other `redis-server` options.
        """


class SentinelFactory(Protocol):
    """The `redis_sentinel_factory` fixture (see `SentinelTopology.start` for the options)."""

    def __call__(
        self,
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
        """Start a master, its replicas and Sentinels; the Sentinels are stopped after the test."""


ProxyFactory = Callable[[str], FaultProxy]
"""The `fault_proxy` fixture: `fault_proxy(target_url) -> FaultProxy`."""
