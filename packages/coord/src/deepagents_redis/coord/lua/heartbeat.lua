-- coord_heartbeat: renew a running task's lease. Needs fence.lua before it.
--
-- KEYS:
--   task_key       task record hash
-- ARGV:
--   fence          the fencing token of the caller's claim
--   lease_ms       lease length in ms, from now
-- Returns 1 if a cancel was requested, else 2 if an interrupting follow-up waits (coord_send
-- with strategy 'interrupt'), else 0.
-- Errors: 'FENCED <current token>' (the lease was lost or the task is not running: nothing
-- written).

local task_key = KEYS[1]
local fence, lease_ms = ARGV[1], ARGV[2]

local f, fenced = holder(task_key, fence, 'cancel', 'interrupt')
if not f then return fenced end
local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
redis.call('HSET', task_key, 'lease_until', now + tonumber(lease_ms))
if f[3] == '1' then return 1 end
if f[4] == '1' then return 2 end
return 0
