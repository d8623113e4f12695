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
--   seen         optional: the generation the caller's lookup read when it missed ('' or
--                absent = none known: store under the current one). When the generation
--                has moved since (a clear() while the model ran), nothing is stored: the
--                answer was computed before the clear, and storing it under the new
--                generation served it after the clear; storing it under the old one could
--                overwrite a fresh entry another caller stored after the clear.
-- Returns the generation the value was stored under; false (nil) when nothing was stored
-- (an empty envelope, or a corrupt generation counter: see gen.lua); 0 when nothing was
-- stored because the generation is no longer `seen`.
-- Errors: none of its own.

local gen_key, entry_key, lease_key = KEYS[1], KEYS[2], KEYS[3]
local envelope, ttl_ms, token, seen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local gen = envelope ~= '' and generation(gen_key)
local moved = gen and seen ~= nil and seen ~= '' and seen ~= gen
if moved then
  gen = false
end
if gen and ttl_ms == '0' then
  redis.call('SET', entry_key, gen .. ':' .. envelope)
elseif gen then
  redis.call('SET', entry_key, gen .. ':' .. envelope, 'PX', ttl_ms)
end
if token ~= '' and holds_lease(lease_key, token) then
  redis.call('DEL', lease_key)
end
if moved then
  return 0
end
return gen
