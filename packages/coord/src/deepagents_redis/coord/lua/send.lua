-- coord_send: a follow-up message for a task that has not finished.
--
-- KEYS (one task's keys: one hash tag):
--   task_key       task record hash
--   inbox_key      task inbox stream
--   events_key     task events stream
-- ARGV:
--   message        the message (codec bytes)
--   event          the 'message' event
--   maxlen         approximate length cap of the inbox and events streams
--   strategy       enqueue | interrupt: 'interrupt' on a running task sets the record's
--                  'interrupt' flag, which its worker's heartbeat reads (it stops the current
--                  run and starts the follow-up); a pending task takes it in its first run
-- Returns the inbox entry id.
-- Errors (nothing written): 'NOTFOUND task'; 'INVALID task is <status>' (it has finished).

local task_key, inbox_key, events_key = KEYS[1], KEYS[2], KEYS[3]
local message, event, maxlen, strategy = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local terminal = {success = true, error = true, cancelled = true, timeout = true}
local st = redis.call('HGET', task_key, 'status')
if not st then return redis.error_reply('NOTFOUND task') end
if terminal[st] then return redis.error_reply('INVALID task is ' .. st) end
local id = redis.call('XADD', inbox_key, 'MAXLEN', '~', maxlen, '*', 'm', message)
redis.call('XADD', events_key, 'MAXLEN', '~', maxlen, '*', 'e', event)
if strategy == 'interrupt' and st == 'running' then
  redis.call('HSET', task_key, 'interrupt', 1)
end
return id
