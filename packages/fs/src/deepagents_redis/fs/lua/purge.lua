-- fs_purge: drop the index entries of paths whose expiry has passed (their meta and chunks
-- are already gone, expired by Redis); a path rewritten since is left alone.
-- Needs unlink_dirs.lua before it.
--
-- KEYS (all in the namespace's hash tag, so one Cluster slot):
--   idx_key      sorted set of every path
--   files_key    hash path -> summary
--   exp_key      sorted set path -> expire-at ms
--   KEYS[4..]    directory hashes
-- ARGV:
--   p            P, the number of paths
--   ARGV[2..]    per path: path, D, then D pairs (directory key index after 3, field)
-- Returns the number of entries purged.
-- Errors: none of its own.

local idx_key, files_key, exp_key = KEYS[1], KEYS[2], KEYS[3]
local p = tonumber(ARGV[1])

local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)

local purged = 0
local pos = 2
for k = 1, p do
  local path = ARGV[pos]
  local score = redis.call('ZSCORE', exp_key, path)
  if score and tonumber(score) < now and redis.call('HEXISTS', files_key, path) == 1 then
    redis.call('HDEL', files_key, path)
    redis.call('ZREM', idx_key, path)
    redis.call('ZREM', exp_key, path)
    pos = unlink_dirs(KEYS, ARGV, pos + 1, 3)
    purged = purged + 1
  else
    if score and tonumber(score) < now then redis.call('ZREM', exp_key, path) end
    pos = pos + 2 + 2 * tonumber(ARGV[pos + 1])
  end
end
return purged
