-- cache_write: store an entry under the current generation and drop the lease.
-- The TTL goes in the same SET (never a value without its expiry); the lease is dropped
-- because the value is there and nobody needs to wait any more.
--
-- KEYS (all in the namespace's hash tag, so one Cluster slot):
--   gen_key      the namespace's generation counter (absent = generation '0')
--   entry_key    the entry, stored as '<current generation>:<envelope>'
--   lease_key    the single-flight lease
-- ARGV:
--   envelope     the codec envelope
--   ttl_ms       TTL in ms ('0' = no expiry)
-- Returns the generation the value was stored under.
-- Errors: none of its own.

local gen_key, entry_key, lease_key = KEYS[1], KEYS[2], KEYS[3]
local envelope, ttl_ms = ARGV[1], ARGV[2]

local gen = redis.call('GET', gen_key) or '0'
if ttl_ms == '0' then
  redis.call('SET', entry_key, gen .. ':' .. envelope)
else
  redis.call('SET', entry_key, gen .. ':' .. envelope, 'PX', ttl_ms)
end
redis.call('DEL', lease_key)
return gen
