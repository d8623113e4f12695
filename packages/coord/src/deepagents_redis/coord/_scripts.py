"""The coord phase's Lua scripts: one ``.lua`` file each in ``lua/`` (BRIEF §3 "Lua").

Each file is headed by its contract: KEYS, ARGV, what it returns and its error replies.
``fence.lua`` is the lease check (`holder`) shared by the scripts a running task's worker
calls, listed before their own file; ``keep.lua`` (`keep`) removes the TTL a new task's record
gets until it is queued, shared by the enqueue and the confirm after it.

Task scripts touch only one task's keys (one hash tag), queue scripts only one agent's queue.
Every write about a running task passes the **fencing token** the claim handed out; a worker
whose lease was taken over gets ``FENCED <current token>`` and changes nothing. Times come
from the server (``TIME``), so workers' clocks may disagree without shortening a lease.
Events are encoded by the caller (core's codec, keyed by the events stream) and appended by
the script only when its transition applies.
"""

from __future__ import annotations

from typing import Final

from deepagents_redis.core import IdempotentScript, LuaScript

__all__ = [
    "ABANDON",
    "ACK",
    "ACK_PLAIN",
    "CANCEL",
    "CLAIM",
    "CONFIRM",
    "CREATE",
    "DEQUEUE",
    "ENQUEUE",
    "EVENT",
    "FINISH",
    "GROUP",
    "HANDBACK",
    "HEARTBEAT",
    "LOST",
    "PROMOTE",
    "PRUNE",
    "PUBLISH",
    "RESET",
    "SEND",
    "SWEEP",
    "TAKE",
    "TERMINAL",
    "UNRESET",
]

TERMINAL: Final = frozenset({"success", "error", "cancelled", "timeout"})
"""Statuses a task never leaves."""

_PACKAGE: Final = "deepagents_redis.coord"

CREATE: Final = LuaScript.from_package("coord_create", _PACKAGE, "create.lua")
ENQUEUE: Final = LuaScript.from_package(
    "coord_enqueue", _PACKAGE, "keep.lua", "entry.lua", "enqueue.lua"
)
CONFIRM: Final = LuaScript.from_package("coord_confirm", _PACKAGE, "keep.lua", "confirm.lua")
"""A submit's last call on a Cluster: its task is queued, so the TTL its create gave the
record goes (on a single server the enqueue does it in the same call)."""
ABANDON: Final = LuaScript.from_package("coord_abandon", _PACKAGE, "abandon.lua")
RESET: Final = IdempotentScript.from_package("coord_reset", _PACKAGE, "reset.lua")
"""Recorded by op id: re-sent after a lost reply, it would refuse the task it had just
reset ('task is pending') and leave it on no queue."""
UNRESET: Final = IdempotentScript.from_package("coord_unreset", _PACKAGE, "unreset.lua")
"""Recorded by op id: re-sent after a lost reply, it answered 'moved since' (0) and the
refused retry read as queued."""
CLAIM: Final = LuaScript.from_package("coord_claim", _PACKAGE, "claim.lua")
HEARTBEAT: Final = LuaScript.from_package("coord_heartbeat", _PACKAGE, "fence.lua", "heartbeat.lua")
EVENT: Final = IdempotentScript.from_package("coord_event", _PACKAGE, "fence.lua", "event.lua")
"""A progress event, recorded by op id: a call re-sent after its reply was lost (the client's
retry) must not append the event twice."""
FINISH: Final = LuaScript.from_package("coord_finish", _PACKAGE, "fence.lua", "finish.lua")
HANDBACK: Final = LuaScript.from_package("coord_handback", _PACKAGE, "fence.lua", "handback.lua")
ACK: Final = IdempotentScript.from_package("coord_ack", _PACKAGE, "entry.lua", "ack.lua")
"""The queue-side end of a run, recorded by op id: for a dead letter or a re-queue, whose
``XADD`` must not be repeated by a retry."""
ACK_PLAIN: Final = LuaScript.from_package(
    "coord_ack_plain", _PACKAGE, "ack_plain.lua", "entry.lua", "ack.lua"
)
"""`ACK` without the op record, for the modes that are idempotent by construction."""
PROMOTE: Final = LuaScript.from_package("coord_promote", _PACKAGE, "entry.lua", "promote.lua")
LOST: Final = LuaScript.from_package("coord_lost", _PACKAGE, "lost.lua")
"""A sweep's first step: the queued tasks whose entry may be gone (read only)."""
SWEEP: Final = LuaScript.from_package("coord_sweep", _PACKAGE, "entry.lua", "sweep.lua")
"""Queues again, once, a task whose entry went with its stream (deleted under it):
idempotent by construction (each re-queue moves the task's mark, which it checks)."""
CANCEL: Final = LuaScript.from_package("coord_cancel", _PACKAGE, "cancel.lua")
DEQUEUE: Final = LuaScript.from_package("coord_dequeue", _PACKAGE, "dequeue.lua")
SEND: Final = IdempotentScript.from_package("coord_send", _PACKAGE, "send.lua")
"""A follow-up, recorded by op id: a call re-sent after its reply was lost (the client's
retry) must not append the message twice."""
TAKE: Final = LuaScript.from_package("coord_take", _PACKAGE, "fence.lua", "take.lua")
GROUP: Final = LuaScript.from_package("coord_group", _PACKAGE, "group.lua")
PUBLISH: Final = LuaScript.from_package("coord_publish", _PACKAGE, "publish.lua")
PRUNE: Final = LuaScript.from_package("coord_prune", _PACKAGE, "prune.lua")
"""Deletes a queue group's consumers that hold nothing (a worker's own at its stop, others
silent for a lease): one is made per worker start and Redis keeps it until deleted."""
