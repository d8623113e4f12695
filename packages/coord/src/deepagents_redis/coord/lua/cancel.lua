-- coord_cancel: cancel a task: at once if it waits, through its worker if it runs.
--
-- KEYS (one task's keys: one hash tag):
--   task_key       task record hash
--   events_key     task events stream
--   inbox_key      task inbox stream
--   done_key       task end list (written when a waiting task is cancelled at once)
-- ARGV:
--   cancelled      the 'cancelled' event
--   requested      the 'cancel requested' event
--   events_maxlen  approximate length cap of the events stream
--   done_ttl_ms    TTL in ms of a finished task
-- Returns the status after the call: 'cancelled', 'cancelling' or the terminal status it had.
-- Errors: 'NOTFOUND task'.

local task_key, events_key, inbox_key, done_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cancelled, requested, events_maxlen, done_ttl_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local terminal = {success = true, error = true, cancelled = true, timeout = true}
local st = redis.call('HGET', task_key, 'status')
if not st then return redis.error_reply('NOTFOUND task') end
if terminal[st] then return st end
if st == 'pending' then
  local _t = redis.call('TIME')
  local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
  redis.call('HSET', task_key, 'status', 'cancelled', 'ended_ms', now)
  redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', cancelled)
  redis.call('DEL', done_key)
  redis.call('RPUSH', done_key, 'cancelled')
  for _, k in ipairs({task_key, events_key, inbox_key, done_key}) do
    redis.call('PEXPIRE', k, done_ttl_ms)
  end
  return 'cancelled'
end
if redis.call('HGET', task_key, 'cancel') ~= '1' then
  redis.call('HSET', task_key, 'cancel', 1)
  redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', requested)
end
return 'cancelling'
