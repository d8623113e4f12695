"""Lua scripts of the cache, one ``.lua`` file each in ``lua/``, headed by its contract.

Namespace generations: every namespace has a generation counter (a plain integer key in the
namespace's hash tag). A stored value is ``<generation>:<codec envelope>``; a value whose
generation is not the namespace's current one is stale and reads as a miss. ``clear()`` is
one ``INCR`` of the counter (``cache_clear``, which also repairs an empty counter): O(1)
however many entries the namespace holds, with no ``KEYS``/``SCAN``/``FLUSHDB``, and
Cluster-safe because the counter shares the entries' slot.
Stale entries are overwritten by the next write of the same key or expire by their TTL.
"""

from __future__ import annotations

from typing import Final

from deepagents_redis.core import LuaScript

__all__ = [
    "ACQUIRE",
    "CLEAR",
    "LOOKUP",
    "READ",
    "WRITE",
    "WRITE_MANY",
]


_PACKAGE: Final = "deepagents_redis.cache"

READ: Final = LuaScript.from_package("cache_read", _PACKAGE, "gen.lua", "entry.lua", "read.lua")
ACQUIRE: Final = LuaScript.from_package(
    "cache_acquire", _PACKAGE, "gen.lua", "lease.lua", "acquire.lua"
)
LOOKUP: Final = LuaScript.from_package(
    "cache_lookup", _PACKAGE, "gen.lua", "entry.lua", "lease.lua", "lookup.lua"
)
WRITE: Final = LuaScript.from_package("cache_write", _PACKAGE, "gen.lua", "lease.lua", "write.lua")
CLEAR: Final = LuaScript.from_package("cache_clear", _PACKAGE, "clear.lua")
WRITE_MANY: Final = LuaScript.from_package(
    "cache_write_many", _PACKAGE, "gen.lua", "write_many.lua"
)
