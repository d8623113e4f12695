-- coord_handback: a stopping worker gives a running task back (the attempt does not count).
-- Needs fence.lua before it.
--
-- KEYS (one task's keys: one hash tag):
--   task_key       task record hash
--   events_key     task events stream
-- ARGV:
--   fence          the fencing token of the caller's claim
--   event          the event to append
--   events_maxlen  approximate length cap of the events stream
-- Returns 1.
-- Errors: 'FENCED <current token>' (not the holder: nothing written).

local task_key, events_key = KEYS[1], KEYS[2]
local fence, event, events_maxlen = ARGV[1], ARGV[2], ARGV[3]

local f, fenced = holder(task_key, fence)
if not f then return fenced end
redis.call('HSET', task_key, 'status', 'pending', 'lease_until', 0, 'worker', '')
redis.call('HINCRBY', task_key, 'attempts', -1)
redis.call('HINCRBY', task_key, 'fence', 1)
redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', event)
return 1
