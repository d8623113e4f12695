"""Several scripts in one round trip: one script built from their texts (the driver's `Chain`).

An operation that must run script A then script B (coord's submit: create the task record,
then enqueue it) pays two round trips when it sends them one by one. Pipelining two
``EVALSHA`` calls is not safe: after a restart, a failover or a ``SCRIPT FLUSH`` the server may
know B but not A, answer ``NOSCRIPT`` to A and run B alone (an enqueued task with no record).
Pipelining two ``EVAL`` calls is safe but sends every script's text on every call.

So on one server (or when every key is in one Cluster slot) the driver runs a *chain*: one
script whose text is each step's own text, unchanged, wrapped in a Lua function that receives
that step's KEYS and ARGV. It runs by ``EVALSHA`` like any `LuaScript` (re-sent with ``EVAL``
after ``NOSCRIPT``, where nothing ran), so the steps run all or none of them, in order,
atomically, and a step's error reply stops the chain: the later steps do not run and the
caller gets that error, exactly as if it had run the steps one by one and stopped at the first
error. Across Cluster slots there is no such script: the driver runs the steps one call each,
in order, stopping at the first error.

Layout of a chain call: KEYS are every step's keys, in order; ARGV starts with two counts per
step (its number of keys, its number of args), then every step's args, in order. The reply is
a list with one reply per step (a step's nil reply is nil in the list).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import redis
import redis.asyncio
from deepagents_redis.core._scripts import LuaScript
from redis.crc import key_slot

__all__ = ["chain_args", "chain_script", "one_slot"]

# The driver loop of a chain. `__steps`, `__keys` and `__argv` are locals of the chain's own
# chunk; a step's text sees only its own KEYS and ARGV (function parameters shadow the
# globals), so it runs exactly as it does alone.
_RUN = """\
local __keys, __argv, __out = KEYS, ARGV, {}
local __k, __a = 0, 2 * #__steps
for __i = 1, #__steps do
  local __nk, __na = tonumber(__argv[2 * __i - 1]), tonumber(__argv[2 * __i])
  local __sk, __sa = {}, {}
  for __j = 1, __nk do __sk[__j] = __keys[__k + __j] end
  for __j = 1, __na do __sa[__j] = __argv[__a + __j] end
  __k, __a = __k + __nk, __a + __na
  local __r = __steps[__i](__sk, __sa)
  if type(__r) == 'table' and __r.err then return __r end
  if __r == nil then __r = false end
  __out[__i] = __r
end
return __out
"""


@lru_cache(maxsize=64)
def chain_script(scripts: tuple[LuaScript, ...]) -> LuaScript:
    """The one script that runs `scripts` in order (built once per tuple, then cached).

    Args:
        scripts: The steps, in the order they run.

    Returns:
        An unregistered `LuaScript` named ``chain(<a>,<b>,...)`` (it is built from registered
        scripts, whose texts the contract test checks; it has no file of its own).
    """
    names = ",".join(script.name for script in scripts)
    parts = [f"-- chain({names}): each step's own text, run in order (deepagents_redis.core)\n"]
    parts.append("local __steps = {}\n")
    for index, script in enumerate(scripts, start=1):
        body = script.source if script.source.endswith("\n") else script.source + "\n"
        parts.append(f"-- step {index}: {script.name}\n")
        parts.append(f"__steps[{index}] = function(KEYS, ARGV)\n{body}end\n")
    parts.append(_RUN)
    return LuaScript(f"chain({names})", "".join(parts), register=False)


def chain_args(
    steps: Sequence[tuple[Sequence[Any], Sequence[Any]]],
) -> tuple[list[Any], list[Any]]:
    """KEYS and ARGV of a chain call for each step's `(keys, args)`, in the chain's layout."""
    keys: list[Any] = []
    counts: list[Any] = []
    args: list[Any] = []
    for step_keys, step_args in steps:
        counts += (len(step_keys), len(step_args))
        keys += step_keys
        args += step_args
    return keys, counts + args


def one_slot(client: Any, keys: Sequence[str | bytes]) -> bool:
    """Whether one script may touch all `keys` on `client`: not a Cluster, or one slot."""
    if not isinstance(client, redis.RedisCluster | redis.asyncio.RedisCluster):
        return True
    slots = {key_slot(key if isinstance(key, bytes) else key.encode()) for key in keys}
    return len(slots) <= 1
