-- coord_unreset: put back a task `coord_reset` restarted when its queue refused it (a full
-- backlog), so a refused retry changes nothing: the task ends as it had ended.
-- This is the body of core's IdempotentScript: it runs as `body(keys, argv)`, where keys and
-- argv are KEYS/ARGV without the op-id key and the op-id TTL the wrapper puts first, so a
-- call re-sent after its reply was lost (the client's retry) returns the first call's 1
-- instead of 0 ('moved since'), and the caller still reports the refusal.
--
-- KEYS (data keys; one task's keys: one hash tag):
--   task_key       task record hash
--   events_key     task events stream
--   inbox_key      task inbox stream
--   done_key       task end list (pushed again: the task has ended again)
-- ARGV (data args; what `coord_reset` returned):
--   fence          the fencing token the reset set
--   status         the status it had (error | timeout)
--   attempts       its attempts
--   cancel         its cancel flag
--   ended_ms       when it had ended ('' = unknown)
--   ttl_ms         its record's TTL in ms then (<= 0: none)
--   event          the event to append
--   events_maxlen  approximate length cap of the events stream
-- Returns 1 if put back, 0 if the task moved since the reset (claimed, reset again, gone).
-- Errors: none of its own.

local task_key, events_key, inbox_key, done_key = keys[1], keys[2], keys[3], keys[4]
local fence, status, attempts, cancel = argv[1], argv[2], argv[3], argv[4]
local ended_ms, ttl_ms, event, events_maxlen = argv[5], argv[6], argv[7], argv[8]

local f = redis.call('HMGET', task_key, 'status', 'fence', 'attempts')
if f[1] ~= 'pending' or f[2] ~= fence or f[3] ~= '0' then return 0 end
redis.call('HSET', task_key, 'status', status, 'attempts', attempts, 'cancel', cancel)
if ended_ms ~= '' then redis.call('HSET', task_key, 'ended_ms', ended_ms) end
redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', event)
redis.call('DEL', done_key)
redis.call('RPUSH', done_key, status)
if tonumber(ttl_ms) > 0 then
  for _, k in ipairs({task_key, events_key, inbox_key, done_key}) do
    redis.call('PEXPIRE', k, ttl_ms)
  end
end
return 1
