-- coord_cancel: cancel a task: at once if it waits, through its worker if it runs, and at
-- once if it runs under a lease that ran out (its worker stopped heartbeating: it died, or
-- lost Redis). Without that a dead worker's task stayed 'cancelling' until another worker
-- reclaimed its entry (never, if none serves the agent); now it ends as coord_claim ends it
-- on that reclaim, and the token moves on, so the holder, if it comes back, writes nothing.
--
-- KEYS (one task's keys: one hash tag):
--   task_key       task record hash
--   events_key     task events stream
--   inbox_key      task inbox stream
--   done_key       task end list (written when the task is cancelled at once)
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
local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
local function ended()
  redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', cancelled)
  redis.call('DEL', done_key)
  redis.call('RPUSH', done_key, 'cancelled')
  for _, k in ipairs({task_key, events_key, inbox_key, done_key}) do
    redis.call('PEXPIRE', k, done_ttl_ms)
  end
  return 'cancelled'
end
if st == 'pending' then
  redis.call('HSET', task_key, 'status', 'cancelled', 'ended_ms', now)
  return ended()
end
local f = redis.call('HMGET', task_key, 'lease_until', 'attempts', 'worker', 'history')
if st == 'running' and tonumber(f[1] or '0') <= now then
  -- a live worker renews its lease every heartbeat (a third of it): this one stopped
  local h = cjson.decode(f[4] or '[]')
  h[#h + 1] = {attempt = tonumber(f[2] or '0'), worker = f[3] or '',
    error = 'worker stopped heartbeating', at_ms = now}
  redis.call('HINCRBY', task_key, 'fence', 1)
  redis.call('HSET', task_key, 'status', 'cancelled', 'lease_until', 0, 'ended_ms', now,
    'error', 'cancelled', 'history', cjson.encode(h))
  return ended()
end
if redis.call('HGET', task_key, 'cancel') ~= '1' then
  redis.call('HSET', task_key, 'cancel', 1)
  redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', requested)
end
return 'cancelling'
