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
-- Returns 1. A call re-sent after its reply was lost (the client's retry) finds the task
-- pending with 'handed_back' = its token and the token moved on by exactly this call, and
-- answers 1 again, writing nothing: without it the re-send read as FENCED and the worker
-- skipped the requeue, so the task waited on no queue until a reclaim.
-- Errors: 'FENCED <current token>' (not the holder: nothing written).

local task_key, events_key = KEYS[1], KEYS[2]
local fence, event, events_maxlen = ARGV[1], ARGV[2], ARGV[3]
local log_key, log_maxlen, task_id = KEYS[3], ARGV[4], ARGV[5]

local f, fenced, seen = holder(task_key, fence, 'handed_back')
if not f then
  -- every later owner (claim, reset, take) moves the token on again
  if seen[1] == 'pending' and seen[3] == fence and tonumber(seen[2]) == tonumber(fence) + 1 then
    return 1
  end
  return fenced
end
redis.call('HSET', task_key, 'status', 'pending', 'lease_until', 0, 'worker', '',
  'handed_back', fence)
redis.call('HINCRBY', task_key, 'attempts', -1)
redis.call('HINCRBY', task_key, 'fence', 1)
redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', event)
if log_key then  -- the stream's own event bytes, in order with the task's other lines
  redis.call('XADD', log_key, 'MAXLEN', '~', log_maxlen, '*', 'e', event, 't', task_id)
end
return 1
