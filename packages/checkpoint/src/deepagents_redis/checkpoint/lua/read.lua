-- ckpt_read: load one checkpoint, or scan an index newest first (get_tuple, list, copy).
-- Needs thread.lua and expire.lua before it.
--
-- KEYS:
--   the thread's eight keys (thread.lua): idx, ns, cp, cpi, b, w, wl, runs
-- ARGV:
--   mode         'id' (one checkpoint), 'scan' (an index, newest first) or 'up' (an index,
--                oldest first: copy_thread writes parents before children)
--   ecns         the encoded checkpoint namespace; '' (scan, up) = every namespace
--   hi, lo       'id': the cid and ''; 'scan': the lex bounds, of idx ('cid<TAB>ecns') when
--                ecns is '' else of ns ('ecns<TAB>cid'), e.g. '(<member>' and '-'; 'up':
--                the same, from the low bound to the high one, e.g. '(<member>' and '+'
--   want         matches wanted (scan, up)
--   budget       index entries to look at (scan, up; bounded work per call)
--   ttl          TTL in ms to renew on the thread ('' = none)
--   inline_max   blob bytes this call may carry ('' = no limit): an entry whose blobs would
--                go past it carries their sizes instead, and the client reads them with an
--                HMGET (every KB a script reads costs the server ~1.2 us, and its copy
--                into the reply more; HSTRLEN reads a size without the bytes)
--   ARGV[9..]    filter pairs: field, value ('null' matches a missing field; a field
--                stored as '?', a value with no canonical text, matches any value)
-- Returns {head, blob...}: head is ONE msgpack value (a nested reply costs the client a
--   parse per element), {cursor, entry...}: cursor '' when done, else the last member
--   looked at; entry {cid, ecns, body, index record, n, {write name, value...}}, whose n
--   blobs (one per ref, '' for a missing one) come next in the reply's tail, in entry order,
--   as plain bulk strings (packing them cost the server ~1.5 us per KB, a copy of each blob);
--   or, for blobs left to the client, {cid, ecns, body, index record, {size per ref,
--   0 = none}, {write name, value...}, true}, with nothing in the tail
-- Errors: 'CORRUPT ...' when an index record or a write list is not ours.

local mode, ecns0, hi, lo = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl = ARGV[7]
local inline_left = tonumber(ARGV[8])
-- the reply's tail: the blobs of the entries read inline, in entry order
local tail = {false}
local function load(cid, ecns)
  local f = ecns .. '\t' .. cid
  local rec, raw = record(f)
  local body = rec and redis.call('HGET', cp_key, f)
  if not body then
    -- expired or deleted under us: drop the stale index entries
    redis.call('ZREM', idx_key, cid .. '\t' .. ecns)
    redis.call('ZREM', ns_key, f)
    return false
  end
  for i = 9, #ARGV, 2 do
    local have = rec[4][ARGV[i]]
    -- '?': a value with no canonical text, which only the client's exact check can judge
    if not (have == ARGV[i + 1] or have == '?' or (have == nil and ARGV[i + 1] == 'null')) then
      return nil
    end
  end
  if inline_left then
    local sizes, total = {}, 0
    for i, ref in ipairs(rec[2]) do
      sizes[i] = redis.call('HSTRLEN', blob_key, ecns .. '\t' .. ref)
      total = total + sizes[i]
    end
    if total > inline_left then
      return {cid, ecns, body, raw, sizes, writes_of(f), true}
    end
    inline_left = inline_left - total
  end
  local blobs = blobs_of(ecns, rec[2])
  for _, blob in ipairs(blobs) do tail[#tail + 1] = blob end
  return {cid, ecns, body, raw, #blobs, writes_of(f)}
end
local out = {''}
if mode == 'id' then
  local entry = load(hi, ecns0)
  if entry then out[2] = entry end
else
  local want, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
  -- The index is read in chunks that start at `want` and double (never past `budget`): a
  -- get_tuple (want 1) of a long thread used to pull `budget` members into Lua to use one
  -- (17 us of 66 at 100 checkpoints, measured). Same members, same order, same cursor.
  local seen, chunk, bound, found = 0, math.max(want, 1), hi, 0
  while seen < budget and found < want do
    chunk = math.min(chunk, budget - seen)
    local members
    if mode == 'up' and ecns0 == '' then
      members = redis.call('ZRANGE', idx_key, bound, lo, 'BYLEX', 'LIMIT', 0, chunk)
    elseif mode == 'up' then
      members = redis.call('ZRANGE', ns_key, bound, lo, 'BYLEX', 'LIMIT', 0, chunk)
    elseif ecns0 == '' then
      members = redis.call('ZRANGE', idx_key, bound, lo, 'BYLEX', 'REV', 'LIMIT', 0, chunk)
    else
      members = redis.call('ZRANGE', ns_key, bound, lo, 'BYLEX', 'REV', 'LIMIT', 0, chunk)
    end
    for _, member in ipairs(members) do
      seen = seen + 1
      local tab = string.find(member, '\t', 1, true)
      local entry
      if not tab then
        -- not a member a put writes (someone else's bytes): it names no checkpoint, so it
        -- goes as a stale entry goes (it stopped list(thread) and copy_thread on a Lua
        -- runtime error, untyped)
        if ecns0 == '' then
          redis.call('ZREM', idx_key, member)
        else
          redis.call('ZREM', ns_key, member)
        end
      else
        local left, right = string.sub(member, 1, tab - 1), string.sub(member, tab + 1)
        if ecns0 == '' then entry = load(left, right) else entry = load(right, left) end
      end
      if entry then
        out[#out + 1] = entry
        found = found + 1
        if found >= want then
          out[1] = member
          break
        end
      end
      if seen == budget then out[1] = member end
    end
    if #members < chunk then break end
    bound = '(' .. members[#members]
    chunk = chunk * 2
  end
end
if ttl ~= '' then expire_thread(ttl) end
tail[1] = cmsgpack.pack(out)
return tail
