-- fs_edit: replace a string in an inline text file in one step, so concurrent editors
-- never conflict. Byte-wise plain find on UTF-8 counts exactly what Python's str.count
-- does: a valid UTF-8 needle can only match at character boundaries.
-- This is the body of core's IdempotentScript: it runs as `body(keys, argv)`, where keys
-- and argv are KEYS/ARGV without the op-id key and the op-id TTL the wrapper puts first.
-- Needs utf8.lua before it.
--
-- KEYS (data keys; all in the namespace's hash tag, so one Cluster slot):
--   meta_key     the file's meta hash
--   files_key    hash path -> 'size|expire_at|encoding|modified_at'
--   exp_key      sorted set path -> expire-at ms
--   seq_key      the version counter
-- ARGV (data args):
--   path         the file's path
--   old          the string to replace (non-empty)
--   new          its replacement
--   replace_all  '1' replaces every occurrence, '0' only a unique one
--   modified_at  modified_at to store
--   ttl          TTL in ms ('0' = none)
--   max_size     largest file, in bytes
--   max_inline   largest content kept inline (the chunk size)
--   max_work     most byte comparisons the search may make: a plain find compares `old`
--                at every position where its first byte occurs, up to #content * #old
--                (content 'aaa...', old 'aa...ab': 277 ms for 250 KB x 125 KB, the server
--                held); over it the client searches instead (Python's search is linear)
--   max_hits     most occurrences this script replaces (each costs a find, a cut and a
--                table slot: 262,000 one-byte replacements held the server 148 ms); more,
--                and the client applies the edit
-- Returns {'OK', version, occurrences} | {'NOTFOUND'} | {'BINARY'} | {'FALLBACK'}.
-- FALLBACK: not inline, no unique match, too large, too costly to run here, or content that
-- is not UTF-8 (or not ASCII and over utf8.lua's UTF8_CHECK_MAX bytes); the client
-- takes the optimistic path (which also words the exact error). Nothing is written unless the
-- reply is OK.
-- Errors: OOM from core's deny_oom probe when the server is full (before any write).

local meta_key, files_key, exp_key, seq_key = keys[1], keys[2], keys[3], keys[4]
local path, old, new, replace_all = argv[1], argv[2], argv[3], argv[4]
local modified_at, ttl_ms, max_size, max_inline = argv[5], argv[6], argv[7], argv[8]
local max_work, max_hits = tonumber(argv[9]), tonumber(argv[10])

local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)

local m = redis.call('HMGET', meta_key, 'v', 'n', 'b', 'e', 'd', 'ma')
if not m[1] then return {'NOTFOUND'} end
if m[4] == 'base64' then return {'BINARY'} end
if (tonumber(m[2]) or 0) > 0 or (m[3] and m[3] ~= '') or not m[5] then return {'FALLBACK'} end
if #m[5] * #old > max_work then return {'FALLBACK'} end
-- Content that is not UTF-8 (another program wrote it, or it is damaged) is the client's:
-- its path answers the read's error result, where this script would write the edit into
-- it. Text with no byte >= 0x80 costs one scan; other text over UTF8_CHECK_MAX bytes goes
-- to the client too, whose check is linear and cheap (see utf8.lua).
if has_high_byte(m[5]) and (#m[5] > UTF8_CHECK_MAX or not is_utf8(m[5])) then
  return {'FALLBACK'}
end
-- a full server refuses this script here, before it writes (core's deny_oom)
redis.call('SETRANGE', meta_key .. ':oom-probe', 0, '')

local content = m[5]
local parts, pos, count = {}, 1, 0
-- the size the result grows to; once past what this script may keep, nothing more to find
local size, grow = #content, #new - #old
local limit = math.min(tonumber(max_size), tonumber(max_inline))
while true do
  local s, e = string.find(content, old, pos, true)
  if not s then break end
  count = count + 1
  -- a second match of a unique edit, too many, or too big: the client words or applies it
  size = size + grow
  if (count > 1 and replace_all ~= '1') or count > max_hits or (grow > 0 and size > limit) then
    return {'FALLBACK'}
  end
  parts[#parts + 1] = string.sub(content, pos, s - 1)
  parts[#parts + 1] = new
  pos = e + 1
end
if count == 0 or (count > 1 and replace_all ~= '1') then return {'FALLBACK'} end
parts[#parts + 1] = string.sub(content, pos)
local out = table.concat(parts)
if #out > tonumber(max_size) or #out > tonumber(max_inline) then return {'FALLBACK'} end
local version = redis.call('INCR', seq_key)
local ttl = tonumber(ttl_ms)
local expire_at = 0
if ttl > 0 then expire_at = now + ttl end
redis.call('HSET', meta_key, 'v', version, 'd', out, 's', #out, 'ma', modified_at, 't', ttl,
  'x', expire_at)
if ttl > 0 then
  redis.call('PEXPIREAT', meta_key, expire_at)
  redis.call('ZADD', exp_key, expire_at, path)
else
  redis.call('PERSIST', meta_key)
  redis.call('ZREM', exp_key, path)
end
redis.call('HSET', files_key, path, #out .. '|' .. expire_at .. '|' .. m[4] .. '|' .. modified_at)
return {'OK', version, count}
