-- ckpt_delete: delete checkpoints of one thread with their writes and unused blobs.
--
-- KEYS:
--   index_key    the thread's index (zset 'cid<TAB>ecns'); every other key is the thread
--                head plus a suffix, so it shares this key's hash tag and slot
-- ARGV:
--   head         the thread's key head
--   mode         'all'          delete up to `arg` checkpoints (the whole thread, in
--                               bounded calls)
--                'run'          delete the checkpoints run `arg` (an erun) wrote
--                'keep_latest'  delete all but the newest checkpoint of each checkpoint
--                               namespace (`arg` unused)
--   arg          see mode
-- Returns {checkpoints deleted, checkpoints left in the thread, erun of each run seen...}.
-- Errors: 'INVALID unknown delete mode' (nothing deleted).

local index_key = KEYS[1]
local head, mode = ARGV[1], ARGV[2]
local arg = ARGV[3]
local touched = {}
local runs = {}
local deleted = 0
local function drop(member)
  local tab = string.find(member, '\t', 1, true)
  local cid, ecns = string.sub(member, 1, tab - 1), string.sub(member, tab + 1)
  local cp = head .. ':cp:' .. ecns .. ':' .. cid
  local fields = redis.call('HMGET', cp, 'bk', 'r')
  touched[ecns] = touched[ecns] or {}
  for ref in string.gmatch(fields[1] or '', '[^\n]+') do touched[ecns][ref] = true end
  if fields[2] and fields[2] ~= '' then
    redis.call('SREM', head .. ':run:' .. fields[2], member)
    runs[fields[2]] = true
  end
  redis.call('UNLINK', cp, head .. ':w:' .. ecns .. ':' .. cid)
  redis.call('ZREM', index_key, member)
  redis.call('ZREM', head .. ':ns:' .. ecns, cid)
  deleted = deleted + 1
end
if mode == 'all' then
  for _, member in ipairs(redis.call('ZRANGE', index_key, 0, tonumber(arg) - 1)) do
    drop(member)
  end
elseif mode == 'run' then
  local runkey = head .. ':run:' .. arg
  for _, member in ipairs(redis.call('SMEMBERS', runkey)) do drop(member) end
  redis.call('DEL', runkey)
elseif mode == 'keep_latest' then
  local newest = {}
  for _, member in ipairs(redis.call('ZRANGE', index_key, 0, -1)) do
    local tab = string.find(member, '\t', 1, true)
    local ecns = string.sub(member, tab + 1)
    if newest[ecns] then drop(newest[ecns]) end
    newest[ecns] = member
  end
else
  return redis.error_reply('INVALID unknown delete mode')
end
-- a blob may be shared by checkpoints of one namespace: keep those still referenced (when
-- the whole thread goes, the rest is deleted by the next calls anyway)
for ecns, refs in pairs(touched) do
  if mode ~= 'all' then
    for _, cid in ipairs(redis.call('ZRANGE', head .. ':ns:' .. ecns, 0, -1)) do
      local kept = redis.call('HGET', head .. ':cp:' .. ecns .. ':' .. cid, 'bk')
      for ref in string.gmatch(kept or '', '[^\n]+') do refs[ref] = nil end
    end
  end
  for ref in pairs(refs) do redis.call('UNLINK', head .. ':b:' .. ecns .. ':' .. ref) end
end
local out = {deleted, redis.call('ZCARD', index_key)}
for erun in pairs(runs) do out[#out + 1] = erun end
return out
