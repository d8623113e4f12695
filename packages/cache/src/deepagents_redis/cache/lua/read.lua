-- cache_read: serve one entry if it belongs to the namespace's current generation. Needs gen.lua
-- and entry.lua before it.
-- One bulk reply, like a GET: an MGET of both keys costs an array reply to parse, which
-- made a hit ~1.3x a GET on its own (benchmarks suite `cache`).
--
-- KEYS (both in the namespace's hash tag, so one Cluster slot):
--   gen_key      the namespace's generation counter (absent or empty = generation '0')
--   entry_key    the entry: '<generation>:<codec envelope>'
-- ARGV:
--   ttl_ms       TTL in ms pushed on a fresh hit ('0' = leave the expiry alone)
--   max_bytes    largest value served, in bytes
-- Returns the stored value ('<gen>:<envelope>') when it is fresh; otherwise {why, gen}: why
-- is -1 when there is none, 0 when it belongs to an older generation (stale), 1 when it is
-- not ours (corrupt), 2 when it is larger than max_bytes (oversize: never sent, so a planted
-- 200 MiB value costs the client nothing); gen is the generation read (false: a corrupt
-- counter), which the caller's update passes to cache_write so an answer computed before a
-- clear() is not stored after it.
-- Errors: none of its own.

local gen_key, entry_key = KEYS[1], KEYS[2]
local ttl_ms, max_bytes = ARGV[1], ARGV[2]

local found, gen = fresh_entry(gen_key, entry_key, ttl_ms, max_bytes)
if type(found) == 'string' then
  return found
end
return {found or -1, gen}
