"""The checkpoint phase's Lua scripts: one ``.lua`` file each in ``lua/`` (BRIEF §3 "Lua").

Each file is headed by its contract: KEYS, ARGV, what it returns and its error replies.
``thread.lua`` is the prelude of every script, listed first: it binds the thread's eight
fixed keys from KEYS and the helpers that read them; ``expire.lua`` (the thread's TTL) follows
it in the scripts that write or renew.

``run_index.lua`` is apart: the fallback of the MULTI that names threads in a run's index (a key
of its own, in the run's slot), never sent with the redis-py core requires (see `RUN_INDEX`).

Keys only in KEYS: every other script takes the same eight keys of one thread (`ThreadKeys.all`)
and touches no other key (core's deny_oom probe, ``KEYS[1] .. ':oom-probe'``, which never
creates a key, aside); what varies per checkpoint is in hash fields and sorted-set members,
passed in ARGV. ``tests/test_keys_contract.py`` proves it statically (every key argument of
every ``redis.call`` is a local bound once to KEYS) and dynamically (every operation under
MONITOR: each key a script's commands touch, per the server's ``COMMAND GETKEYS``, is in that
call's KEYS). Each write is idempotent by construction (a re-sent put stores the same
fields again; a re-sent put_writes finds its writes in place), so a retry after a lost reply
is safe without op ids.
"""

from __future__ import annotations

from typing import Final

from deepagents_redis.core import LuaScript, load_lua

__all__ = ["DELETE", "HISTORY", "PUT", "PUT_WRITES", "READ", "RUN_INDEX"]

_PACKAGE: Final = "deepagents_redis.checkpoint"
_PRELUDE: Final = "thread.lua"
_EXPIRE: Final = "expire.lua"

PUT: Final = LuaScript.from_package("ckpt_put", _PACKAGE, _PRELUDE, _EXPIRE, "put.lua")
PUT_WRITES: Final = LuaScript.from_package(
    "ckpt_put_writes", _PACKAGE, _PRELUDE, _EXPIRE, "put_writes.lua"
)
READ: Final = LuaScript.from_package("ckpt_read", _PACKAGE, _PRELUDE, _EXPIRE, "read.lua")
HISTORY: Final = LuaScript.from_package("ckpt_history", _PACKAGE, _PRELUDE, "history.lua")
DELETE: Final = LuaScript.from_package("ckpt_delete", _PACKAGE, _PRELUDE, "delete.lua")

RUN_INDEX: Final = LuaScript("ckpt_run_index", load_lua(_PACKAGE, "run_index.lua"), register=False)
"""The fallback of the run index's MULTI (``SADD``, ``PEXPIRE``; see ``run_index.lua``).

Core's `Snapshot` needs one, for an asyncio cluster client without transactions; the
redis-py core requires has them, so it is never sent (no ``EVALSHA`` in that MULTI can answer
``NOSCRIPT`` either) and is not registered with the phase's scripts.
"""
