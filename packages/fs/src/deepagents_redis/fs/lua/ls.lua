-- fs_ls: one page of a directory's entries, from its directory hash (never the whole
-- namespace).
--
-- KEYS (all in the namespace's hash tag, so one Cluster slot):
--   dir_key      the directory hash: file child name -> 'f', sub-directory 'name/' -> count
--   files_key    hash path -> 'size|expire_at|encoding|modified_at'
--   exp_key      sorted set path -> expire-at ms
-- ARGV:
--   dir          the directory's path (with trailing '/')
--   batch        most expired paths to report for purging
--   cursor       HSCAN cursor of the directory hash ('0' for the first page)
--   page         HSCAN COUNT: about this many entries per call
-- Returns {'PURGE', {path...}} when expired entries must be purged first (their directory
-- counts are stale), else {'OK', listing, next cursor ('0' when done), fields}: listing is
-- one string, two NUL-separated fields per entry: name, '' for a sub-directory (its name ends
-- with '/') and name, 'size|expire_at|encoding|modified_at' for a file ('' when empty). One
-- string, not one element per entry: the reply is parsed in Python, where each element
-- costs. A page, not the whole hash: one call over a directory of 50,000 files held the
-- server for 185 ms (HGETALL and the summaries), and others wait that long. HSCAN may
-- repeat an entry on a later page (the client keeps names once). fields is how many
-- strings the listing joins: more pieces between its NULs mean a name or summary holds a
-- NUL (another program's), which the client refuses.
-- Errors: none of its own.

local dir_key, files_key, exp_key = KEYS[1], KEYS[2], KEYS[3]
local dir, batch, cursor, page = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)

local expired = redis.call('ZRANGEBYSCORE', exp_key, '-inf', '(' .. now, 'LIMIT', 0,
  tonumber(batch))
if #expired > 0 then return {'PURGE', expired} end
local out = {}
local scan = redis.call('HSCAN', dir_key, cursor, 'COUNT', tonumber(page))
local h = scan[2]
-- File summaries are read with one HMGET per 1,000 files, not an HGET each: every
-- redis.call has its own overhead (an ls of 1,000 files: 5-11% less round trip time,
-- alternated runs; fs performance pass, issue 13). The batch keeps unpack() far below
-- Lua's stack limit.
local names, fields = {}, {}
local function flush()
  if #fields == 0 then return end
  local sums = redis.call('HMGET', files_key, unpack(fields))
  for i = 1, #fields do
    if sums[i] then
      out[#out + 1] = names[i]
      out[#out + 1] = sums[i]
    end
  end
  names, fields = {}, {}
end
for i = 1, #h, 2 do
  local name = h[i]
  if string.sub(name, -1) == '/' then
    out[#out + 1] = name
    out[#out + 1] = ''
  else
    names[#names + 1] = name
    fields[#fields + 1] = dir .. name
    if #fields == 1000 then flush() end
  end
end
flush()
return {'OK', table.concat(out, '\0'), scan[1], #out}
