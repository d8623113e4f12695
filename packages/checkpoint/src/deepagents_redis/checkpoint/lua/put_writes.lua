-- ckpt_put_writes: store a task's pending writes for one checkpoint, once per (task, index).
--
-- KEYS:
--   writes_key   the checkpoint's writes hash (fields '<idx><TAB><task id>')
-- ARGV:
--   ttl          TTL in ms ('' = none)
--   ARGV[2..]    triples: field, value, '1' to replace (special writes: error, interrupt...
--                are replaced) or '0' to keep a write already stored (LangGraph's rule)
-- Returns the number of fields written.
-- Errors: OOM from core's deny_oom probe when the server is full (before any write).

local writes_key = KEYS[1]
local ttl = ARGV[1]
-- a full server refuses this script here, before it writes (core's deny_oom)
redis.call('SETRANGE', writes_key .. ':oom-probe', 0, '')
local n = 0
for i = 2, #ARGV, 3 do
  if ARGV[i + 2] == '1' then
    redis.call('HSET', writes_key, ARGV[i], ARGV[i + 1])
    n = n + 1
  else
    n = n + redis.call('HSETNX', writes_key, ARGV[i], ARGV[i + 1])
  end
end
if ttl ~= '' then redis.call('PEXPIRE', writes_key, ttl) end
return n
