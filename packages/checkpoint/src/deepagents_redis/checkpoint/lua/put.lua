-- ckpt_put: store one checkpoint with its new blobs and index entries, atomically.
-- Needs thread.lua and expire.lua before it.
--
-- KEYS:
--   the thread's eight keys (thread.lua): idx, ns, cp, cpi, b, w, wl, runs
-- ARGV:
--   ecns         the encoded checkpoint namespace
--   cid          the checkpoint id
--   ttl          TTL in ms of the whole thread ('' = none)
--   erun         the encoded run id ('' = none); the index record holds it too
--   body         msgpack [checkpoint frame, metadata frame] (stored as given)
--   rec          the index record (msgpack; see _keys), stored as given
--   ARGV[7..]    pairs: blob ref ('<ech>:<ever>'), blob value (the new channel versions)
-- A put again under an id already stored with other channel versions deletes the blobs
-- only the old version named (a walk over the namespace's records, on that path only).
-- Returns {new thread, new run}: 1 when the thread had no checkpoint before this put, and when
--   it had none of run erun (0 for no run); the client then names it in the cross-thread
--   indexes, should it believe it already had (another process deleted the thread meanwhile).
-- Errors: OOM from core's deny_oom probe when the server is full (before any write);
--   'CORRUPT ...' when the record stored under this id before is not ours.

local ecns, cid, ttl, erun = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local body, rec = ARGV[5], ARGV[6]
local f = ecns .. '\t' .. cid
local new_thread = redis.call('ZCARD', idx_key) == 0 and 1 or 0
local new_run = 0
if erun ~= '' then
  local mine = redis.call('ZRANGE', runs_key, '[' .. erun .. '\t', '(' .. erun .. '\n', 'BYLEX',
    'LIMIT', 0, 1)
  if #mine == 0 then new_run = 1 end
end
-- a full server refuses this script here, before it writes (core's deny_oom)
redis.call('SETRANGE', idx_key .. ':oom-probe', 0, '')
-- a put again under the same id (a retry, a copy) may name another run: leave no stale one
local old = record(f)
if old and old[3] ~= '' and old[3] ~= erun then
  redis.call('ZREM', runs_key, old[3] .. '\t' .. cid .. '\t' .. ecns)
end
-- ... and other channel versions: the blobs only the old version named went unreferenced
-- for good (nothing else deletes a blob but the delete of a checkpoint that names it).
-- Only then is the namespace's records walked, to keep a blob another checkpoint shares
-- (a retry or a copy names the same versions: LangGraph's own runs never get here).
if old then
  local gone = {}
  for _, ref in ipairs(old[2]) do gone[ref] = true end
  for _, ref in ipairs(unpacked(rec, 'a checkpoint index record')[2] or {}) do
    gone[ref] = nil
  end
  if next(gone) then
    local members = redis.call('ZRANGE', ns_key, '[' .. ecns .. '\t', '(' .. ecns .. '\n', 'BYLEX')
    for _, member in ipairs(members) do
      local other = member ~= f and record(member)
      if other then
        for _, ref in ipairs(other[2]) do gone[ref] = nil end
      end
    end
    for ref in pairs(gone) do redis.call('HDEL', blob_key, ecns .. '\t' .. ref) end
  end
end
redis.call('HSET', cp_key, f, body)
redis.call('HSET', cpi_key, f, rec)
for i = 7, #ARGV, 2 do
  redis.call('HSET', blob_key, ecns .. '\t' .. ARGV[i], ARGV[i + 1])
end
redis.call('ZADD', idx_key, 0, cid .. '\t' .. ecns)
redis.call('ZADD', ns_key, 0, f)
if erun ~= '' then redis.call('ZADD', runs_key, 0, erun .. '\t' .. cid .. '\t' .. ecns) end
if ttl ~= '' then expire_thread(ttl) end
return {new_thread, new_run}
