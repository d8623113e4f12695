"""Lua sources for `RedisBackend`.

Every key a script touches is passed in KEYS and lives under the namespace's hash tag, so
each script is one atomic step on one Cluster slot. Times come from the server (`TIME`;
Redis 7 freezes it for the length of a script), so expiry decisions agree with Redis' own
key expiry, which treats a key as gone once `now > deadline`.

Layout of one namespace (all keys share the scope `{namespace}`):

- `m:<path>`   hash: v version, g generation, n chunk count, d inline content, s size,
  e encoding, ca created_at, ma modified_at, t ttl ms, x expire-at ms, b blob ref, p path
- `c:<path>`   hash of chunks, fields `<generation>:<i>`; expires a grace period after its
  meta (a reader streaming a big file for grep can finish the generation it started)
- `idx`        sorted set of every path (score 0) for prefix ranges (`glob`, `grep`, `delete`)
- `files`      hash path -> `size|expire_at|encoding|modified_at`, what listings report
- `exp`        sorted set path -> expire-at ms, for purging index entries of expired files
- `blobs`      sorted set blob ref -> when it may be deleted (`+inf` while its file lives)
- `seq`        version counter: versions only grow, even across delete and re-create
- `d:<dir>`    hash per directory: a file child `name -> 'f'`; a sub-directory
  `name/ -> number of files below it`, so `ls` reads only the directory's own entries
"""

from __future__ import annotations

from deepagents_redis.core import deny_oom

__all__ = [
    "DELETE",
    "EDIT",
    "GC_CLAIM",
    "GREP",
    "LIST",
    "LS",
    "PURGE",
    "READ",
    "WRITE",
]


# WRITE, EDIT and DELETE are bodies of core's `IdempotentScript` and use its shifted
# `keys`/`argv` tables; the other scripts are plain and use KEYS/ARGV, except PURGE, which
# binds `keys, argv = KEYS, ARGV` to share `unlink_dirs` with DELETE. No text is rewritten.


_NOW = """
local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
"""

# Remove `path` from the directory hashes. `pos` points at its D in ARGV; pairs follow.
_UNLINK_DIRS = """
local function unlink_dirs(pos, key_base)
  local dcount = tonumber(argv[pos])
  for j = 0, dcount - 1 do
    local key = keys[key_base + tonumber(argv[pos + 1 + 2 * j])]
    local field = argv[pos + 2 + 2 * j]
    if j == 0 then
      redis.call('HDEL', key, field)
    elseif redis.call('HINCRBY', key, field, -1) <= 0 then
      redis.call('HDEL', key, field)
    end
  end
  return pos + 1 + 2 * dcount
end
"""

WRITE = (
    """
-- KEYS[1] meta  KEYS[2] chunks  KEYS[3] idx  KEYS[4] files  KEYS[5] exp  KEYS[6] blobs
-- KEYS[7] seq   KEYS[8..7+D] directory hashes, parent first, then each ancestor to the root
-- ARGV[1] path  ARGV[2] expected version ('' any, '0' must not exist)  ARGV[3] generation
-- ARGV[4] size  ARGV[5] encoding  ARGV[6] created_at  ARGV[7] keep stored created_at '1'|'0'
-- ARGV[8] modified_at  ARGV[9] ttl ms ('0' none)  ARGV[10] chunk grace ms
-- ARGV[11] blob ref ('' when the content is in Redis)  ARGV[12] D
-- ARGV[13..12+D] the path's field in each directory hash
-- ARGV[13+D] N chunks (0: content inline in ARGV[14+D], or in the blob)
-- ARGV[14+D..13+D+N] chunks
-- returns {'OK', version, replaced_blob_ref} or {'CONFLICT', actual_version}
"""
    + _NOW
    + """
local meta = keys[1]
local path = argv[1]
"""
    + deny_oom("keys[1]")
    + """
local cur = redis.call('HMGET', meta, 'v', 'g', 'n', 'ca', 'b')
local actual = tonumber(cur[1]) or 0
if argv[2] ~= '' and tonumber(argv[2]) ~= actual then
  return {'CONFLICT', actual}
end
if actual == 0 then
  -- leftovers of an expired generation (chunks outlive their meta by the grace period)
  redis.call('DEL', keys[2])
else
  local old_n = tonumber(cur[3]) or 0
  for i = 0, old_n - 1 do redis.call('HDEL', keys[2], cur[2] .. ':' .. i) end
end
local d = tonumber(argv[12])
local nidx = 13 + d
local n = tonumber(argv[nidx])
local gen = argv[3]
local blob = argv[11]
local grace = tonumber(argv[10])
local version = redis.call('INCR', keys[7])
local created = argv[6]
if argv[7] == '1' and cur[4] then created = cur[4] end
local ttl = tonumber(argv[9])
local expire_at = 0
if ttl > 0 then expire_at = now + ttl end
redis.call('HSET', meta, 'v', version, 'g', gen, 'n', n, 's', argv[4], 'e', argv[5],
  'ca', created, 'ma', argv[8], 't', ttl, 'x', expire_at, 'b', blob, 'p', path)
if n == 0 and blob == '' then
  redis.call('HSET', meta, 'd', argv[nidx + 1])
else
  redis.call('HDEL', meta, 'd')
  for i = 1, n do redis.call('HSET', keys[2], gen .. ':' .. (i - 1), argv[nidx + i]) end
end
if ttl > 0 then
  redis.call('PEXPIREAT', meta, expire_at)
  redis.call('PEXPIREAT', keys[2], expire_at + grace)
  redis.call('ZADD', keys[5], expire_at, path)
else
  redis.call('PERSIST', meta)
  redis.call('PERSIST', keys[2])
  redis.call('ZREM', keys[5], path)
end
local old_blob = cur[5] or ''
if old_blob ~= '' and old_blob ~= blob then redis.call('ZREM', keys[6], old_blob) end
if blob ~= '' then
  local score = '+inf'
  if ttl > 0 then score = expire_at + grace end
  redis.call('ZADD', keys[6], score, blob)
end
local is_new = redis.call('HEXISTS', keys[4], path) == 0
redis.call('HSET', keys[4], path, argv[4] .. '|' .. expire_at .. '|' .. argv[5] .. '|' .. argv[8])
redis.call('ZADD', keys[3], 0, path)
if is_new then
  redis.call('HSET', keys[8], argv[13], 'f')
  for j = 2, d do redis.call('HINCRBY', keys[7 + j], argv[12 + j], 1) end
end
return {'OK', version, old_blob}
"""
)

