-- coord_reset: give a failed (dead-lettered) task a new set of attempts.
--
-- KEYS (one task's keys: one hash tag):
--   task_key       task record hash
--   events_key     task events stream
--   inbox_key      task inbox stream
--   done_key       task end list (removed: the task has not ended any more)
-- ARGV:
--   event          the event to append
--   events_maxlen  approximate length cap of the events stream
-- Returns {new fence, status, attempts, cancel, ended_ms, record TTL in ms} (what it had
-- before: `coord_unreset` puts it back if the queue refuses the task).
-- Errors (nothing changed): 'NOTFOUND task'; 'INVALID task is <status>' (only a task in
-- error or timeout restarts).

local task_key, events_key, inbox_key, done_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local event, events_maxlen = ARGV[1], ARGV[2]

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
