-- fs_ls: one directory's entries, from its directory hash (never the whole namespace).
--
-- KEYS (all in the namespace's hash tag, so one Cluster slot):
--   dir_key      the directory hash: file child name -> 'f', sub-directory 'name/' -> count
--   files_key    hash path -> 'size|expire_at|encoding|modified_at'
--   exp_key      sorted set path -> expire-at ms
-- ARGV:
--   dir          the directory's path (with trailing '/')
--   batch        most expired paths to report for purging
-- Returns {'PURGE', {path...}} when expired entries must be purged first (their directory
-- counts are stale), else {'OK', listing}: listing is one string, two NUL-separated fields
-- per entry, 'd' .. name, '' for a sub-directory (the name ends with '/') and 'f' .. name,
-- 'size|expire_at|encoding|modified_at' for a file ('' when empty). One string, not one
-- element per entry: the reply is parsed in Python, where each element costs.
-- Errors: none of its own.

local dir_key, files_key, exp_key = KEYS[1], KEYS[2], KEYS[3]
local dir, batch = ARGV[1], ARGV[2]

local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)

local expired = redis.call('ZRANGEBYSCORE', exp_key, '-inf', '(' .. now, 'LIMIT', 0,
  tonumber(batch))
if #expired > 0 then return {'PURGE', expired} end
local out = {}
local h = redis.call('HGETALL', dir_key)
for i = 1, #h, 2 do
  local name = h[i]
  if string.sub(name, -1) == '/' then
    out[#out + 1] = 'd' .. name
    out[#out + 1] = ''
  else
    local s = redis.call('HGET', files_key, dir .. name)
    if s then
      out[#out + 1] = 'f' .. name
      out[#out + 1] = s
    end
  end
end
return {'OK', table.concat(out, '\0')}
