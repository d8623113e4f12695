"""The checkpoint phase's Lua scripts, each headed by its contract (BRIEF §3 "Lua").

Every script touches one thread only: KEYS[1] is one of the thread's keys and every other key
it reads or writes is the thread's head (ARGV[1]) plus a suffix, so all of them share KEYS[1]'s
hash tag and Cluster slot (see `_keys`). Each write is idempotent by construction (a re-sent
put stores the same fields again; a re-sent put_writes finds its writes in place), so a retry
after a lost reply is safe without op ids.
"""

from __future__ import annotations

from typing import Final

from deepagents_redis.core import LuaScript, deny_oom

__all__ = ["DELETE", "HISTORY", "PUT", "PUT_WRITES", "READ"]

_EXPIRE_REFS = """\
local function expire_refs(head, ecns, refs, ttl)
  for ref in string.gmatch(refs or '', '[^\\n]+') do
    redis.call('PEXPIRE', head .. ':b:' .. ecns .. ':' .. ref, ttl)
  end
end
"""

PUT: Final = LuaScript(
    "ckpt_put",
    """\
-- ckpt_put: store one checkpoint with its new blobs and index entries, atomically.
-- KEYS[1] the thread's index (zset 'cid<TAB>ecns'); other keys: ARGV[1] .. suffix (same slot)
-- ARGV[1] thread head  ARGV[2] ecns  ARGV[3] cid  ARGV[4] ttl ms ('' = none)
-- ARGV[5] erun ('' = none)  ARGV[6] blob refs of every channel version ('\\n'-joined)
-- ARGV[7] F hash fields  ARGV[8] B blobs, then F field/value pairs, then B ref/value pairs
-- returns 1
"""
    + _EXPIRE_REFS
    + """\
local head, ecns, cid, ttl, erun = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local nf, nb = tonumber(ARGV[7]), tonumber(ARGV[8])
local cp = head .. ':cp:' .. ecns .. ':' .. cid
local nsidx = head .. ':ns:' .. ecns
local member = cid .. '\\t' .. ecns
"""
    + deny_oom("KEYS[1]")
    + """\
redis.call('DEL', cp)
local i = 9
for _ = 1, nf do
  redis.call('HSET', cp, ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('HSET', cp, 'bk', ARGV[6])
for _ = 1, nb do
  local key = head .. ':b:' .. ecns .. ':' .. ARGV[i]
  if ttl ~= '' then
    redis.call('SET', key, ARGV[i + 1], 'PX', ttl)
  else
    redis.call('SET', key, ARGV[i + 1])
  end
  i = i + 2
end
redis.call('ZADD', KEYS[1], 0, member)
redis.call('ZADD', nsidx, 0, cid)
local runkey = nil
if erun ~= '' then
  runkey = head .. ':run:' .. erun
  redis.call('SADD', runkey, member)
end
if ttl ~= '' then
  redis.call('PEXPIRE', cp, ttl)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', nsidx, ttl)
  redis.call('PEXPIRE', head .. ':w:' .. ecns .. ':' .. cid, ttl)
  if runkey then redis.call('PEXPIRE', runkey, ttl) end
  -- blobs this checkpoint still uses (written by earlier puts) live as long as it does
  expire_refs(head, ecns, ARGV[6], ttl)
end
return 1
""",
)

PUT_WRITES: Final = LuaScript(
    "ckpt_put_writes",
    """\
-- ckpt_put_writes: store a task's pending writes for one checkpoint, once per (task, index).
-- KEYS[1] the checkpoint's writes hash (fields '<idx><TAB><task id>')
-- ARGV[1] ttl ms ('' = none), then triples: field, value, '1' to replace (special writes:
-- error, interrupt... are replaced) or '0' to keep a write already stored (LangGraph's rule)
-- returns the number of fields written
local ttl = ARGV[1]
"""
    + deny_oom("KEYS[1]")
    + """\
local n = 0
for i = 2, #ARGV, 3 do
  if ARGV[i + 2] == '1' then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    n = n + 1
  else
    n = n + redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
if ttl ~= '' then redis.call('PEXPIRE', KEYS[1], ttl) end
return n
""",
)