DELETE = (
    """
-- KEYS[1] idx  KEYS[2] files  KEYS[3] exp  KEYS[4] blobs
-- KEYS[5..4+2P] meta and chunk hash of each path  KEYS[5+2P..] directory hashes
-- ARGV[1] P  ARGV[2] prefix to probe for remaining entries afterwards ('' none)
-- ARGV[3..] per path: path, D, then D pairs (directory key index after 4+2P, field)
-- returns {live files deleted, 1 if entries remain under the probe prefix else 0, blob refs...}
"""
    + _NOW
    + _UNLINK_DIRS
    + """
local p = tonumber(argv[1])
local dir_base = 4 + 2 * p
local live = 0
local out = {0, 0}
local pos = 3
for k = 1, p do
  local path = argv[pos]
  local meta = keys[3 + 2 * k]
  local chunks = keys[4 + 2 * k]
  if redis.call('HEXISTS', keys[2], path) == 1 then
    if redis.call('EXISTS', meta) == 1 then
      live = live + 1
      local b = redis.call('HGET', meta, 'b')
      if b and b ~= '' then
        redis.call('ZREM', keys[4], b)
        out[#out + 1] = b
      end
    end
    redis.call('DEL', meta, chunks)
    redis.call('HDEL', keys[2], path)
    redis.call('ZREM', keys[1], path)
    redis.call('ZREM', keys[3], path)
    pos = unlink_dirs(pos + 1, dir_base)
  else
    pos = pos + 2 + 2 * tonumber(argv[pos + 1])
  end
end
out[1] = live
if argv[2] ~= '' then
  local left = redis.call('ZRANGEBYLEX', keys[1], '[' .. argv[2], '(' .. argv[2] .. '\\255',
    'LIMIT', 0, 1)
  if #left > 0 then out[2] = 1 end
end
return out
"""
)

PURGE = (
    """
-- KEYS[1] idx  KEYS[2] files  KEYS[3] exp  KEYS[4..] directory hashes
-- ARGV[1] P  ARGV[2..] per path: path, D, then D pairs (directory key index after 3, field)
-- drops the index entries of paths whose expiry has passed (their meta and chunks are
-- already gone, expired by Redis); a path rewritten since is left alone
-- returns the number of entries purged
local keys, argv = KEYS, ARGV  -- unlink_dirs is shared with the delete body
"""
    + _NOW
    + _UNLINK_DIRS
    + """
local p = tonumber(ARGV[1])
local purged = 0
local pos = 2
for k = 1, p do
  local path = ARGV[pos]
  local score = redis.call('ZSCORE', KEYS[3], path)
  if score and tonumber(score) < now and redis.call('HEXISTS', KEYS[2], path) == 1 then
    redis.call('HDEL', KEYS[2], path)
    redis.call('ZREM', KEYS[1], path)
    redis.call('ZREM', KEYS[3], path)
    pos = unlink_dirs(pos + 1, 3)
    purged = purged + 1
  else
    if score and tonumber(score) < now then redis.call('ZREM', KEYS[3], path) end
    pos = pos + 2 + 2 * tonumber(ARGV[pos + 1])
  end
end
return purged
"""
)

