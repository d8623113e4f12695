-- coord_create: create a task record once (idempotent by construction).
--
-- KEYS (one task's keys: one hash tag):
--   task_key       task record hash
--   events_key     task events stream
--   inbox_key      task inbox stream (its TTL follows the record's while the task is new)
-- ARGV:
--   agent          the agent that runs the task
--   input          the input (codec bytes)
--   digest         digest of agent + input
--   max_attempts   most attempts
--   event          the 'submitted' event
--   events_maxlen  approximate length cap of the events stream
--   timeout_s      run timeout in seconds ('' = none)
--   trace          trace context (JSON, '' = none)
--   pending_ttl_ms TTL in ms of a new record and its events until the submit's enqueue
--                  removes it (keep.lua): longer than the submit may take. A record whose
--                  enqueue never happens (failed for good, refused, the submitter died
--                  between the two calls on a Cluster) expires instead of staying pending on
--                  no queue for good. A repeat finding a record that still has this TTL
--                  makes it at least this long again (its own enqueue follows).
-- Returns {created 1|0, status, same digest 1|0, id of the 'submitted' event ('' when not
-- created)}. A repeat (same digest) that finds the task pending marks it 'adopted'.
-- Errors: none of its own.

local task_key, events_key, inbox_key = KEYS[1], KEYS[2], KEYS[3]
local agent, input, digest, max_attempts = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local event, events_maxlen, timeout_s, trace = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local pending_ttl_ms = ARGV[9]

local stored = redis.call('HGET', task_key, 'digest')
if stored then
  local status = redis.call('HGET', task_key, 'status')
  if stored == digest and status == 'pending' then
    -- this submit may queue the task now: the submit that created it must not remove it
    -- any more when its own wait for room runs out (coord_abandon)
    redis.call('HSET', task_key, 'adopted', 1)
    if redis.call('PTTL', task_key) > 0 then
      -- not queued yet (or its enqueue not confirmed): this submit's enqueue may follow
      -- only now, so the record must outlive this submit too (GT: never shortened)
      for _, k in ipairs({task_key, events_key, inbox_key}) do
        redis.call('PEXPIRE', k, pending_ttl_ms, 'GT')
      end
    end
  end
  return {0, status, stored == digest and 1 or 0, ''}
end
local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
redis.call('HSET', task_key, 'status', 'pending', 'agent', agent, 'input', input,
  'digest', digest, 'attempts', 0, 'max_attempts', max_attempts, 'fence', 0, 'cancel', 0,
  'created_ms', now, 'timeout_s', timeout_s, 'history', '[]', 'lease_until', 0, 'trace', trace)
local event_id = redis.call('XADD', events_key, 'MAXLEN', '~', events_maxlen, '*', 'e', event)
redis.call('PEXPIRE', task_key, pending_ttl_ms)
redis.call('PEXPIRE', events_key, pending_ttl_ms)
return {1, 'pending', 1, event_id}
