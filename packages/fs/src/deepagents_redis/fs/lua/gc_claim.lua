-- fs_gc_claim: remove and return blob refs whose deletion time has passed (their file
-- expired, or an overwrite's cleanup never ran); the caller then deletes the blobs.
--
-- KEYS:
--   blobs_key    sorted set blob ref -> when it may be deleted (ms)
-- ARGV:
--   batch        most refs to claim in this call
-- Returns the claimed refs.
-- Errors: none of its own.

local blobs_key = KEYS[1]
local batch = ARGV[1]

local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)

local refs = redis.call('ZRANGEBYSCORE', blobs_key, '-inf', '(' .. now, 'LIMIT', 0,
  tonumber(batch))
for i = 1, #refs do redis.call('ZREM', blobs_key, refs[i]) end
return refs
