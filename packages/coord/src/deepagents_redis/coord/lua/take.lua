-- coord_take: the running task's worker takes the follow-ups sent since `after` (its inbox
-- cursor) and clears the 'interrupt' flag they may have set; with restart, it also starts
-- a new run of the task: a new fencing token, so the interrupted run can write nothing more
-- (its progress, its result), and a 'follow-up' event. Needs fence.lua before it.
--
-- KEYS (one task's keys: one hash tag):
--   task_key       task record hash
--   inbox_key      task inbox stream
--   events_key     task events stream
--   log_key        optional: the namespace's event log, on a single server only (another
--                  slot: a Cluster worker leaves it out and its log writer adds the line)
-- ARGV:
--   fence          the fencing token of the caller's run
--   after          inbox cursor: entries after this id ('0-0': all)
--   restart        '1' to start a new run (new token), '0' to only take
--   event          the 'follow-up' event (with restart)
--   events_maxlen  approximate length cap of the events stream
--   log_maxlen     with log_key: approximate length cap of the log
--   task_id        with log_key: the task id (the log line's 't' field)
-- Returns {fence of the run from now on, id 1, message 1, id 2, message 2, ...}.
-- Idempotent by construction: a re-sent restart (its reply was lost) finds its own new token
-- ('restarted' = the caller's) and takes the same entries again without a second token.
-- Errors: 'FENCED <current token>' (not the holder: nothing written).

local task_key, inbox_key, events_key = KEYS[1], KEYS[2], KEYS[3]
local fence, after, restart, event, events_maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local log_key, log_maxlen, task_id = KEYS[4], ARGV[6], ARGV[7]

local f = redis.call('HMGET', task_key, 'status', 'fence', 'restarted')
local token = f[2]
if restart == '1' and f[1] == 'running' and f[3] == fence
    and tonumber(f[2] or '0') == tonumber(fence) + 1 then
  restart = 'done'  -- this call's earlier run: the token is already ours
else
  local held, fenced = holder(task_key, fence)
  if not held then return fenced end
end
local start = '-'
if after ~= '0-0' then start = '(' .. after end
local rows = redis.call('XRANGE', inbox_key, start, '+')
redis.call('HSET', task_key, 'interrupt', 0)
if restart == '1' then
  token = redis.call('HINCRBY', task_key, 'fence', 1)
  redis.call('HSET', task_key, 'restarted', fence)
  redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', event)
  if log_key then  -- the stream's own event bytes, in order with the task's other lines
    redis.call('XADD', log_key, 'MAXLEN', '~', log_maxlen, '*', 'e', event, 't', task_id)
  end
end
local out = {tonumber(token)}
for _, row in ipairs(rows) do
  out[#out + 1] = row[1]
  out[#out + 1] = row[2][2]
end
return out
