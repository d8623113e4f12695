-- ckpt_put_writes: store a task's pending writes for one checkpoint, once per (task, index).
-- Needs thread.lua and expire.lua before it.
--
-- KEYS:
--   the thread's eight keys (thread.lua): idx, ns, cp, cpi, b, w, wl, runs
-- ARGV:
--   f            the checkpoint's field ('ecns<TAB>cid')
--   ttl          TTL in ms of the whole thread ('' = none)
--   ARGV[3..]    triples: name ('<idx><TAB><task id>'), value, '1' to replace (special
--                writes: error, interrupt... are replaced) or '0' to keep a write already
--                stored (LangGraph's rule); or name, '', '2': the value goes around this
--                script, as a plain HSET or HSETNX of the same field AFTER it in the same
--                MULTI (big values: every KB a script receives costs Redis ~1.2 us), so
--                only the name is listed, once
-- A write is stored once its name is listed: a field no list names is no write (the
-- values of a call whose script never ran: NOSCRIPT, then a failed fallback). It is
-- replaced by this call's value ('0'), or deleted for the HSETNX after this script ('2'),
-- instead of standing in for this call's write.
-- Returns the number of fields written (for '2' triples: the names new to the list).
-- Errors: OOM from core's deny_oom probe when the server is full (before any write);
--   'CORRUPT ...' when the checkpoint's write list is not ours.

local f, ttl = ARGV[1], ARGV[2]
-- a full server refuses this script here, before it writes (core's deny_oom)
redis.call('SETRANGE', idx_key .. ':oom-probe', 0, '')
local names = write_names(f)
-- A name is listed once, by the first call that stores its write: here, or (mode '2') by
-- the plain HSET/HSETNX after this script. A field no list names is the value of a call
-- whose script never ran, no write: kept by an HSETNX, it stood in for this call's write.
local listed = {}
for _, name in ipairs(names) do listed[name] = true end
local n, grown = 0, false
for i = 3, #ARGV, 3 do
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
if ttl ~= '' then expire_thread(ttl) end
return n
