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
--   paths_only   '1': list every indexed path of the page, without summaries and without
--                the expiry check (grep: its script skips files whose metadata is gone,
--                and needs nothing else from the listing); '0' or absent: with summaries
-- Returns {exact 1|0, next cursor ('' when done), listing, fields}: listing is one string,
-- path NUL summary NUL path NUL summary ... ('' when empty), expired files skipped; with
-- paths_only, path NUL path ... (an exact match still comes with its summary). fields is
-- how many strings the listing joins: more pieces between its NULs mean a member or
-- summary holds a NUL (another program's), which the client refuses.
-- Needs prefix_end.lua before it.
-- Errors: none of its own.

local idx_key, files_key = KEYS[1], KEYS[2]
local exact, prefix, cursor_in, page_size = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local paths_only = ARGV[5]

local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)

local function live(s)
  local x = tonumber(string.match(s, '^[^|]*|([^|]*)|'))
  return x == 0 or x >= now
end
if exact ~= '' then
  local s = redis.call('HGET', files_key, exact)
  if s and live(s) then return {1, '', exact .. '\0' .. s, 2} end
end
local lo = '[' .. prefix
if cursor_in ~= '' then lo = '(' .. cursor_in end
local page = tonumber(page_size)
-- one entry more than a page tells whether another page follows, so a listing of exactly
-- `page` paths takes one call, not a second one that finds nothing
local paths = redis.call('ZRANGEBYLEX', idx_key, lo, prefix_end(prefix), 'LIMIT', 0,
  page + 1)
local cursor = ''
if #paths > page then
  paths[#paths] = nil
  cursor = paths[#paths]
end
if paths_only == '1' then return {0, cursor, table.concat(paths, '\0'), #paths} end
local out = {}
if #paths > 0 then
  -- one HMGET for the page instead of an HGET per path (~1 us of Redis each; fs
  -- performance pass, issue 13); the page bounds its size
  local sums = redis.call('HMGET', files_key, unpack(paths))
  for i = 1, #paths do
    local s = sums[i]
    if s and live(s) then
      out[#out + 1] = paths[i]
      out[#out + 1] = s
    end
  end
end
return {0, cursor, table.concat(out, '\0'), #out}
