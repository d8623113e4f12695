"""The eviction guard: one check, for every phase whose data must not be evicted.

Todo plans and agent files have no TTL; on a server whose `maxmemory-policy` is `allkeys-*`
Redis may evict them silently when memory fills. A data phase checks the policy once per
component, before its first write: `warn` logs a warning, `refuse` raises
`ConfigurationError`, `off` skips the check. (A `volatile-*` policy only evicts keys with a
TTL, which for data phases are op-id records and TTL'd scratch files: acceptable.)
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from deepagents_redis.core._errors import ConfigurationError
from deepagents_redis.core._health import HealthReport, acheck_health, check_health

__all__ = ["PHASE_DATA", "EvictionCheck", "EvictionGuard", "PhaseVerdict", "phase_verdicts"]

EvictionCheck = Literal["warn", "refuse", "off"]
"""What a data phase does about an evicting server: log, raise, or not look."""


class EvictionGuard:
    """Checks a server's eviction policy once, for data that has no TTL.

    Args:
        what: What would be lost, for the message (e.g. ``"todo plans"``, ``"agent files"``).
        mode: ``warn``, ``refuse`` or ``off``.
        logger: The phase's logger name (the warning comes from the phase).

    Example:
        >>> guard = EvictionGuard("agent files", "refuse")  # doctest: +SKIP
        >>> guard.check(connector.client())  # raises on allkeys-lru  # doctest: +SKIP
    """

    def __init__(
        self, what: str, mode: EvictionCheck = "warn", *, logger: str = "deepagents_redis.core"
    ) -> None:
        if mode not in ("warn", "refuse", "off"):
            raise ConfigurationError(f"eviction_check must be warn, refuse or off, not {mode!r}")
        self.what = what
        self.mode: EvictionCheck = mode
        self.done = mode == "off"
        self._log = logging.getLogger(logger)
        # One check in flight: the first writes of a burst (an asyncio graph putting 50
        # checkpoints at once) wait for it instead of each running a health check, which
        # would take connections the gate of the driver does not count.
        self._lock = threading.Lock()
        self._alocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def judge(self, report: HealthReport) -> None:
        """Act on a health report (warn or raise for an ``allkeys-*`` policy).

        Args:
            report: The server's health report.

        Raises:
            ConfigurationError: The policy can evict the data and the mode is ``refuse``.
        """
        self.done = True
        policy = report.maxmemory_policy
        if policy is None or not policy.startswith("allkeys"):
            return
        message = (
            f"maxmemory-policy {policy} can evict {self.what} (they have no TTL): set "
            "noeviction (or a volatile-* policy) on the server that holds them"
        )
        if self.mode == "refuse":
            raise ConfigurationError(message)
        self._log.warning(message)

    def check(self, client: Any) -> None:
        """Check once, on a sync client (later calls return at once, concurrent first ones wait)."""
        if self.done:
            return
        with self._lock:
            if not self.done:
                self.judge(check_health(client))

    async def acheck(self, client: Any, *, gate: asyncio.Semaphore | None = None) -> None:
        """Check once, on an asyncio client (concurrent first calls wait for the one check).

        Args:
            client: The asyncio client.
            gate: The connector's `async_gate`: the check's commands then count among the
                requests in flight, so a burst of first writes cannot exhaust the pool.
        """
        if self.done:
            return
        loop = asyncio.get_running_loop()
        lock = self._alocks.get(loop)
        if lock is None:
            lock = self._alocks[loop] = asyncio.Lock()
        async with lock:
            if self.done:
                return
            if gate is None:
                self.judge(await acheck_health(client))
                return
            async with gate:
                report = await acheck_health(client)
            self.judge(report)


PHASE_DATA = {
    "cache": None,
    "todos": "todo plans",
    "fs": "agent files",
    "coord": "task queues and task records",
    "checkpoint": "conversation checkpoints",
}
"""Each phase and the data of it that has no TTL (None: everything it stores may vanish)."""


@dataclass(frozen=True)
class PhaseVerdict:
    """Whether a server suits one phase (see `phase_verdicts`).

    Attributes:
        phase: ``cache``, ``todos`` or ``fs``.
        verdict: ``ok``, ``warn`` or ``fail``.
        reason: One sentence an operator can act on.
    """

    phase: str
    verdict: Literal["ok", "warn", "fail"]
    reason: str


def phase_verdicts(report: HealthReport, phases: Iterable[str]) -> list[PhaseVerdict]:
    """Judge a server for each phase: what it stores decides what the server must promise.

    The cache's entries have a TTL and a lost entry is a miss, so any eviction policy and any
    persistence suits it. Todo plans and agent files have no TTL: an ``allkeys-*`` policy can
    evict them (``fail``), and without AOF a crash loses the writes since the last snapshot
    (``warn``).

    Args:
        report: The server's health report.
        phases: Phase names (keys of `PHASE_DATA`).

    Returns:
        One verdict per phase, in the order given.

    Raises:
        ConfigurationError: An unknown phase name.
    """
    out: list[PhaseVerdict] = []
    policy = report.maxmemory_policy
    for phase in phases:
        if phase not in PHASE_DATA:
            raise ConfigurationError(
                f"unknown phase {phase!r}; expected one of {sorted(PHASE_DATA)}"
            )
        data = PHASE_DATA[phase]
        if data is None:
            out.append(
                PhaseVerdict(phase, "ok", "entries expire and a lost entry is a miss: any policy")
            )
        elif policy is not None and policy.startswith("allkeys"):
            out.append(
                PhaseVerdict(
                    phase,
                    "fail",
                    f"maxmemory-policy {policy} can evict {data} (no TTL): use noeviction or "
                    "a volatile-* policy",
                )
            )
        elif report.aof_enabled is False:
            out.append(
                PhaseVerdict(
                    phase, "warn", f"AOF is off: a crash loses {data} written since the snapshot"
                )
            )
        else:
            out.append(PhaseVerdict(phase, "ok", report.durability or "no eviction of data"))
    return out
