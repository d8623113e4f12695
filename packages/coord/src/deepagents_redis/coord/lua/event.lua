-- coord_event: a running task's worker appends a progress event. Needs fence.lua before it.
--
-- KEYS (one task's keys: one hash tag):
--   task_key       task record hash
--   events_key     task events stream
-- ARGV:
--   fence          the fencing token of the caller's claim
--   event          the event to append
--   events_maxlen  approximate length cap of the events stream
-- Returns the entry id.
-- Errors: 'FENCED <current token>' (not the holder: nothing written).

local task_key, events_key = KEYS[1], KEYS[2]
local fence, event, events_maxlen = ARGV[1], ARGV[2], ARGV[3]

local f, fenced = holder(task_key, fence)
if not f then return fenced end
return redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', event)
