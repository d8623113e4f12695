-- coord_finish: end an attempt, once, by the worker holding the lease. Needs fence.lua
-- before it.
--
-- KEYS (one task's keys: one hash tag):
--   task_key       task record hash
--   events_key     task events stream
--   inbox_key      task inbox stream
--   done_key       task end list (one item, the status, once the task ended: waiters block
--                  on it)
--   log_key        optional: the namespace's event log, on a single server only (another
--                  slot): the event is written here too, in this call
-- ARGV:
--   fence          the fencing token of the caller's claim
--   outcome        success | error | cancelled | timeout | retry
--   result         the result (codec bytes, '' = none)
--   error_text     the error text ('' = none)
--   event          the event to append
--   events_maxlen  approximate length cap of the events stream
--   done_ttl_ms    TTL in ms of a finished task
--   history_entry  an entry for the task's history (JSON, '' = none)
--   log_maxlen     with log_key: approximate length cap of the log
--   task_id        with log_key: the task id (the log line's 't' field)
--   retry_ms       optional (ARGV 9 and 10 are then given): with 'retry', the delay before
--                  the next attempt; kept in the record as 'retry_at' (server ms), for a claim
--                  of the same entry that comes before the worker's ack (see claim.lua)
-- Returns the outcome. A call re-sent after its reply was lost (the client's retry) finds
-- the record still at its token with 'finished' = '<fence>:<outcome>', the mark this script
-- leaves, and answers the outcome again, writing nothing: without it the re-send read as
-- FENCED, the worker logged a takeover, and on Cluster the ack after it was skipped (a retry
-- then ran again only at the next reclaim, without its backoff).
-- Errors: 'FENCED <current token>' (not the holder: nothing written).

local task_key, events_key, inbox_key, done_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local fence, outcome, result, error_text = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local event, events_maxlen, done_ttl_ms, history_entry = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local log_key, log_maxlen, task_id = KEYS[5], ARGV[9], ARGV[10]
local retry_ms = tonumber(ARGV[11] or '0') or 0

local done_mark = fence .. ':' .. outcome
local f, fenced, seen = holder(task_key, fence, 'history', 'finished')
if not f then
  -- every later owner (claim, hand-back, reset, take) moves the token on, so the mark with
  -- the token still in place means this very call ended the attempt
  if seen[2] == fence and seen[4] == done_mark then return outcome end
  return fenced
end
local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
if history_entry ~= '' then
  local h = cjson.decode(f[3] or '[]')
  h[#h + 1] = cjson.decode(history_entry)
  redis.call('HSET', task_key, 'history', cjson.encode(h))
end
if error_text ~= '' then redis.call('HSET', task_key, 'error', error_text) end
if outcome == 'retry' then
  redis.call('HSET', task_key, 'status', 'pending', 'lease_until', 0, 'worker', '',
    'finished', done_mark, 'retry_at', now + retry_ms)
else
  redis.call('HSET', task_key, 'status', outcome, 'lease_until', 0, 'ended_ms', now,
    'finished', done_mark)
  if result ~= '' then redis.call('HSET', task_key, 'result', result) end
end
redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', event)
if log_key then
  -- the task stream's own event bytes and the task id: a reader checks them against the
  -- task's events key
  redis.call('XADD', log_key, 'MAXLEN', '~', log_maxlen, '*', 'e', event, 't', task_id)
end
if outcome ~= 'retry' then
  redis.call('DEL', done_key)
  redis.call('RPUSH', done_key, outcome)
  for _, k in ipairs({task_key, events_key, inbox_key, done_key}) do
    redis.call('PEXPIRE', k, done_ttl_ms)
  end
end
return outcome
