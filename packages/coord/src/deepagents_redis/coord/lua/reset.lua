-- coord_reset: give a failed (dead-lettered) task a new set of attempts.
-- This is the body of core's IdempotentScript: it runs as `body(keys, argv)`, where keys and
-- argv are KEYS/ARGV without the op-id key and the op-id TTL the wrapper puts first, so a
-- call re-sent after its reply was lost (the client's retry) returns the first call's reply
-- instead of refusing the task it has just reset ('task is pending').
--
-- KEYS (data keys; one task's keys: one hash tag):
--   task_key       task record hash
--   events_key     task events stream
--   inbox_key      task inbox stream
--   done_key       task end list (removed: the task has not ended any more)
-- ARGV (data args):
--   event          the event to append
--   events_maxlen  approximate length cap of the events stream
-- Returns {new fence, status, attempts, cancel, ended_ms, record TTL in ms} (what it had
-- before: `coord_unreset` puts it back if the queue refuses the task).
-- Errors (nothing changed, nothing recorded): 'NOTFOUND task'; 'INVALID task is <status>'
-- (only a task in error or timeout restarts).

local task_key, events_key, inbox_key, done_key = keys[1], keys[2], keys[3], keys[4]
local event, events_maxlen = argv[1], argv[2]

local f = redis.call('HMGET', task_key, 'status', 'attempts', 'cancel', 'ended_ms')
local st = f[1]
if not st then return redis.error_reply('NOTFOUND task') end
if st ~= 'error' and st ~= 'timeout' then return redis.error_reply('INVALID task is ' .. st) end
local ttl = redis.call('PTTL', task_key)
redis.call('HSET', task_key, 'status', 'pending', 'attempts', 0, 'cancel', 0, 'lease_until', 0)
local fence = redis.call('HINCRBY', task_key, 'fence', 1)
redis.call('HDEL', task_key, 'result', 'ended_ms')
redis.call('DEL', done_key)
for _, k in ipairs({task_key, events_key, inbox_key}) do redis.call('PERSIST', k) end
redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', event)
return {fence, st, f[2] or '0', f[3] or '0', f[4] or '', ttl}
