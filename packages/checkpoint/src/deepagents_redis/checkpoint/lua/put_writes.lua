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
--                stored (LangGraph's rule)
-- Returns the number of fields written.
-- Errors: OOM from core's deny_oom probe when the server is full (before any write);
--   'CORRUPT ...' when the checkpoint's write list is not ours.

local f, ttl = ARGV[1], ARGV[2]
-- a full server refuses this script here, before it writes (core's deny_oom)
redis.call('SETRANGE', idx_key .. ':oom-probe', 0, '')
local names = write_names(f)
local n, grown = 0, false
for i = 3, #ARGV, 3 do
  local written
  if ARGV[i + 2] == '1' then
    written = redis.call('HSET', w_key, f .. '\t' .. ARGV[i], ARGV[i + 1])
    n = n + 1
  else
    written = redis.call('HSETNX', w_key, f .. '\t' .. ARGV[i], ARGV[i + 1])
    n = n + written
  end
  -- 1 only for a name new to the hash: the list names each write once
  if written == 1 then
    names[#names + 1] = ARGV[i]
    grown = true
  end
end
if grown then redis.call('HSET', wl_key, f, cmsgpack.pack(names)) end
if ttl ~= '' then expire_thread(ttl) end
return n
