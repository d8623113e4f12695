"""The faults of the chaos suite: each one starts, lasts its window, and stops.

Clients reach the server through a `FaultProxy` (from the testing package), so network faults
apply to them only; server faults act on the server behind it.
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

    server: Any
    """The `EmbeddedRedis` (AOF, appendfsync always, DEBUG enabled)."""
    proxy: Any
    """The `FaultProxy` the clients go through."""
    admin: Any
    """A redis-py client straight to the server (for CONFIG, SCRIPT, DEBUG)."""


@dataclass(frozen=True)
class Fault:
    """A fault: what it does at the start and at the end of its window."""

    name: str
    description: str
    start: Callable[[Stage], None]
    stop: Callable[[Stage], None]


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
    )
}
