"""Lua scripts of the cache. Each states its contract before its body.

Namespace generations: every namespace has a generation counter (a plain integer key in the
namespace's hash tag). A stored value is ``<generation>:<codec envelope>``; a value whose
generation is not the namespace's current one is stale and reads as a miss. ``clear()`` is
one ``INCR`` of the counter: O(1) however many entries the namespace holds, with no
``KEYS``/``SCAN``/``FLUSHDB``, and Cluster-safe because the counter shares the entries' slot.
Stale entries are overwritten by the next write of the same key or expire by their TTL.
"""

from __future__ import annotations

from deepagents_redis.core import LuaScript

__all__ = [
    "ACQUIRE",
    "READ",
    "WRITE",
    "WRITE_MANY",
]


READ = LuaScript(
    "cache_read",
    """
-- KEYS[1] namespace generation   KEYS[2] entry
-- ARGV[1] ttl in ms pushed on a fresh hit ('0' = leave the expiry alone)
-- ARGV[2] largest value served, in bytes
-- returns the stored value ('<gen>:<envelope>') when it is fresh; nil when there is none;
--         0 when it belongs to an older generation (stale); 1 when it is not ours (corrupt);
--         2 when it is larger than ARGV[2] (oversize: never sent, so a planted 200 MiB value
--         costs the client nothing)
-- One bulk reply, like a GET: an MGET of both keys costs an array reply to parse, which
-- made a hit ~1.3x a GET on its own (benchmarks suite ``cache``).
if redis.call('STRLEN', KEYS[2]) > tonumber(ARGV[2]) then
  return 2
end
local v = redis.call('GET', KEYS[2])
if not v then
  return nil
end
local gen = redis.call('GET', KEYS[1]) or '0'
if string.sub(v, 1, string.len(gen) + 1) == gen .. ':' then
  if ARGV[1] ~= '0' then
    redis.call('PEXPIRE', KEYS[2], ARGV[1])
  end
  return v
end
if string.match(v, '^%d+:') then
  return 0
end
return 1
""",
)

ACQUIRE = LuaScript(
    "cache_acquire",
    """
-- KEYS[1] namespace generation   KEYS[2] entry   KEYS[3] single-flight lease
-- ARGV[1] lease token (random per caller)   ARGV[2] lease ttl in ms
-- ARGV[3] largest value served, in bytes (a larger entry counts as absent)
-- returns {1, value} when a fresh entry exists (value = '<gen>:<envelope>');
--         {2} when this caller holds the lease now (new, or already its own: re-entry);
--         {3, pttl} when another caller holds the lease (pttl = its remaining ms)
local gen = redis.call('GET', KEYS[1]) or '0'
if redis.call('STRLEN', KEYS[2]) <= tonumber(ARGV[3]) then
  local v = redis.call('GET', KEYS[2])
  if v and string.sub(v, 1, string.len(gen) + 1) == gen .. ':' then
    return {1, v}
  end
end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {2}
end
if redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
  return {2}
end
return {3, redis.call('PTTL', KEYS[3])}
""",
)

WRITE = LuaScript(
    "cache_write",
    """
-- KEYS[1] namespace generation   KEYS[2] entry   KEYS[3] single-flight lease
-- ARGV[1] codec envelope   ARGV[2] ttl in ms ('0' = no expiry)
-- stores '<current gen>:<envelope>' with its TTL in the same SET (never a value without
-- its expiry) and drops the lease: the value is there, nobody needs to wait any more.
-- returns the generation the value was stored under
local gen = redis.call('GET', KEYS[1]) or '0'
if ARGV[2] == '0' then
  redis.call('SET', KEYS[2], gen .. ':' .. ARGV[1])
else
  redis.call('SET', KEYS[2], gen .. ':' .. ARGV[1], 'PX', ARGV[2])
end
redis.call('DEL', KEYS[3])
return gen
""",
)

WRITE_MANY = LuaScript(
    "cache_write_many",
    """
-- KEYS[1] namespace generation   KEYS[2..n+1] entries of that namespace
-- ARGV[2i-1] ttl in ms of KEYS[i+1] ('0' = no expiry)   ARGV[2i] its codec envelope
-- stores each entry as '<current gen>:<envelope>' with its TTL in the same SET
-- returns the number of entries written
local gen = redis.call('GET', KEYS[1]) or '0'
for i = 2, #KEYS do
  local ttl = ARGV[2 * (i - 1) - 1]
  local value = gen .. ':' .. ARGV[2 * (i - 1)]
  if ttl == '0' then
    redis.call('SET', KEYS[i], value)
  else
    redis.call('SET', KEYS[i], value, 'PX', ttl)
  end
end
return #KEYS - 1
""",
)
