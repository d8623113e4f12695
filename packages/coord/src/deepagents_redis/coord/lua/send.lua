-- coord_send: a follow-up message for a task that has not finished.
-- This is the body of core's IdempotentScript: it runs as `body(keys, argv)`, where keys and
-- argv are KEYS/ARGV without the op-id key and the op-id TTL the wrapper puts first, so a
-- call re-sent after its reply was lost (the client's retry) appends nothing a second time
-- and returns the first call's entry id.
--
-- KEYS (data keys; one task's keys: one hash tag):
--   task_key       task record hash
--   inbox_key      task inbox stream
--   events_key     task events stream
-- ARGV (data args):
--   message        the message (codec bytes)
--   event          the 'message' event
--   maxlen         approximate length cap of the inbox and events streams
--   strategy       enqueue | interrupt: 'interrupt' on a running task sets the record's
--                  'interrupt' flag, which its worker's heartbeat reads (it stops the current
--                  run and starts the follow-up); a pending task takes it in its first run
-- Returns the inbox entry id.
-- Errors (nothing written, nothing recorded): 'NOTFOUND task'; 'INVALID task is <status>'
-- (it has finished).

local task_key, inbox_key, events_key = keys[1], keys[2], keys[3]
local message, event, maxlen, strategy = argv[1], argv[2], argv[3], argv[4]

local terminal = {success = true, error = true, cancelled = true, timeout = true}
local st = redis.call('HGET', task_key, 'status')
if not st then return redis.error_reply('NOTFOUND task') end
if terminal[st] then return redis.error_reply('INVALID task is ' .. st) end
local id = redis.call('XADD', inbox_key, 'MAXLEN', '~', maxlen, '*', 'm', message)
local ttl = redis.call('PTTL', task_key)
if ttl > 0 then
  -- a new task whose enqueue is not confirmed yet (coord_create's TTL): its inbox goes with
  -- the record should the record expire unqueued (coord_confirm removes both TTLs)
  redis.call('PEXPIRE', inbox_key, ttl)
end
redis.call('XADD', events_key, 'MAXLEN', '~', maxlen, '*', 'e', event)
if strategy == 'interrupt' and st == 'running' then
  redis.call('HSET', task_key, 'interrupt', 1)
end
return id
