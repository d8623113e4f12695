-- ckpt_history: walk a checkpoint's ancestors for DeltaChannel histories, in one call.
--
-- KEYS:
--   ns_index_key the namespace index (zset 'cid'); every other key is the thread head plus
--                a suffix, so it shares this key's hash tag and slot
-- ARGV:
--   head         the thread's key head
--   ecns         the encoded checkpoint namespace
--   start        'after' (start at the parent of cid) or 'from' (start at cid itself)
--   cid          where to start ('' with 'after': the newest checkpoint)
--   budget       most ancestors to visit (bounded work per call)
--   ARGV[6..]    the encoded channels whose history is wanted
-- Returns ONE msgpack value {cursor, ancestor...}: cursor is the cid to continue 'from'
-- ('' when the walk ended); ancestor = {cid, {write field, value...}, {ech, blob...}} with
-- the seed blob of each channel whose value this ancestor holds (the walk stops for it).
-- Errors: none of its own.

local ns_index_key = KEYS[1]
local head, ecns = ARGV[1], ARGV[2]
local start = ARGV[3]
local cid = ARGV[4]
if start == 'after' then
  if cid == '' then
    cid = redis.call('ZRANGE', ns_index_key, '+', '-', 'BYLEX', 'REV', 'LIMIT', 0, 1)[1]
    if not cid then return cmsgpack.pack({''}) end
  end
  cid = redis.call('HGET', head .. ':cp:' .. ecns .. ':' .. cid, 'p') or ''
end
local remaining, left = {}, 0
for i = 6, #ARGV do remaining[ARGV[i]] = true; left = left + 1 end
local out = {''}
local budget = tonumber(ARGV[5])
while cid ~= '' and left > 0 do
  if budget == 0 then
    out[1] = cid
    break
  end
  budget = budget - 1
  local cp = head .. ':cp:' .. ecns .. ':' .. cid
  local row = redis.call('HMGET', cp, 'p', 'bk')
  if not row[1] then break end  -- a missing ancestor ends the walk (as get_tuple -> None)
  local seeds = {}
  for ref in string.gmatch(row[2] or '', '[^\n]+') do
    local ech = string.match(ref, '^([^:]+):')
    if remaining[ech] then
      local blob = redis.call('GET', head .. ':b:' .. ecns .. ':' .. ref)
      if blob and blob ~= 'empty\n' then
        seeds[#seeds + 1] = ech
        seeds[#seeds + 1] = blob
      end
    end
  end
  out[#out + 1] = {cid, redis.call('HGETALL', head .. ':w:' .. ecns .. ':' .. cid), seeds}
  for i = 1, #seeds, 2 do
    if remaining[seeds[i]] then remaining[seeds[i]] = nil; left = left - 1 end
  end
  cid = row[1]
end
return cmsgpack.pack(out)
