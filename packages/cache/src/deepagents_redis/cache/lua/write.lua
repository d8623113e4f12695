-- cache_write: store an entry under the current generation and drop the caller's own lease.
-- The TTL goes in the same SET (never a value without its expiry); the lease is dropped
-- because the value is there and nobody needs to wait any more, but only when it still
-- holds the caller's token: a model call that outlived its lease finds the key taken over
-- by another caller, whose waiters wait for that caller's value (deleting its lease sent
-- one of them to the model again when this update stored nothing). Needs gen.lua and
-- lease.lua before it.
--
-- KEYS (all in the namespace's hash tag, so one Cluster slot):
--   gen_key      the namespace's generation counter (absent or empty = generation '0')
--   entry_key    the entry, stored as '<current generation>:<envelope>'
--   lease_key    the single-flight lease
-- ARGV:
--   envelope     the codec envelope ('' = store nothing, only drop the lease: an update
--                the cache skipped; a codec envelope is never empty)
--   ttl_ms       TTL in ms ('0' = no expiry)
--   token        the caller's lease token ('' = it holds none: the lease is left alone)
-- Returns the generation the value was stored under; false (nil) when nothing was stored
-- (an empty envelope, or a corrupt generation counter: see gen.lua).
-- Errors: none of its own.

local gen_key, entry_key, lease_key = KEYS[1], KEYS[2], KEYS[3]
local envelope, ttl_ms, token = ARGV[1], ARGV[2], ARGV[3]

local gen = envelope ~= '' and generation(gen_key)
if gen and ttl_ms == '0' then
  redis.call('SET', entry_key, gen .. ':' .. envelope)
elseif gen then
  redis.call('SET', entry_key, gen .. ':' .. envelope, 'PX', ttl_ms)
end
if token ~= '' and holds_lease(lease_key, token) then
  redis.call('DEL', lease_key)
end
return gen
