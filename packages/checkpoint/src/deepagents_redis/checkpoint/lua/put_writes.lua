-- ckpt_put_writes: store a task's pending writes for one checkpoint, once per (task, index).
-- Needs thread.lua and expire.lua before it.
--
-- KEYS:
--   the thread's eight keys (thread.lua): idx, ns, cp, cpi, b, w, wl, runs
-- ARGV:
--   f            the checkpoint's field ('ecns<TAB>cid')
--   ttl          TTL in ms of the whole thread ('' = none)
--   erun         the encoded run id of the writes' run ('' = none): when the checkpoint
--                has no index record (its put has not landed, or it was deleted), the
--                run's member 'erun<TAB>cid<TAB>ecns' is added so `delete_for_runs` finds
--                these writes (the put that lands names the same member), and erun is
--                listed in the field f<TAB><TAB>runs of w (thread.lua's orphans_field),
--                so the delete of these writes takes the member too; a checkpoint that
--                exists keeps the run that put it (a resumed run writes for it)
--   ARGV[4..]    triples: name ('<idx><TAB><task id>'), value, '1' to replace (special
--                writes: error, interrupt... are replaced) or '0' to keep a write already
--                stored (LangGraph's rule); or name, '', '2': the value goes around this
--                script, as a plain HSET or HSETNX of the same field AFTER it in the same
--                MULTI (big values: every KB a script receives costs Redis ~1.2 us), so
--                only the name is listed, once
-- A write is stored once its name is listed: a field no list names is no write (the
-- values of a call whose script never ran: NOSCRIPT, then a failed fallback). It is
-- replaced by this call's value ('0'), or deleted for the HSETNX after this script ('2'),
-- instead of standing in for this call's write.
-- Returns {fields written (for '2' triples: the names new to the list), 1 when erun's
--   member was added and the thread had none of run erun before (the client names the
--   run's index)}. A thread with no checkpoint is not named in the thread index: writes
--   may land before their thread's first put (LangGraph's async durability), and a sweep
--   takes a named thread with no checkpoint whole.
-- Errors: OOM from core's deny_oom probe when the server is full (before any write);
--   'CORRUPT ...' when the checkpoint's write list is not ours.

local f, ttl, erun = ARGV[1], ARGV[2], ARGV[3]
local new_run, member = 0, nil
local tab = string.find(f, '\t', 1, true)
if erun ~= '' and tab and redis.call('HEXISTS', cpi_key, f) == 0 then
  member = erun .. '\t' .. string.sub(f, tab + 1) .. '\t' .. string.sub(f, 1, tab - 1)
  local mine = redis.call('ZRANGE', runs_key, '[' .. erun .. '\t', '(' .. erun .. '\n', 'BYLEX',
    'LIMIT', 0, 1)
  if #mine == 0 then new_run = 1 end
end
-- a full server refuses this script here, before it writes (core's deny_oom)
redis.call('SETRANGE', idx_key .. ':oom-probe', 0, '')
local names = write_names(f)
-- A name is listed once, by the first call that stores its write: here, or (mode '2') by
-- the plain HSET/HSETNX after this script. A field no list names is the value of a call
-- whose script never ran, no write: kept by an HSETNX, it stood in for this call's write.
local listed = {}
for _, name in ipairs(names) do listed[name] = true end
local n, grown = 0, false
for i = 4, #ARGV, 3 do
  local name, mode = ARGV[i], ARGV[i + 2]
  if mode == '1' or (mode == '0' and not listed[name]) then
    redis.call('HSET', w_key, f .. '\t' .. name, ARGV[i + 1])
    n = n + 1
  elseif mode == '2' and not listed[name] then
    redis.call('HDEL', w_key, f .. '\t' .. name)
  end
  if not listed[name] then
    listed[name] = true
    names[#names + 1] = name
    grown = true
    if mode == '2' then n = n + 1 end
  end
end
if grown then redis.call('HSET', wl_key, f, cmsgpack.pack(names)) end
if member then
  redis.call('ZADD', runs_key, 0, member)
  -- the member's run, where the delete of these writes finds it (see orphans_field)
  local eruns = orphan_runs(f)
  local known = false
  for _, other in ipairs(eruns) do known = known or other == erun end
  if not known then
    eruns[#eruns + 1] = erun
    redis.call('HSET', w_key, orphans_field(f), cmsgpack.pack(eruns))
  end
end
if ttl ~= '' then expire_thread(ttl) end
return {n, new_run}
