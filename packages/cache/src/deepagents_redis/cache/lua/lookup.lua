-- cache_lookup: cache_read, and on a miss the single-flight lease in the same call, so a
-- miss costs one round trip instead of a read and then cache_acquire. Needs gen.lua, entry.lua
-- and lease.lua before it.
--
-- KEYS (all in the namespace's hash tag, so one Cluster slot):
--   gen_key      the namespace's generation counter (absent or empty = generation '0')
--   entry_key    the entry: '<generation>:<codec envelope>'
--   lease_key    the single-flight lease: the holder's token, with a TTL
-- ARGV:
--   ttl_ms       TTL in ms pushed on a fresh hit ('0' = leave the expiry alone)
--   max_bytes    largest value served, in bytes
--   token        lease token of this caller
--   lease_ms     lease TTL in ms
-- Returns the stored value ('<gen>:<envelope>') when it is fresh (one bulk reply, as
-- cache_read); on a miss {why, 2, gen} when this caller holds the lease now, or
-- {why, 3, pttl, gen} when another caller holds it, where why is cache_read's miss reason:
-- -1 (none), 0 (stale), 1 (corrupt) or 2 (oversize), and gen the generation read (false: a
-- corrupt counter), which the caller's update passes to cache_write.
-- Errors: none of its own.

local gen_key, entry_key, lease_key = KEYS[1], KEYS[2], KEYS[3]
local ttl_ms, max_bytes, token, lease_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local found, gen = fresh_entry(gen_key, entry_key, ttl_ms, max_bytes)
if type(found) == 'string' then
  return found
end
local lease = take_lease(lease_key, token, lease_ms)
table.insert(lease, 1, found or -1)
table.insert(lease, gen)
return lease
