-- fs_write: write one file (inline, chunked or in a blob) and keep the index in step.
-- This is the body of core's IdempotentScript: it runs as `body(keys, argv)`, where keys
-- and argv are KEYS/ARGV without the op-id key and the op-id TTL the wrapper puts first.
--
-- KEYS (data keys; all in the namespace's hash tag, so one Cluster slot):
--   meta_key     the file's meta hash (m:<path>)
--   chunks_key   the file's chunk hash (c:<path>)
--   idx_key      sorted set of every path
--   files_key    hash path -> 'size|expire_at|encoding|modified_at'
--   exp_key      sorted set path -> expire-at ms
--   blobs_key    sorted set blob ref -> when it may be deleted
--   seq_key      the version counter
--   keys[8..7+D] directory hashes, parent first, then each ancestor to the root
-- ARGV (data args):
--   header       one string, its fields joined by NUL (no field can hold a NUL: paths are
--                refused with one, the rest are ours): path, expected version ('' = any,
--                '0' = must not exist), gen (the content's generation, names its chunks),
--                size in bytes, encoding ('utf-8' or 'base64'), created_at, keep_created
--                ('1' keeps a stored created_at, '0' replaces it), modified_at, ttl in ms
--                ('0' = none), grace (how long chunks and blobs outlive their meta, in
--                ms), blob ref ('' when the content is in Redis), N chunks (0: content
--                inline in argv[2], or in the blob), the line index of the chunks ('' =
--                none; stored as the meta's 'L', see _lines.py), D (the number of
--                directory hashes), then the path's field in each of the D directory
--                hashes. One argument
--                instead of 14 + D: redis-py packs each argument in Python (~0.5 us each,
--                ~half of a 4 KB write's packing; fs performance pass, issue 13).
--   argv[2..1+N] the chunks, unless they were staged (see stage_key); argv[2] the inline
--                content when N is 0 and there is no blob
-- keys[8+D] (optional) stage_key: a hash the client filled with the N chunks (fields
--   '<gen>:<i>', with a TTL) before this call, one MULTI per 2 MiB; it becomes the chunk hash by
--   RENAME, so 10 MB of chunks never pass through Lua (issue: fs performance pass).
-- Returns {'OK', version, replaced_blob_ref, stale} or {'CONFLICT', actual_version} (nothing
-- written; a stage is dropped). stale is 1 when the namespace holds index entries of
-- expired files (the client then purges a batch of them): only `ls` purged them before, so
-- a namespace whose files expired but that nobody listed kept every expired path in idx,
-- files, exp and its directory hashes for good.
-- Errors: 'ERR fs_write: malformed header' when the header's field count does not match
-- its D (nothing written, nothing recorded); OOM from core's deny_oom probe when the
-- server is full (before any write);
-- 'NOTFOUND staged chunks ...' when the stage does not hold the N chunks (nothing written,
-- nothing recorded).

local meta_key, chunks_key, idx_key, files_key = keys[1], keys[2], keys[3], keys[4]
local exp_key, blobs_key, seq_key = keys[5], keys[6], keys[7]
local h, pos = {}, 1
local header, inline = argv[1], argv[2]
while true do
  local stop = string.find(header, '\0', pos, true)
  if not stop then
    h[#h + 1] = string.sub(header, pos)
    break
  end
  h[#h + 1] = string.sub(header, pos, stop - 1)
  pos = stop + 1
end
local path, expected, gen, size, encoding = h[1], h[2], h[3], h[4], h[5]
local created_at, keep_created, modified_at = h[6], h[7], h[8]
local ttl, grace, blob = tonumber(h[9]), tonumber(h[10]), h[11]
local n, lines, d = tonumber(h[12]), h[13], tonumber(h[14])
if not n or not d or #h ~= 14 + d then
  return redis.error_reply('ERR fs_write: malformed header')
end
-- the parent directory's hash and the path's field in it (the first of the D)
local parent_key, parent_field = keys[8], h[15]
local stage_key = keys[8 + d]
-- a stage is checked before anything is written: a missing or partial one (an expired
-- stage, a failover that lost it) writes nothing and records nothing
if stage_key and redis.call('HLEN', stage_key) ~= n then
  return redis.error_reply('NOTFOUND staged chunks of ' .. path .. ' are missing')
end

-- a full server refuses this script here, before it writes (core's deny_oom)
redis.call('SETRANGE', meta_key .. ':oom-probe', 0, '')

local cur = redis.call('HMGET', meta_key, 'v', 'g', 'n', 'ca', 'b', 't')
local actual = tonumber(cur[1]) or 0
if expected ~= '' and tonumber(expected) ~= actual then
  if stage_key then redis.call('DEL', stage_key) end
  return {'CONFLICT', actual}
end
if actual == 0 then
  -- leftovers of an expired generation (chunks outlive their meta by the grace period)
  redis.call('DEL', chunks_key)
else
  local old_n = tonumber(cur[3]) or 0
  for i = 0, old_n - 1 do redis.call('HDEL', chunks_key, cur[2] .. ':' .. i) end
end
local version = redis.call('INCR', seq_key)
local created = created_at
if keep_created == '1' and cur[4] then created = cur[4] end
-- the server's clock in ms (Redis 7 freezes TIME for the script's length); read only when
-- needed: a deadline to set, or an expiry to compare (each redis.call costs ~2-3 us of Lua)
local now
local function clock()
  if not now then
    local _t = redis.call('TIME')
    now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
  end
  return now
end
local expire_at = 0
if ttl > 0 then expire_at = clock() + ttl end
if n == 0 and blob == '' then
  -- inline content goes in with the rest of the metadata: one HSET
  redis.call('HSET', meta_key, 'v', version, 'g', gen, 'n', n, 's', size, 'e', encoding,
    'ca', created, 'ma', modified_at, 't', ttl, 'x', expire_at, 'b', blob, 'p', path,
    'd', inline)
  -- a chunked file's line index goes with its chunks (only a chunked file has one)
  if (tonumber(cur[3]) or 0) > 0 then redis.call('HDEL', meta_key, 'L') end
else
  redis.call('HSET', meta_key, 'v', version, 'g', gen, 'n', n, 's', size, 'e', encoding,
    'ca', created, 'ma', modified_at, 't', ttl, 'x', expire_at, 'b', blob, 'p', path,
    'L', lines)
  redis.call('HDEL', meta_key, 'd')
  if stage_key then
    -- the stage replaces the chunk hash whole (its TTL is set just below)
    redis.call('RENAME', stage_key, chunks_key)
  else
    for i = 1, n do redis.call('HSET', chunks_key, gen .. ':' .. (i - 1), argv[1 + i]) end
  end
end
if ttl > 0 then
  redis.call('PEXPIREAT', meta_key, expire_at)
  redis.call('PEXPIREAT', chunks_key, expire_at + grace)
  redis.call('ZADD', exp_key, expire_at, path)
elseif actual == 0 or cur[6] ~= '0' or stage_key then
  -- a file that had no lifetime ('t' = '0') has none on its meta or chunk hash and no
  -- entry in exp: only a new file (maybe an expired one's leftovers), one that had a
  -- lifetime, or a renamed stage (it carries the stage's TTL) needs these
  redis.call('PERSIST', meta_key)
  redis.call('PERSIST', chunks_key)
  redis.call('ZREM', exp_key, path)
end
local old_blob = cur[5] or ''
if old_blob ~= '' and old_blob ~= blob then redis.call('ZREM', blobs_key, old_blob) end
if blob ~= '' then
  local score = '+inf'
  if ttl > 0 then score = expire_at + grace end
  redis.call('ZADD', blobs_key, score, blob)
end
-- HSET answers how many fields it added: 1 exactly when the path is new to the index
local is_new = redis.call('HSET', files_key, path,
  size .. '|' .. expire_at .. '|' .. encoding .. '|' .. modified_at) == 1
if is_new then
  -- idx and files always hold the same paths (every script adds or drops both)
  redis.call('ZADD', idx_key, 0, path)
  redis.call('HSET', parent_key, parent_field, 'f')
  for j = 2, d do redis.call('HINCRBY', keys[7 + j], h[14 + j], 1) end
end
-- stale: the soonest expiry in exp has passed. One ZRANGE, and the clock only when exp holds
-- anything: a namespace without lifetimes pays one call for this check, not two
local stale = 0
local soonest = redis.call('ZRANGE', exp_key, 0, 0, 'WITHSCORES')
if soonest[2] and tonumber(soonest[2]) < clock() then stale = 1 end
return {'OK', version, old_blob, stale}
