"""The eviction guard: one check, for every phase whose data must not be evicted.

Todo plans and agent files have no TTL; on a server whose `maxmemory-policy` is `allkeys-*`
Redis may evict them silently when memory fills. A data phase checks the policy once per
component, before its first write: `warn` logs a warning, `refuse` raises
`ConfigurationError`, `off` skips the check. (A `volatile-*` policy only evicts keys with a
TTL, which for data phases are op-id records and TTL'd scratch files: acceptable.)
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from deepagents_redis.core._errors import ConfigurationError
from deepagents_redis.core._health import HealthReport, acheck_health, check_health

__all__ = ["EvictionCheck", "EvictionGuard"]

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
        """Check once, on a sync client (later calls return at once)."""
        if not self.done:
            self.judge(check_health(client))

    async def acheck(self, client: Any) -> None:
        """Check once, on an asyncio client."""
        if not self.done:
            self.judge(await acheck_health(client))
