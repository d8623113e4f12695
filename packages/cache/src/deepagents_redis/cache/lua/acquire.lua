-- cache_acquire: a fresh entry, or the single-flight lease to compute it (one caller of N).
-- Needs gen.lua and lease.lua before it.
--
-- KEYS (all in the namespace's hash tag, so one Cluster slot):
--   gen_key      the namespace's generation counter (absent or empty = generation '0')
--   entry_key    the entry: '<generation>:<codec envelope>'
--   lease_key    the single-flight lease: the holder's token, with a TTL
-- ARGV:
--   token        lease token (random per caller)
--   lease_ms     lease TTL in ms
--   max_bytes    largest value served, in bytes (a larger entry counts as absent)
--   unreadable   optional: SHA1 hex of a value this caller could not decode; that value
--                counts as absent, so the caller takes the lease or waits for the holder's
--                new value instead of being handed the same bytes again
-- Returns {1, value} when a fresh entry exists (value = '<gen>:<envelope>'; none while the
-- generation counter is corrupt: see gen.lua);
-- {2, gen} when this caller holds the lease now (new, or already its own: re-entry);
-- {3, pttl, gen} when another caller holds the lease (pttl = its remaining ms); gen is the
-- generation read (false: a corrupt counter), which the caller's update passes to
-- cache_write.
-- Errors: none of its own.

local gen_key, entry_key, lease_key = KEYS[1], KEYS[2], KEYS[3]
local token, lease_ms, max_bytes, unreadable = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

-- An entry of another type (pcall: its WRONGTYPE failed every poll) counts as absent, like
-- one too large: the caller takes the lease or waits.
local gen = generation(gen_key)
local size = redis.pcall('STRLEN', entry_key)
if gen and type(size) == 'number' and size <= tonumber(max_bytes) then
  local v = redis.call('GET', entry_key)
  if v and string.sub(v, 1, string.len(gen) + 1) == gen .. ':'
      and (unreadable == nil or redis.sha1hex(v) ~= unreadable) then
    return {1, v}
  end
end
local lease = take_lease(lease_key, token, lease_ms)
table.insert(lease, gen)
return lease
