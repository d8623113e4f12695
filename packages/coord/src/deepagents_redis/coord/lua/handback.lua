-- coord_handback: a stopping worker gives a running task back (the attempt does not count).
-- Needs fence.lua before it.
--
-- KEYS (one task's keys: one hash tag):
--   task_key       task record hash
--   events_key     task events stream
--   log_key        optional: the namespace's event log, on a single server only (another
--                  slot: a Cluster worker leaves it out and its log writer adds the line)
-- ARGV:
--   fence          the fencing token of the caller's claim
--   event          the event to append
--   events_maxlen  approximate length cap of the events stream
--   log_maxlen     with log_key: approximate length cap of the log
--   task_id        with log_key: the task id (the log line's 't' field)
-- Returns 1.
-- Errors: 'FENCED <current token>' (not the holder: nothing written).

local task_key, events_key = KEYS[1], KEYS[2]
local fence, event, events_maxlen = ARGV[1], ARGV[2], ARGV[3]
local log_key, log_maxlen, task_id = KEYS[3], ARGV[4], ARGV[5]

local f, fenced = holder(task_key, fence)
if not f then return fenced end
redis.call('HSET', task_key, 'status', 'pending', 'lease_until', 0, 'worker', '')
redis.call('HINCRBY', task_key, 'attempts', -1)
redis.call('HINCRBY', task_key, 'fence', 1)
redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', event)
if log_key then  -- the stream's own event bytes, in order with the task's other lines
  redis.call('XADD', log_key, 'MAXLEN', '~', log_maxlen, '*', 'e', event, 't', task_id)
end
return 1
