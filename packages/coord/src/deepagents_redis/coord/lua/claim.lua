-- coord_claim: a worker takes a delivered task: new fencing token, lease, attempt.
--
-- KEYS (one task's keys: one hash tag):
--   task_key       task record hash
--   events_key     task events stream
--   inbox_key      task inbox stream (read: how many follow-ups wait)
--   done_key       task end list (written when out of attempts ends the task)
--   log_key        optional: the namespace's event log, on a single server only (another
--                  slot): the 'started' or 'failed' line is written here too, in this call
-- ARGV:
--   worker         the worker id
--   lease_ms       lease length in ms
--   started        the 'started' event
--   events_maxlen  approximate length cap of the events stream
--   failed         the 'failed' event (out of attempts; '' asks for {'exhausted?'} first)
--   done_ttl_ms    TTL in ms of a finished task
--   log_maxlen     with log_key: approximate length cap of the log
--   task_id        with log_key: the task id (the log line's 't' field)
--   cancelled      optional (ARGV 7 and 8 are then given, used with log_key only): the
--                  'cancelled' event (a cancel was requested; none or '' asks for
--                  {'cancelled?'})
--   claim_op       optional (ARGV 7 to 9 are then given): this call's own token, kept in the
--                  record by the run it starts. A call re-sent after its reply was lost (the
--                  client's retry) finds the task running under its own worker and token and
--                  answers the same 'run' again (lease renewed, nothing else written):
--                  without it, it read as 'busy', nobody ran the task until the lease ran
--                  out, and the lost attempt was charged to a dead worker.
--   agent          optional (ARGV 7 to 10 are then given): the agent whose queue the entry
--                  came from. A task of another agent (an entry someone else appended) is
--                  not claimed: {'foreign', its agent}, nothing written.
--   entry_id       optional (ARGV 7 to 11 are then given): the queue entry claimed, kept in
--                  the record ('entry') by the run it starts. The end of a run is two calls
--                  on a Cluster (the finish on the task's slot, the ack on the queue's): an
--                  entry whose attempt failed, or was handed back, and was re-delivered
--                  before its ack (its worker died between the two, or another worker took
--                  it over just then) ran again at once, without the retry's backoff; with
--                  the ack landing too, the task was queued twice. Such an entry is not
--                  run: {'retrying', ms to wait} / {'requeue', handed-back token}, nothing
--                  written; the worker sends that ack itself.
-- Returns, packed by cmsgpack as one bulk string (a 9-item array reply costs the asyncio
-- client ~30 us more to parse than one string and a C unpack):
-- {'run', fence, attempt, input, timeout_s, agent, max attempts, trace context,
-- follow-ups in the inbox}
-- | {'busy'} (another live worker holds it) | {'done', status} (finished: ack the entry)
-- | {'gone'} (no record: expired)
-- | {'retrying', ms} (this entry's attempt failed and its retry is scheduled in ms: ack it
--   as 'retry' with that delay) | {'requeue', token} (this entry's run was handed back
--   under that token: ack it as 'requeue')
-- | {'foreign', agent} (a task of another agent: not claimed, nothing written)
-- | {'malformed', why} (the record is not one this package wrote: nothing written)
-- | {'exhausted?', attempts} (out of attempts and no 'failed' event given: nothing written)
-- | {'exhausted', attempts, history} (out of attempts: now status error; dead-letter it)
-- | {'cancelled?'} (a cancel was requested and no 'cancelled' event given: nothing written)
-- | {'cancelled'} (a cancel was requested while an earlier attempt ran, which ended without
--   seeing it: failed to be retried, handed back, or its worker died; now status cancelled,
--   and no other attempt runs; ack the entry).
-- Errors: none of its own.

local task_key, events_key, inbox_key, done_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local worker, lease_ms, started, events_maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local failed, done_ttl_ms = ARGV[5], ARGV[6]
local log_key, log_maxlen, task_id = KEYS[5], ARGV[7], ARGV[8]
local cancelled, claim_op, queue_agent = ARGV[9] or '', ARGV[10] or '', ARGV[11] or ''
local entry_id = ARGV[12] or ''

-- The log's line is the task stream's own event bytes (encoded for the task's events key)
-- and the task id, so a reader checks it against that key.
local function log_line(event)
  if log_key then
    redis.call('XADD', log_key, 'MAXLEN', '~', log_maxlen, '*', 'e', event, 't', task_id)
  end
end

local pack = cmsgpack.pack
local terminal = {success = true, error = true, cancelled = true, timeout = true}
local f = redis.pcall('HMGET', task_key, 'status', 'lease_until', 'attempts', 'max_attempts',
  'worker', 'history', 'cancel', 'claim_op', 'fence', 'agent', 'timeout_s', 'finished',
  'entry', 'handed_back', 'retry_at')
if f.err then return pack({'malformed', f.err}) end  -- not a hash: not our record
local st = f[1]
if not st then return pack({'gone'}) end
if terminal[st] then return pack({'done', st}) end
if queue_agent ~= '' and f[10] ~= queue_agent then return pack({'foreign', f[10] or ''}) end
-- a record this package did not write (numbers it needs that are none): the comparisons
-- below raised a Lua error, so the entry failed at every delivery and was never dead-lettered
if not tonumber(f[3]) or not tonumber(f[4]) or not tonumber(f[2] or '0')
    or not tonumber(f[9] or '0') then
  return pack({'malformed', 'task record fields are not numbers'})
end
-- nor a history this claim (a lost attempt), the finish or a cancel can add to: their
-- cjson.decode raised, so the entry failed at every delivery and was never dead-lettered
if f[6] then
  local ok, h = pcall(cjson.decode, f[6])
  if not ok or type(h) ~= 'table' then
    return pack({'malformed', 'task record history is not a JSON list'})
  end
end
-- its run timeout: '' (none) or positive seconds. Another value failed the worker's run
-- set-up after this claim had marked the task running: no run, no heartbeat, and the task
-- ran into its lease at every delivery until out of attempts, blamed on a dead worker
-- (the forms Python's float() reads: the worker parses it so; 'inf' is no limit)
local limit_s = f[11] or ''
if limit_s ~= '' then
  local shaped = limit_s == 'inf' or limit_s:match('^%d+$') or limit_s:match('^%d+%.%d+$')
    or limit_s:match('^%d+%.?%d*[eE][-+]?%d+$')
  local n = tonumber(limit_s)
  if not shaped or not (limit_s == 'inf' or (n and n > 0)) then
    return pack({'malformed', 'task record timeout_s is not positive seconds'})
  end
end
local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
if st == 'running' and claim_op ~= '' and f[8] == claim_op and f[5] == worker then
  -- this very call ran before (its reply was lost): the run it started, once more
  redis.call('HSET', task_key, 'lease_until', now + tonumber(lease_ms))
  local again = redis.call('HMGET', task_key, 'input', 'timeout_s', 'agent', 'trace')
  return pack({'run', tonumber(f[9]), tonumber(f[3]), again[1], again[2] or '', again[3],
    tonumber(f[4]), again[4] or '', redis.call('XLEN', inbox_key)})
end
if st == 'running' and tonumber(f[2] or '0') > now then return pack({'busy'}) end
local attempts = tonumber(f[3])
local cancel = f[7] == '1'
if st == 'pending' and not cancel and entry_id ~= '' and f[13] == entry_id then
  -- the very entry whose run ended in a retry or a hand-back, and no claim since (a claim
  -- sets 'entry', a claim or reset moves the token on): its ack did not land yet
  if f[12] == (f[9] or '0') .. ':retry' then
    return pack({'retrying', math.max(0, (tonumber(f[15] or '0') or 0) - now)})
  end
  local back = tonumber(f[14] or '')
  if back and back + 1 == tonumber(f[9]) then return pack({'requeue', back}) end
end
local exhausted = attempts >= tonumber(f[4])
-- the ending events are built only for these rare paths: without one, ask for it (no writes)
if cancel and cancelled == '' then return pack({'cancelled?'}) end
if exhausted and not cancel and failed == '' then return pack({'exhausted?', attempts}) end
if st == 'running' then
  -- the previous holder stopped heartbeating: that attempt is lost, and recorded
  local h = cjson.decode(f[6] or '[]')
  h[#h + 1] = {attempt = attempts, worker = f[5] or '', error = 'worker stopped heartbeating',
    at_ms = now}
  redis.call('HSET', task_key, 'history', cjson.encode(h))
end
if cancel then
  redis.call('HSET', task_key, 'status', 'cancelled', 'lease_until', 0, 'ended_ms', now,
    'error', 'cancelled')
  redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', cancelled)
  log_line(cancelled)
  redis.call('DEL', done_key)
  redis.call('RPUSH', done_key, 'cancelled')
  for _, k in ipairs({task_key, events_key, inbox_key, done_key}) do
    redis.call('PEXPIRE', k, done_ttl_ms)
  end
  return pack({'cancelled'})
end
if exhausted then
  redis.call('HSET', task_key, 'status', 'error', 'lease_until', 0, 'ended_ms', now,
    'error', 'out of attempts: ' .. attempts .. ' of ' .. f[4])
  redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', failed)
  log_line(failed)
  redis.call('DEL', done_key)
  redis.call('RPUSH', done_key, 'error')
  for _, k in ipairs({task_key, events_key, done_key}) do redis.call('PEXPIRE', k, done_ttl_ms) end
  return pack({'exhausted', attempts, redis.call('HGET', task_key, 'history') or '[]'})
end
attempts = redis.call('HINCRBY', task_key, 'attempts', 1)
local fence = redis.call('HINCRBY', task_key, 'fence', 1)
-- a task whose submit died between its enqueue and the call that confirms it (coord_confirm)
-- still has its create's TTL: a running task must not expire under its worker
for _, k in ipairs({task_key, events_key, inbox_key}) do redis.call('PERSIST', k) end
redis.call('HSET', task_key, 'status', 'running', 'worker', worker,
  'lease_until', now + tonumber(lease_ms), 'started_ms', now, 'interrupt', 0,
  'claim_op', claim_op, 'entry', entry_id)
redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', started)
log_line(started)
local rest = redis.call('HMGET', task_key, 'input', 'timeout_s', 'agent', 'trace')
return pack({'run', fence, attempts, rest[1], rest[2] or '', rest[3], tonumber(f[4]),
  rest[4] or '', redis.call('XLEN', inbox_key)})
