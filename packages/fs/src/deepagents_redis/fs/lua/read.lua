-- fs_read: a file's metadata and every chunk in one atomic step, so no writer can come in
-- between; with refresh = '1' a file with a lifetime gets its lifetime started again first.
--
-- KEYS (all in the namespace's hash tag, so one Cluster slot):
--   meta_key     the file's meta hash
--   chunks_key   the file's chunk hash
--   files_key    hash path -> 'size|expire_at|encoding|modified_at'
--   exp_key      sorted set path -> expire-at ms
--   blobs_key    sorted set blob ref -> when it may be deleted
-- ARGV:
--   path         the file's path
--   grace        how long chunks and blobs outlive their meta, in ms
--   refresh      '1' restarts the lifetime of a file that has one, '0' leaves it
--   chunks       '1' answers the chunks too; '0' the metadata only (a refreshing read
--                fetches the chunks itself: copying megabytes through Lua holds the server)
-- Returns {} when the file does not exist; {-1} when a chunk is missing (data loss);
-- else {number of metadata items, field, value, ..., chunk 0, chunk 1, ...} (no chunks
-- with chunks = '0').
-- Errors: none of its own.

local meta_key, chunks_key, files_key = KEYS[1], KEYS[2], KEYS[3]
local exp_key, blobs_key = KEYS[4], KEYS[5]
local path, grace_ms, refresh, with_chunks = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)

local m = redis.call('HMGET', meta_key, 't', 's', 'ma', 'b', 'e', 'n', 'g')
if not m[6] then return {} end
local ttl = tonumber(m[1] or '0') or 0
if refresh == '1' and ttl > 0 then
  local grace = tonumber(grace_ms)
  local expire_at = now + ttl
  redis.call('PEXPIREAT', meta_key, expire_at)
  redis.call('PEXPIREAT', chunks_key, expire_at + grace)
  redis.call('HSET', meta_key, 'x', expire_at)
  redis.call('ZADD', exp_key, expire_at, path)
  redis.call('HSET', files_key, path, m[2] .. '|' .. expire_at .. '|' .. m[5] .. '|' .. m[3])
  if m[4] and m[4] ~= '' then redis.call('ZADD', blobs_key, expire_at + grace, m[4]) end
end
local meta = redis.call('HGETALL', meta_key)
local out = {#meta}
for i = 1, #meta do out[#out + 1] = meta[i] end
if with_chunks == '0' then return out end
local n = tonumber(m[6]) or 0
for i = 0, n - 1 do
  local c = redis.call('HGET', chunks_key, m[7] .. ':' .. i)
  if not c then return {-1} end
  out[#out + 1] = c
end
return out
