-- fs_list: one page of the live files under a prefix, from the index (glob, walk).
--
-- KEYS (all in the namespace's hash tag, so one Cluster slot):
--   idx_key      sorted set of every path (score 0: lexicographic ranges)
--   files_key    hash path -> 'size|expire_at|encoding|modified_at'
-- ARGV:
--   exact        a path that, when it is a live file, is the whole answer ('' = none)
--   prefix       the prefix of the paths listed
--   cursor       last path of the previous page ('' = first page)
--   page         page size
-- Returns {exact 1|0, next cursor ('' when done), listing}: listing is one string,
-- path NUL summary NUL path NUL summary ... ('' when empty); expired files skipped.
-- Errors: none of its own.

local idx_key, files_key = KEYS[1], KEYS[2]
local exact, prefix, cursor_in, page_size = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)

local function live(s)
  local x = tonumber(string.match(s, '^[^|]*|([^|]*)|'))
  return x == 0 or x >= now
end
if exact ~= '' then
  local s = redis.call('HGET', files_key, exact)
  if s and live(s) then return {1, '', exact .. '\0' .. s} end
end
local lo = '[' .. prefix
if cursor_in ~= '' then lo = '(' .. cursor_in end
local page = tonumber(page_size)
local paths = redis.call('ZRANGEBYLEX', idx_key, lo, '(' .. prefix .. '\255', 'LIMIT', 0, page)
local cursor = ''
if #paths == page then cursor = paths[#paths] end
local out = {}
for i = 1, #paths do
  local s = redis.call('HGET', files_key, paths[i])
  if s and live(s) then
    out[#out + 1] = paths[i]
    out[#out + 1] = s
  end
end
return {0, cursor, table.concat(out, '\0')}