READ: Final = LuaScript(
    "ckpt_read",
    """\
-- ckpt_read: load one checkpoint, or scan an index newest first (get_tuple, list, copy).
-- KEYS[1] the thread's index (zset 'cid<TAB>ecns') or one namespace's (zset 'cid')
-- ARGV[1] thread head  ARGV[2] ecns when KEYS[1] is a namespace index, '' for the thread's
-- ARGV[3] 'id' (ARGV[4] = the cid) or 'scan' (ARGV[4] = upper bound: '+' or '(<member>')
-- ARGV[5] matches wanted  ARGV[6] index entries to look at (bounded work per call)
-- ARGV[7] ttl ms to renew on what is read ('' = none)  ARGV[8] 'lean' or 'full' (every
-- hash field, for copies), then filter pairs: field, value ('null' matches a missing field)
-- returns ONE msgpack value (a nested reply costs the client a parse per element):
--   {cursor, entry...}: cursor '' when done, else the last member looked at;
--   lean entry {cid, ecns, checkpoint, metadata, parent, refs, {blob per ref or ''},
--   {write field, value...}}; full entry {cid, ecns, {hash field, value...}, refs, blobs,
--   writes}
"""
    + _EXPIRE_REFS
    + """\
local head, ecns0, mode, ttl, shape = ARGV[1], ARGV[2], ARGV[3], ARGV[7], ARGV[8]
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
    redis.call('ZREM', head .. ':idx', cid .. '\\t' .. ecns)
    redis.call('ZREM', head .. ':ns:' .. ecns, cid)
    return false
  end
  local refs = row[4] or ''
  local blobs = {}
  for ref in string.gmatch(refs, '[^\\n]+') do
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
  local entry = load(ARGV[4], ecns0)
  if entry then return cmsgpack.pack({'', entry}) end
  return cmsgpack.pack({''})
end
local want, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local members = redis.call('ZRANGE', KEYS[1], ARGV[4], '-', 'BYLEX', 'REV', 'LIMIT', 0, budget)
local out = {''}
for n, member in ipairs(members) do
  local cid, ecns = member, ecns0
  if ecns0 == '' then
    local tab = string.find(member, '\\t', 1, true)
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
""",
)

HISTORY: Final = LuaScript(
    "ckpt_history",
    """\
-- ckpt_history: walk a checkpoint's ancestors for DeltaChannel histories, in one call.
-- KEYS[1] the namespace index (zset 'cid'); other keys: ARGV[1] .. suffix (same slot)
-- ARGV[1] thread head  ARGV[2] ecns  ARGV[3] 'after' (start at the parent of ARGV[4]) or
-- 'from' (start at ARGV[4] itself; '' in ARGV[4] with 'after': the newest checkpoint)
-- ARGV[5] most ancestors to visit (bounded work per call), then the encoded channels
-- returns ONE msgpack value {cursor, ancestor...}: cursor is the cid to continue 'from'
-- ('' when the walk ended); ancestor = {cid, {write field, value...}, {ech, blob...}} with
-- the seed blob of each channel whose value this ancestor holds (the walk stops for it)
local head, ecns = ARGV[1], ARGV[2]
local cid = ARGV[4]
if ARGV[3] == 'after' then
  if cid == '' then
    cid = redis.call('ZRANGE', KEYS[1], '+', '-', 'BYLEX', 'REV', 'LIMIT', 0, 1)[1]
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
  for ref in string.gmatch(row[2] or '', '[^\\n]+') do
    local ech = string.match(ref, '^([^:]+):')
    if remaining[ech] then
      local blob = redis.call('GET', head .. ':b:' .. ecns .. ':' .. ref)
      if blob and blob ~= 'empty\\n' then
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
""",
)

DELETE: Final = LuaScript(
    "ckpt_delete",
    """\
-- ckpt_delete: delete checkpoints of one thread with their writes and unused blobs.
-- KEYS[1] the thread's index (zset 'cid<TAB>ecns'); other keys: ARGV[1] .. suffix (same slot)
-- ARGV[1] thread head  ARGV[2] mode:
--   'all'          delete up to ARGV[3] checkpoints (the whole thread, in bounded calls)
--   'run'          delete the checkpoints run ARGV[3] (erun) wrote
--   'keep_latest'  delete all but the newest checkpoint of each checkpoint namespace
-- returns {checkpoints deleted, checkpoints left in the thread, erun of each run seen...}
local head, mode = ARGV[1], ARGV[2]
local touched = {}
local runs = {}
local deleted = 0
local function drop(member)
  local tab = string.find(member, '\\t', 1, true)
  local cid, ecns = string.sub(member, 1, tab - 1), string.sub(member, tab + 1)
  local cp = head .. ':cp:' .. ecns .. ':' .. cid
  local fields = redis.call('HMGET', cp, 'bk', 'r')
  touched[ecns] = touched[ecns] or {}
  for ref in string.gmatch(fields[1] or '', '[^\\n]+') do touched[ecns][ref] = true end
  if fields[2] and fields[2] ~= '' then
    redis.call('SREM', head .. ':run:' .. fields[2], member)
    runs[fields[2]] = true
  end
  redis.call('UNLINK', cp, head .. ':w:' .. ecns .. ':' .. cid)
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', head .. ':ns:' .. ecns, cid)
  deleted = deleted + 1
end
if mode == 'all' then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)) do
    drop(member)
  end
elseif mode == 'run' then
  local runkey = head .. ':run:' .. ARGV[3]
  for _, member in ipairs(redis.call('SMEMBERS', runkey)) do drop(member) end
  redis.call('DEL', runkey)
elseif mode == 'keep_latest' then
  local newest = {}
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local tab = string.find(member, '\\t', 1, true)
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
      for ref in string.gmatch(kept or '', '[^\\n]+') do refs[ref] = nil end
    end
  end
  for ref in pairs(refs) do redis.call('UNLINK', head .. ':b:' .. ecns .. ':' .. ref) end
end
local out = {deleted, redis.call('ZCARD', KEYS[1])}
for erun in pairs(runs) do out[#out + 1] = erun end
return out
""",
)
