-- coord_event: a running task's worker appends a progress event. Needs fence.lua before it.
-- This is the body of core's IdempotentScript: it runs as `body(keys, argv)`, where keys and
-- argv are KEYS/ARGV without the op-id key and the op-id TTL the wrapper puts first, so a
-- call re-sent after its reply was lost (the client's retry) appends nothing a second time
-- and returns the first call's entry id.
--
-- KEYS (data keys; one task's keys: one hash tag):
--   task_key       task record hash
--   events_key     task events stream
-- ARGV (data args):
--   fence          the fencing token of the caller's claim
--   event          the event to append
--   events_maxlen  approximate length cap of the events stream
-- Returns the entry id.
-- Errors (nothing written, nothing recorded): 'FENCED <current token>' (not the holder).

local task_key, events_key = keys[1], keys[2]
local fence, event, events_maxlen = argv[1], argv[2], argv[3]

local f, fenced = holder(task_key, fence)
if not f then return fenced end
return redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', event)
