-- ckpt_read: load one checkpoint, or scan an index newest first (get_tuple, list, copy).
-- Needs expire_refs.lua before it.
--
-- KEYS:
--   index_key    the thread's index (zset 'cid<TAB>ecns') or one namespace's (zset 'cid');
--                every other key is the thread head plus a suffix (same hash tag and slot)
-- ARGV:
--   head         the thread's key head
--   ecns0        the ecns when index_key is a namespace index, '' for the thread's index
--   mode         'id' (at = the cid) or 'scan' (at = upper bound: '+' or '(<member>')
--   at           the cid, or the upper bound of the scan
--   want         matches wanted (scan)
--   budget       index entries to look at (scan; bounded work per call)
--   ttl          TTL in ms to renew on what is read ('' = none)
--   shape        'lean' or 'full' (every hash field, for copies)
--   ARGV[9..]    filter pairs: field, value ('null' matches a missing field)
-- Returns ONE msgpack value (a nested reply costs the client a parse per element):
--   {cursor, entry...}: cursor '' when done, else the last member looked at;
--   lean entry {cid, ecns, checkpoint, metadata, parent, refs, {blob per ref or ''},
--   {write field, value...}}; full entry {cid, ecns, {hash field, value...}, refs, blobs,
--   writes}
-- Errors: none of its own.

local index_key = KEYS[1]
local head, ecns0, mode, ttl, shape = ARGV[1], ARGV[2], ARGV[3], ARGV[7], ARGV[8]
local at = ARGV[4]
local function load(cid, ecns)
  local cp = head .. ':cp:' .. ecns .. ':' .. cid
  for i = 9, #ARGV, 2 do
    local have = redis.call('HGET', cp, ARGV[i])
    if not (have == ARGV[i + 1] or (not have and ARGV[i + 1] == 'null')) then
      return nil
    end
  end
  local row = redis.call('HMGET', cp, 'c', 'm', 'p', 'bk')
  if not row[1] then
    -- expired (TTL) or deleted under us: drop the stale index entries
    redis.call('ZREM', head .. ':idx', cid .. '\t' .. ecns)
    redis.call('ZREM', head .. ':ns:' .. ecns, cid)
    return false
  end
  local refs = row[4] or ''
  local blobs = {}
  for ref in string.gmatch(refs, '[^\n]+') do
    blobs[#blobs + 1] = redis.call('GET', head .. ':b:' .. ecns .. ':' .. ref) or ''
  end
  local wkey = head .. ':w:' .. ecns .. ':' .. cid
  local writes = redis.call('HGETALL', wkey)
  if ttl ~= '' then
    redis.call('PEXPIRE', cp, ttl)
    redis.call('PEXPIRE', wkey, ttl)
    redis.call('PEXPIRE', head .. ':idx', ttl)
    redis.call('PEXPIRE', head .. ':ns:' .. ecns, ttl)
    expire_refs(head, ecns, refs, ttl)
  end
  if shape == 'full' then
    return {cid, ecns, redis.call('HGETALL', cp), refs, blobs, writes}
  end
  return {cid, ecns, row[1], row[2] or '', row[3] or '', refs, blobs, writes}
end
if mode == 'id' then
  local entry = load(at, ecns0)
  if entry then return cmsgpack.pack({'', entry}) end
  return cmsgpack.pack({''})
end
local want, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local members = redis.call('ZRANGE', index_key, at, '-', 'BYLEX', 'REV', 'LIMIT', 0, budget)
local out = {''}
for n, member in ipairs(members) do
  local cid, ecns = member, ecns0
  if ecns0 == '' then
    local tab = string.find(member, '\t', 1, true)
    cid, ecns = string.sub(member, 1, tab - 1), string.sub(member, tab + 1)
  end
  local entry = load(cid, ecns)
  if entry then
    out[#out + 1] = entry
    if #out - 1 >= want then
      out[1] = member
      return cmsgpack.pack(out)
    end
  end
  if n == budget then out[1] = member end
end
return cmsgpack.pack(out)