LS = (
    """
-- KEYS[1] directory hash  KEYS[2] files  KEYS[3] exp
-- ARGV[1] directory path (with trailing '/')  ARGV[2] purge batch size
-- returns {'PURGE', path...} when expired entries must be purged first (their directory
-- counts are stale), else {'OK', listing}: listing is one string, two NUL-separated fields
-- per entry, 'd' .. name, '' for a sub-directory (the name ends with '/') and 'f' .. name,
-- 'size|expire_at|encoding|modified_at' for a file ('' when empty). One string, not one
-- element per entry: the reply is parsed in Python, where each element costs.
"""
    + _NOW
    + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. now, 'LIMIT', 0,
  tonumber(ARGV[2]))
if #expired > 0 then return {'PURGE', expired} end
local out = {}
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h, 2 do
  local name = h[i]
  if string.sub(name, -1) == '/' then
    out[#out + 1] = 'd' .. name
    out[#out + 1] = ''
  else
    local s = redis.call('HGET', KEYS[2], ARGV[1] .. name)
    if s then
      out[#out + 1] = 'f' .. name
      out[#out + 1] = s
    end
  end
end
return {'OK', table.concat(out, '\0')}
"""
)

LIST = (
    """
-- KEYS[1] idx  KEYS[2] files
-- ARGV[1] exact path that, when it is a live file, is the whole answer ('' none)
-- ARGV[2] prefix  ARGV[3] cursor (last path of the previous page, '' first page)
-- ARGV[4] page size
-- returns {exact 1|0, next cursor ('' when done), listing}: listing is one string,
-- path NUL summary NUL path NUL summary ... ('' when empty); expired files skipped
"""
    + _NOW
    + """
local function live(s)
  local x = tonumber(string.match(s, '^[^|]*|([^|]*)|'))
  return x == 0 or x >= now
end
if ARGV[1] ~= '' then
  local s = redis.call('HGET', KEYS[2], ARGV[1])
  if s and live(s) then return {1, '', ARGV[1] .. '\0' .. s} end
end
local lo = '[' .. ARGV[2]
if ARGV[3] ~= '' then lo = '(' .. ARGV[3] end
local page = tonumber(ARGV[4])
local paths = redis.call('ZRANGEBYLEX', KEYS[1], lo, '(' .. ARGV[2] .. '\\255', 'LIMIT', 0, page)
local cursor = ''
if #paths == page then cursor = paths[#paths] end
local out = {}
for i = 1, #paths do
  local s = redis.call('HGET', KEYS[2], paths[i])
  if s and live(s) then
    out[#out + 1] = paths[i]
    out[#out + 1] = s
  end
end
return {0, cursor, table.concat(out, '\0')}
"""
)

READ = (
    """
-- KEYS[1] meta  KEYS[2] chunks  KEYS[3] files  KEYS[4] exp  KEYS[5] blobs
-- ARGV[1] path  ARGV[2] chunk grace ms  ARGV[3] refresh the lifetime first '1'|'0'
-- Reads metadata and every chunk in one atomic step, so no writer can come in between.
-- With ARGV[3] = '1' a file with a lifetime gets its lifetime started again first.
-- returns {} when the file does not exist; {-1} when a chunk is missing (data loss);
-- else {number of metadata items, field, value, ..., chunk 0, chunk 1, ...}
"""
    + _NOW
    + """
local m = redis.call('HMGET', KEYS[1], 't', 's', 'ma', 'b', 'e', 'n', 'g')
if not m[6] then return {} end
local ttl = tonumber(m[1] or '0') or 0
if ARGV[3] == '1' and ttl > 0 then
  local grace = tonumber(ARGV[2])
  local expire_at = now + ttl
  redis.call('PEXPIREAT', KEYS[1], expire_at)
  redis.call('PEXPIREAT', KEYS[2], expire_at + grace)
  redis.call('HSET', KEYS[1], 'x', expire_at)
  redis.call('ZADD', KEYS[4], expire_at, ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], m[2] .. '|' .. expire_at .. '|' .. m[5] .. '|' .. m[3])
  if m[4] and m[4] ~= '' then redis.call('ZADD', KEYS[5], expire_at + grace, m[4]) end
end
local meta = redis.call('HGETALL', KEYS[1])
local out = {#meta}
for i = 1, #meta do out[#out + 1] = meta[i] end
local n = tonumber(m[6]) or 0
for i = 0, n - 1 do
  local c = redis.call('HGET', KEYS[2], m[7] .. ':' .. i)
  if not c then return {-1} end
  out[#out + 1] = c
end
return out
"""
)

GC_CLAIM = (
    """
-- KEYS[1] blobs
-- ARGV[1] batch size
-- removes and returns blob refs whose deletion time has passed (their file expired,
-- or an overwrite's cleanup never ran)
"""
    + _NOW
    + """
local refs = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0,
  tonumber(ARGV[1]))
for i = 1, #refs do redis.call('ZREM', KEYS[1], refs[i]) end
return refs
"""
)

EDIT = (
    """
-- KEYS[1] meta  KEYS[2] files  KEYS[3] exp  KEYS[4] seq
-- ARGV[1] path  ARGV[2] old string (non-empty)  ARGV[3] new string  ARGV[4] replace all '1'|'0'
-- ARGV[5] modified_at  ARGV[6] ttl ms ('0' none)  ARGV[7] max file size
-- ARGV[8] largest content kept inline (the chunk size)
-- Applies an edit to an inline file in one step, so concurrent editors never conflict.
-- Byte-wise plain find on UTF-8 counts exactly what Python's str.count does: a valid UTF-8
-- needle can only match at character boundaries.
-- returns {'OK', version, occurrences} | {'NOTFOUND'} | {'BINARY'} | {'FALLBACK'}
-- FALLBACK: not inline, no unique match, or too large; the client takes the optimistic path
-- (which also words the exact error)
"""
    + _NOW
    + """
local m = redis.call('HMGET', keys[1], 'v', 'n', 'b', 'e', 'd', 'ma')
if not m[1] then return {'NOTFOUND'} end
if m[4] == 'base64' then return {'BINARY'} end
if (tonumber(m[2]) or 0) > 0 or (m[3] and m[3] ~= '') or not m[5] then return {'FALLBACK'} end
"""
    + deny_oom("keys[1]")
    + """
local content, old, new = m[5], argv[2], argv[3]
local parts, pos, count = {}, 1, 0
while true do
  local s, e = string.find(content, old, pos, true)
  if not s then break end
  count = count + 1
  parts[#parts + 1] = string.sub(content, pos, s - 1)
  parts[#parts + 1] = new
  pos = e + 1
end
if count == 0 or (count > 1 and argv[4] ~= '1') then return {'FALLBACK'} end
parts[#parts + 1] = string.sub(content, pos)
local out = table.concat(parts)
if #out > tonumber(argv[7]) or #out > tonumber(argv[8]) then return {'FALLBACK'} end
local version = redis.call('INCR', keys[4])
local ttl = tonumber(argv[6])
local expire_at = 0
if ttl > 0 then expire_at = now + ttl end
redis.call('HSET', keys[1], 'v', version, 'd', out, 's', #out, 'ma', argv[5], 't', ttl,
  'x', expire_at)
if ttl > 0 then
  redis.call('PEXPIREAT', keys[1], expire_at)
  redis.call('ZADD', keys[3], expire_at, argv[1])
else
  redis.call('PERSIST', keys[1])
  redis.call('ZREM', keys[3], argv[1])
end
redis.call('HSET', keys[2], argv[1], #out .. '|' .. expire_at .. '|' .. m[4] .. '|' .. argv[5])
return {'OK', version, count}
"""
)

GREP = """
-- KEYS[1..N] meta hashes of candidate files, in path order
-- ARGV[1] literal pattern  ARGV[2] match budget: stop once more than this many matches were
-- found (-1: no limit)
-- Searches inline text files in Redis so only matching lines travel. Lines are the pieces of
-- content split on '\\n' (like Python's str.split), matched with a plain find: on valid UTF-8
-- this is exactly Python's `pattern in line`.
-- returns {stop, file_index, line_number, line, ...}: stop is 0 when every file was searched,
-- else the index of the first file that is not inline (chunked or spilled) and was not
-- searched; the client streams that one and calls again with the files after it.
-- Binary (base64) files and files that no longer exist are skipped.
local pat = ARGV[1]
local budget = tonumber(ARGV[2])
local out = {0}
local found = 0
for k = 1, #KEYS do
  local m = redis.call('HMGET', KEYS[k], 'n', 'b', 'e', 'd')
  if m[1] and m[3] ~= 'base64' then
    if tonumber(m[1]) > 0 or (m[2] and m[2] ~= '') then
      out[1] = k
      return out
    end
    local content = m[4] or ''
    if string.find(content, pat, 1, true) then
      local pos, line_no = 1, 0
      while true do
        local s = string.find(content, '\\n', pos, true)
        local line
        if s then line = string.sub(content, pos, s - 1) else line = string.sub(content, pos) end
        line_no = line_no + 1
        if string.find(line, pat, 1, true) then
          out[#out + 1] = k
          out[#out + 1] = line_no
          out[#out + 1] = line
          found = found + 1
          if budget >= 0 and found > budget then return out end
        end
        if not s then break end
        pos = s + 1
      end
    end
  end
end
return out
"""
