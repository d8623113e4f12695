"""The checkpoint phase's Lua scripts: one ``.lua`` file each in ``lua/`` (BRIEF §3 "Lua").

Each file is headed by its contract: KEYS, ARGV, what it returns and its error replies.
``expire_refs.lua`` is a helper shared by ``ckpt_put`` and ``ckpt_read``, listed before
their own file.

Every script touches one thread only: KEYS[1] is one of the thread's keys and every other key
it reads or writes is the thread's head (ARGV[1]) plus a suffix, so all of them share KEYS[1]'s
hash tag and Cluster slot (see `_keys`). Each write is idempotent by construction (a re-sent
put stores the same fields again; a re-sent put_writes finds its writes in place), so a retry
after a lost reply is safe without op ids.
"""

from __future__ import annotations

from typing import Final

from deepagents_redis.core import LuaScript

__all__ = ["DELETE", "HISTORY", "PUT", "PUT_WRITES", "READ"]

_PACKAGE: Final = "deepagents_redis.checkpoint"

PUT: Final = LuaScript.from_package("ckpt_put", _PACKAGE, "expire_refs.lua", "put.lua")
PUT_WRITES: Final = LuaScript.from_package("ckpt_put_writes", _PACKAGE, "put_writes.lua")
READ: Final = LuaScript.from_package("ckpt_read", _PACKAGE, "expire_refs.lua", "read.lua")
HISTORY: Final = LuaScript.from_package("ckpt_history", _PACKAGE, "history.lua")
DELETE: Final = LuaScript.from_package("ckpt_delete", _PACKAGE, "delete.lua")
