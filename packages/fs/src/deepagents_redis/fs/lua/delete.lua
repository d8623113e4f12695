-- fs_delete: delete files (P paths) and their index entries, in one atomic step.
-- This is the body of core's IdempotentScript: it runs as `body(keys, argv)`, where keys
-- and argv are KEYS/ARGV without the op-id key and the op-id TTL the wrapper puts first.
-- Needs unlink_dirs.lua and prefix_end.lua before it.
--
-- KEYS (data keys; all in the namespace's hash tag, so one Cluster slot):
--   idx_key      sorted set of every path
--   files_key    hash path -> summary
--   exp_key      sorted set path -> expire-at ms
--   blobs_key    sorted set blob ref -> when it may be deleted
--   keys[5..4+2P]  meta and chunk hash of each path
--   keys[5+2P..]   directory hashes
-- ARGV (data args):
--   p            P, the number of paths
--   probe        prefix to probe for remaining entries afterwards ('' = none)
--   argv[3..]    per path: path, D, then D pairs (directory key index after 4+2P, field)
-- Returns {live files deleted, 1 if entries remain under the probe prefix else 0,
-- blob refs of the deleted files...}; a path that is not in the index is skipped.
-- Errors: none of its own.

local idx_key, files_key, exp_key, blobs_key = keys[1], keys[2], keys[3], keys[4]
local p, probe = tonumber(argv[1]), argv[2]

local dir_base = 4 + 2 * p
local live = 0
local out = {0, 0}
local pos = 3
for k = 1, p do
  local path = argv[pos]
  local meta = keys[3 + 2 * k]
  local chunks = keys[4 + 2 * k]
  if redis.call('HEXISTS', files_key, path) == 1 then
    if redis.call('EXISTS', meta) == 1 then
      live = live + 1
      local b = redis.call('HGET', meta, 'b')
      if b and b ~= '' then
        redis.call('ZREM', blobs_key, b)
        out[#out + 1] = b
      end
    end
    redis.call('DEL', meta, chunks)
    redis.call('HDEL', files_key, path)
    redis.call('ZREM', idx_key, path)
    redis.call('ZREM', exp_key, path)
    pos = unlink_dirs(keys, argv, pos + 1, dir_base)
  else
    pos = pos + 2 + 2 * tonumber(argv[pos + 1])
  end
end
out[1] = live
if probe ~= '' then
  local left = redis.call('ZRANGEBYLEX', idx_key, '[' .. probe, prefix_end(probe),
    'LIMIT', 0, 1)
  if #left > 0 then out[2] = 1 end
end
return out
