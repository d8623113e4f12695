-- ckpt_history: walk a checkpoint's ancestors for DeltaChannel histories, in one call.
-- Needs thread.lua before it.
--
-- KEYS:
--   the thread's eight keys (thread.lua): idx, ns, cp, cpi, b, w, wl, runs
-- ARGV:
--   ecns         the encoded checkpoint namespace
--   start        'after' (start at the parent of cid) or 'from' (start at cid itself)
--   cid          where to start ('' with 'after': the newest checkpoint of ecns)
--   budget       most ancestors to visit (bounded work per call)
--   inline_max   value bytes this call may carry ('' = no limit): an ancestor whose writes
--                and seeds would go past it carries their sizes instead, for the client to
--                read with HMGET (every KB a script reads costs the server ~1.2 us, and
--                more to pack it into the reply; HSTRLEN reads a size without the bytes)
--   ARGV[6..]    the encoded channels whose history is wanted
-- Returns ONE msgpack value {cursor, ancestor...}: cursor is the cid to continue 'from'
-- ('' when the walk ended); ancestor = {cid, {write name, value...}, {ech, blob...}} with
-- the seed blob of each channel whose value this ancestor holds (the walk stops for it);
-- or, for values left to the client, {cid, {write name, size...}, {ech, blob ref, size...},
-- true}.
-- Errors: 'CORRUPT ...' when an index record or a write list is not ours.

local ecns, start, cid = ARGV[1], ARGV[2], ARGV[3]
if start == 'after' then
  if cid == '' then
    -- the namespace's members are the lex range ['ecns<TAB>', 'ecns<LF>')
    local newest = redis.call(
      'ZRANGE', ns_key, '(' .. ecns .. '\n', '[' .. ecns .. '\t', 'BYLEX', 'REV', 'LIMIT', 0, 1)[1]
    if not newest then return cmsgpack.pack({''}) end
    cid = string.sub(newest, #ecns + 2)
  end
  local rec = record(ecns .. '\t' .. cid)
  cid = rec and rec[1] or ''
end
local remaining, left = {}, 0
for i = 6, #ARGV do remaining[ARGV[i]] = true; left = left + 1 end
local out = {''}
local budget = tonumber(ARGV[4])
local inline_left = tonumber(ARGV[5])

-- sizes of an ancestor's writes (flat {name, size...}) and of its seeds among refs (flat
-- {ech, ref, size...}: a blob of the marker's length is read to tell it from a seed)
local function sized(f, refs, wanted)
  local writes, total = {}, 0
  for _, name in ipairs(write_names(f)) do
    local n = redis.call('HSTRLEN', w_key, f .. '\t' .. name)
    if n > 0 then
      writes[#writes + 1] = name
      writes[#writes + 1] = n
      total = total + n
    end
  end
  local seeds = {}
  for i, ref in ipairs(refs) do
    local field = ecns .. '\t' .. ref
    local n = redis.call('HSTRLEN', blob_key, field)
    if n > 0 and not (n == 6 and redis.call('HGET', blob_key, field) == 'empty\n') then
      seeds[#seeds + 1] = wanted[i]
      seeds[#seeds + 1] = ref
      seeds[#seeds + 1] = n
      total = total + n
    end
  end
  return writes, seeds, total
end
while cid ~= '' and left > 0 do
  if budget == 0 then
    out[1] = cid
    break
  end
  budget = budget - 1
  local f = ecns .. '\t' .. cid
  local rec = record(f)
  if not rec then break end  -- a missing ancestor ends the walk (as get_tuple -> None)
  local refs, wanted = {}, {}
  for _, ref in ipairs(rec[2]) do
    local ech = string.match(ref, '^([^:]+):')
    if remaining[ech] then
      refs[#refs + 1] = ref
      wanted[#wanted + 1] = ech
    end
  end
  local seeds, step = {}, 2
  local deferred = false
  if inline_left then
    local writes, sized_seeds, total = sized(f, refs, wanted)
    if total > inline_left then
      deferred = true
      seeds, step = sized_seeds, 3
      out[#out + 1] = {cid, writes, seeds, true}
    else
      inline_left = inline_left - total
    end
  end
  if not deferred then
    for i, blob in ipairs(blobs_of(ecns, refs)) do
      if blob ~= '' and blob ~= 'empty\n' then
        seeds[#seeds + 1] = wanted[i]
        seeds[#seeds + 1] = blob
      end
    end
    out[#out + 1] = {cid, writes_of(f), seeds}
  end
  for i = 1, #seeds, step do
    if remaining[seeds[i]] then remaining[seeds[i]] = nil; left = left - 1 end
  end
  cid = rec[1]
end
return cmsgpack.pack(out)
