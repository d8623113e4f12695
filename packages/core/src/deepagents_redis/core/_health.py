"""Health checks that state what the server can promise (BRIEF §3 "Durability").

We read ``INFO`` (one round trip per node, default sections) rather than ``CONFIG GET``,
because managed services often rename or ACL-deny ``CONFIG``; only the fsync policy is not in
``INFO``, so it alone comes from ``CONFIG GET appendfsync`` and is ``None`` ("unknown") when
that is refused. Anything hidden is reported as unknown, never guessed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.exceptions
import redis.sentinel
from deepagents_redis.core._deadline import deadline
from deepagents_redis.core._errors import translate_redis_error

__all__ = ["HealthReport", "acheck_health", "check_health"]

Mode = Literal["standalone", "sentinel", "cluster", "unknown"]

_SAFE_POLICIES = frozenset({"noeviction"})
_CLUSTER_SLOTS = 16384


@dataclass(frozen=True)
class HealthReport:
    """What a server looks like from here, and what that means for our data.

    Attributes:
        ok: The server answered PING, is not a replica (which refuses every write), and,
            on Cluster, reports ``cluster_state:ok`` with every slot covered. Warnings do
            not make it false.
        latency_ms: Round trip of one PING, in milliseconds (all primaries on Cluster).
        server_name: ``"redis"`` or ``"valkey"`` (``None`` when INFO is hidden).
        server_version: Server version string (Valkey's own version for Valkey); on Cluster,
            the oldest of the primaries'.
        mode: ``"standalone"``, ``"sentinel"`` (a master found through Sentinel),
            ``"cluster"`` or ``"unknown"``.
        cluster_state: ``CLUSTER INFO`` state (``"ok"``/``"fail"``): ``"ok"`` only when every
            primary says so; ``None`` off Cluster.
        cluster_slots_covered: Slots served (``cluster_slots_ok``) out of 16384, the fewest
            any primary sees; ``None`` off Cluster.
        cluster_primaries: Number of primaries the client sees; ``None`` off Cluster.
        aof_enabled: Append-only file on (on every primary); ``None`` when hidden.
        appendfsync: ``"always"``, ``"everysec"`` or ``"no"`` (the weakest of the
            primaries'); ``None`` when CONFIG is denied.
        maxmemory_policy: Eviction policy (the weakest of the primaries'); ``None`` when
            hidden.
        durability: What acknowledged writes survive, derived from the above.
        warnings: Things an operator should fix or know.
    """

    ok: bool
    latency_ms: float
    server_name: str | None = None
    server_version: str | None = None
    mode: Mode = "unknown"
    cluster_state: str | None = None
    cluster_slots_covered: int | None = None
    cluster_primaries: int | None = None
    aof_enabled: bool | None = None
    appendfsync: str | None = None
    maxmemory_policy: str | None = None
    durability: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (JSON-serializable).

        Returns:
            A dict with one entry per field; ``warnings`` is a list.
        """
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        return data

    def to_rows(self) -> list[tuple[str, str]]:
        """``(check, result)`` rows for a table; ``None`` prints as ``unknown``.

        Returns:
            One row per field, warnings (one per line) last.
        """
        rows: list[tuple[str, str]] = []
        for name, value in self.to_dict().items():
            if name == "warnings":
                continue
            if value is None:
                text = "unknown" if not name.startswith("cluster_") else "-"
            elif isinstance(value, float):
                text = f"{value:.3f}"
            else:
                text = str(value)
            rows.append((name, text))
        rows.append(("warnings", "\n".join(self.warnings) if self.warnings else "none"))
        return rows

    def to_table(self) -> str:
        """A two-column plain-text table of `to_rows`.

        Returns:
            The table as one string, one line per row (warnings on their own lines).
        """
        rows = self.to_rows()
        width = max(len(name) for name, _ in rows)
        lines = []
        for name, text in rows:
            first, *rest = text.split("\n") or [""]
            lines.append(f"{name.ljust(width)}  {first}")
            lines.extend(f"{'':{width}}  {line}" for line in rest)
        return "\n".join(lines)


@dataclass
class _NodeFacts:
    info: Mapping[str, Any] | None
    appendfsync: str | None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _cluster_mode(info: Mapping[str, Any] | None) -> bool:
    """Whether INFO server says the node runs in cluster mode.

    Redis names the field ``redis_mode``; Valkey 8 names it ``server_mode`` (its INFO has no
    ``redis_mode``: a Valkey cluster node read as standalone before this was checked on one).
    """
    if info is None:
        return False
    mode = info.get("server_mode") if "server_mode" in info else info.get("redis_mode")
    return _text(mode) == "cluster"


def _appendfsync(reply: Any) -> str | None:
    if not isinstance(reply, Mapping):
        return None
    for key, value in reply.items():
        if _text(key) == "appendfsync":
            return _text(value)
    return None


def _durability(mode: Mode, aof: bool | None, fsync: str | None) -> str:
    failover = (
        " A failover can still lose writes acknowledged by the old primary but not yet replicated."
        if mode in ("sentinel", "cluster", "unknown")
        else ""
    )
    if aof is None:
        return (
            "Unknown: persistence settings are hidden (ACL or renamed commands); assume "
            "acknowledged writes can be lost on a crash." + failover
        )
    if not aof:
        return (
            "Acknowledged writes do NOT survive a server crash or restart: AOF is off, so "
            "everything since the last RDB snapshot (if any) is lost." + failover
        )
    if fsync == "always":
        return (
            "Acknowledged writes survive a server crash and a power loss (AOF with "
            "appendfsync always)." + failover
        )
    if fsync == "everysec":
        return (
            "Acknowledged writes survive a server crash (AOF on); a power loss can lose about "
            "the last second (appendfsync everysec)." + failover
        )
    if fsync == "no":
        return (
            "Acknowledged writes survive a server process crash (AOF on); a power loss can lose "
            "up to ~30 s (appendfsync no: the OS decides when to flush)." + failover
        )
    return (
        "Acknowledged writes survive a server process crash (AOF on); survival of a power "
        "loss is unknown (fsync policy hidden)." + failover
    )


def _eviction_rank(policy: str | None) -> tuple[int, str]:
    """How much a policy may evict, for picking the weakest of several (then by name)."""
    if policy is None:
        return (1, "")  # hidden on one primary: weaker than noeviction, not than evicting
    if policy.startswith("allkeys"):
        return (3, policy)
    if policy in _SAFE_POLICIES:
        return (0, policy)
    return (2, policy)


def _fsync_rank(fsync: str | None) -> int:
    """How much a power loss may lose under an fsync policy, for picking the weakest."""
    # Hidden on one primary: weaker than what the others say, unless one says "no" (the most
    # any policy loses), as for the eviction policy.
    return {"always": 0, "everysec": 1, None: 2}.get(fsync, 3)


def _server(info: Mapping[str, Any]) -> tuple[str, str | None]:
    """The server's name and version as INFO states them (Valkey's own version for Valkey)."""
    name = _text(info.get("server_name")) or "redis"
    return name, _text(info.get("valkey_version") or info.get("redis_version"))


def _oldest(servers: list[tuple[str, str | None]]) -> tuple[str, str | None]:
    """The server that runs the oldest version (an unreadable version counts as oldest)."""

    def age(server: tuple[str, str | None]) -> tuple[int, tuple[int, ...]]:
        parsed = _version_tuple(server[1])
        return (0, ()) if parsed is None else (1, parsed)

    return min(servers, key=age)


def _version_tuple(version: str | None) -> tuple[int, ...] | None:
    if not version:
        return None
    try:
        return tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return None


def _build_report(
    *,
    latency_ms: float,
    nodes: list[_NodeFacts],
    client_mode: Mode,
    cluster_info: Sequence[Mapping[str, Any] | None] | None,
    primaries: int | None,
) -> HealthReport:
    """The report from each primary's facts (``cluster_info``: each one's, None off Cluster).

    Where primaries disagree, the report states the weakest (AOF, fsync, eviction policy,
    version, cluster state and coverage) and warns: a fact read from one primary only said
    nothing of the shards on the others.
    """
    warnings: list[str] = []
    infos = [n.info for n in nodes if n.info is not None]
    first = infos[0] if infos else {}
    server_name: str | None = None
    version: str | None = None
    if infos:
        servers = [_server(info) for info in infos]
        server_name, version = _oldest(servers)
        if len(set(servers)) > 1:
            running = ", ".join(f"{name} {ver}" for name, ver in sorted(set(servers), key=str))
            warnings.append(f"primaries run different server versions ({running})")
    else:
        warnings.append("INFO is not permitted for this user: persistence and eviction unknown")

    mode: Mode = client_mode
    if mode == "standalone" and _cluster_mode(first):
        mode = "cluster"

    aof_values = [n.info.get("aof_enabled") for n in nodes if n.info is not None]
    aof: bool | None = None
    if aof_values and all(v is not None for v in aof_values):
        flags = [bool(int(v)) for v in aof_values if v is not None]
        aof = all(flags)
        if len(set(flags)) > 1:
            warnings.append("AOF is enabled on some primaries only; durability is the weakest")

    fsyncs = {n.appendfsync for n in nodes}
    if len(fsyncs) > 1:
        warnings.append("primaries disagree on appendfsync (or some hide it)")
    # The weakest, as for AOF: "unknown" when two primaries said "always" and "everysec"
    # hid that a power loss can lose the last second of one shard's writes.
    fsync = max(fsyncs, key=_fsync_rank) if fsyncs else None

    policies = {_text(n.info.get("maxmemory_policy")) for n in nodes if n.info is not None}
    if len(policies) > 1:
        warnings.append("primaries disagree on maxmemory-policy")
    # The weakest, as for AOF: "unknown" (None) here let the eviction guard and the phase
    # verdicts pass a cluster on which one primary runs allkeys-lru and evicts that shard's
    # todos and files.
    policy = max(policies, key=_eviction_rank) if policies else None
    if policy is not None and policy not in _SAFE_POLICIES and not policy.startswith("volatile-"):
        warnings.append(
            f"maxmemory-policy {policy} can evict any key, including todos, files and events "
            "that have no TTL; use noeviction (or a volatile-* policy) for data you keep"
        )

    if aof is False:
        warnings.append("AOF is off: acknowledged writes are lost if the server crashes")
    elif aof is None and infos:
        warnings.append("persistence is hidden: durability unknown")

    for name, old in sorted({_server(info) for info in infos}, key=str):
        parsed_version = _version_tuple(old)
        if parsed_version is not None and name == "redis" and parsed_version < (6, 2):
            warnings.append(f"Redis {old} is older than 6.2, the oldest version we test")

    ok = True
    roles = {_text(n.info.get("role")) for n in nodes if n.info is not None}
    if mode != "cluster" and roles & {"slave", "replica"}:
        # Answers PING and reads, refuses every write with READONLY: nothing of ours works
        # there (a URL left on the old primary after a failover, a replica's address given
        # by mistake). A Cluster client follows MOVED to the new primary instead.
        ok = False
        warnings.append(
            "this server is a replica (role:slave): every write fails with READONLY; "
            "point the URL at the primary (or use Sentinel)"
        )
    cluster_state = cluster_slots = None
    seen = [c for c in cluster_info or () if c is not None]
    if seen:
        # Each node has its own view of the cluster: one cut off from the majority says
        # "fail" (and refuses its shard's commands) while the others say "ok"; the first
        # primary's view alone reported such a cluster as healthy.
        states = [_text(c.get("cluster_state")) for c in seen]
        cluster_state = next((state for state in states if state != "ok"), "ok")
        if len(set(states)) > 1:
            warnings.append("primaries disagree on cluster_state")
        counts = [int(c["cluster_slots_ok"]) for c in seen if c.get("cluster_slots_ok") is not None]
        cluster_slots = min(counts) if counts else None
        if cluster_state != "ok":
            ok = False
            warnings.append(f"cluster_state is {cluster_state}: the cluster refuses commands")
        if cluster_slots is not None and cluster_slots < _CLUSTER_SLOTS:
            ok = False
            warnings.append(
                f"only {cluster_slots} of {_CLUSTER_SLOTS} hash slots are served: keys in the "
                "others fail"
            )

    return HealthReport(
        ok=ok,
        latency_ms=latency_ms,
        server_name=server_name,
        server_version=version,
        mode=mode,
        cluster_state=cluster_state,
        cluster_slots_covered=cluster_slots,
        cluster_primaries=primaries,
        aof_enabled=aof,
        appendfsync=fsync,
        maxmemory_policy=policy,
        durability=_durability(mode, aof, fsync),
        warnings=tuple(warnings),
    )


# Errors meaning "this user may not see that", which we report as unknown.
_HIDDEN = (redis.exceptions.ResponseError,)


def _sync_node(run: Any) -> _NodeFacts:
    try:
        info = run("INFO")
    except _HIDDEN:
        info = None
    try:
        fsync = _appendfsync(run("CONFIG GET", "appendfsync"))
    except _HIDDEN:
        fsync = None
    return _NodeFacts(info=info, appendfsync=fsync)


def check_health(
    client: redis.Redis | redis.RedisCluster, *, deadline_seconds: float | None = 5.0
) -> HealthReport:
    """Check a server through a synchronous client.

    Args:
        client: A ``redis.Redis`` (standalone or Sentinel-managed) or ``redis.RedisCluster``.
        deadline_seconds: Most seconds the whole check may take on clients our factory
            built (every round trip and retry included); None: no bound of its own.

    Returns:
        The report. Hidden facts are ``None`` ("unknown"), never guessed.

    Raises:
        RedisUnavailableError: The server did not answer PING.
    """
    with deadline(deadline_seconds):
        return _check_health(client)


def _check_health(client: redis.Redis | redis.RedisCluster) -> HealthReport:
    try:
        start = time.perf_counter()
        client.ping()
        latency_ms = (time.perf_counter() - start) * 1000
        # redis-py leaves these untyped; Any keeps mypy --strict honest about it.
        execute: Any = client.execute_command
        if isinstance(client, redis.RedisCluster):
            get_primaries: Any = client.get_primaries
            primaries: list[Any] = get_primaries()
            nodes = [
                _sync_node(lambda *args, node=node: execute(*args, target_nodes=node))
                for node in primaries
            ]
            views = [
                _safe_cluster_info(lambda node=node: execute("CLUSTER INFO", target_nodes=node))
                for node in primaries
            ]
            return _build_report(
                latency_ms=latency_ms,
                nodes=nodes,
                client_mode="cluster",
                cluster_info=views,
                primaries=len(primaries),
            )
        node = _sync_node(execute)
        mode: Mode = (
            "sentinel"
            if isinstance(client.connection_pool, redis.sentinel.SentinelConnectionPool)
            else "standalone"
        )
        cluster_info = None
        if _cluster_mode(node.info):
            cluster_info = [_safe_cluster_info(lambda: execute("CLUSTER INFO"))]
        return _build_report(
            latency_ms=latency_ms,
            nodes=[node],
            client_mode=mode,
            cluster_info=cluster_info,
            primaries=None,
        )
    except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
        raise translate_redis_error(exc) from exc


def _safe_cluster_info(run: Any) -> Mapping[str, Any] | None:
    try:
        reply = run()
    except _HIDDEN:
        return None
    return _cluster_info_dict(reply)


def _cluster_info_dict(reply: Any) -> Mapping[str, Any] | None:
    if isinstance(reply, Mapping):
        return {str(_text(k)): v for k, v in reply.items()}
    text = _text(reply)
    if text is None:
        return None
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


async def _async_cluster_info(run: Any) -> Mapping[str, Any] | None:
    try:
        reply = await run()
    except _HIDDEN:
        return None
    return _cluster_info_dict(reply)


async def _async_node(run: Any) -> _NodeFacts:
    try:
        info = await run("INFO")
    except _HIDDEN:
        info = None
    try:
        fsync = _appendfsync(await run("CONFIG GET", "appendfsync"))
    except _HIDDEN:
        fsync = None
    return _NodeFacts(info=info, appendfsync=fsync)


async def acheck_health(
    client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
    *,
    deadline_seconds: float | None = 5.0,
) -> HealthReport:
    """Check a server through an asyncio client (never blocks the event loop).

    Args:
        client: A ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster``.
        deadline_seconds: See `check_health`.

    Returns:
        The report; see `check_health`.

    Raises:
        RedisUnavailableError: The server did not answer PING.
    """
    with deadline(deadline_seconds):
        return await _acheck_health(client)


async def _acheck_health(
    client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
) -> HealthReport:
    try:
        start = time.perf_counter()
        await client.ping()
        latency_ms = (time.perf_counter() - start) * 1000
        execute: Any = client.execute_command
        if isinstance(client, redis.asyncio.RedisCluster):
            primaries: list[Any] = client.get_primaries()
            nodes = []
            views: list[Mapping[str, Any] | None] = []
            for primary in primaries:

                async def run(*args: Any, _node: Any = primary) -> Any:
                    return await execute(*args, target_nodes=_node)

                nodes.append(await _async_node(run))
                views.append(await _async_cluster_info(lambda run=run: run("CLUSTER INFO")))
            return _build_report(
                latency_ms=latency_ms,
                nodes=nodes,
                client_mode="cluster",
                cluster_info=views,
                primaries=len(primaries),
            )
        node = await _async_node(execute)
        mode: Mode = (
            "sentinel"
            if isinstance(client.connection_pool, redis.asyncio.sentinel.SentinelConnectionPool)
            else "standalone"
        )
        cluster_info = None
        if _cluster_mode(node.info):
            cluster_info = [await _async_cluster_info(lambda: execute("CLUSTER INFO"))]
        return _build_report(
            latency_ms=latency_ms,
            nodes=[node],
            client_mode=mode,
            cluster_info=cluster_info,
            primaries=None,
        )
    except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
        raise translate_redis_error(exc) from exc
