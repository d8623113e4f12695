-- coord_ack: the queue-side end of a run: acknowledge and delete the entry, and reschedule,
-- re-queue or dead-letter the task as asked (all in one slot, so a crash never leaves half
-- of it). This is the body of core's IdempotentScript: it runs as `body(keys, argv)`, where
-- keys and argv are KEYS/ARGV without the op-id key and the op-id TTL the wrapper puts
-- first. coord_ack_plain runs the same text with keys, argv = KEYS, ARGV.
--
-- KEYS (data keys; one agent's queue keys, one hash tag):
--   queue_key      queue stream
--   delayed_key    delayed retries zset
--   dead_key       dead letters stream
--   mark_key       the task's enqueue mark (set to the new entry id by 'requeue'; given a
--                  TTL by 'ack' and 'dead' when it names the entry acknowledged: the task
--                  left the queue; 'retry' only reads it; delayed_key stands in for none:
--                  an entry that names no task)
--   index_key      optional: the queue's index of queued tasks (see enqueue.lua): the task
--                  leaves it when its mark gets a TTL, moves to the new entry with
--                  'requeue', and to its due time with a scheduled 'retry'
-- ARGV (data args):
--   entry_id       the queue entry to acknowledge and delete ('' = none); with 'retry',
--                  the retry is scheduled only if this call acknowledged it (it was pending),
--                  or as below when it is on no pending list
--   mode           ack | retry | dead | requeue
--   task_id        the task id
--   delay_ms       retry delay in ms
--   dead_letter    the dead letter (codec bytes)
--   group          the consumer group
--   dead_maxlen    approximate length cap of the dead letters stream
--   mark_ttl_ms    TTL in ms the enqueue mark gets once its task has left the queue
-- Returns 1 when this call took the entry off the pending list (or named none), else 0.
--   'retry', 'dead' and 'requeue' schedule their retry / add their dead letter / new entry
--   when this call took the entry off, or when the entry is on no pending list yet the
--   task's mark still names it with no TTL and ('retry') the task is not in the delayed set
--   (nothing ended, re-queued or rescheduled the task: its stream or group was deleted
--   under it, then made again); they return 1 then too. 0 means nothing was done: another
--   call ended the entry first (the run's worker and a worker the entry was re-delivered to
--   may both send it).
-- Errors: none of its own.

local queue_key, delayed_key, dead_key, mark_key = keys[1], keys[2], keys[3], keys[4]
local index_key = keys[5]
local entry_id, mode, task_id, delay_ms = argv[1], argv[2], argv[3], argv[4]
local dead_letter, group, dead_maxlen, mark_ttl_ms = argv[5], argv[6], argv[7], argv[8]

local acked = 1
if entry_id ~= '' then
  -- the task is still queued as this entry: no call ended it (the mark gets a TTL),
  -- queued it anew (the mark moves) or scheduled its retry (the task is in the delayed set
  -- until a promote queues it anew); read before this call gives the mark its TTL
  local queued = (mode == 'dead' or mode == 'requeue' or mode == 'retry')
    and mark_key ~= delayed_key
    and redis.call('GET', mark_key) == entry_id and redis.call('PTTL', mark_key) == -1
    and (mode ~= 'retry' or not redis.call('ZSCORE', delayed_key, task_id))
  acked = redis.call('XACK', queue_key, group, entry_id)
  if acked == 0 and queued then acked = 1 end
  redis.call('XDEL', queue_key, entry_id)
  if (mode == 'ack' or mode == 'dead') and mark_key ~= delayed_key
      and redis.call('GET', mark_key) == entry_id then
    -- the task has left the queue: its mark expires with the task (see enqueue.lua)
    redis.call('PEXPIRE', mark_key, mark_ttl_ms)
    if index_key then redis.call('ZREM', index_key, task_id) end
  end
end
if mode == 'retry' and acked == 1 then
  -- only the call that takes the entry off the pending list schedules the retry: the
  -- failed attempt's worker and a worker the entry was re-delivered to (the claim's
  -- 'retrying') may both send it, and the second one, landing after the retry was promoted
  -- back to the queue, queued the task twice
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', delayed_key, now + tonumber(delay_ms), task_id)
  -- its next entry is made no earlier (the sweep passes it by until then)
  if index_key and mark_key ~= delayed_key then
    redis.call('ZADD', index_key, 'XX', now + tonumber(delay_ms), task_id)
  end
elseif mode == 'dead' and acked == 1 then
  -- once: the run's worker dead-letters after its finish (a call of its own), and a worker
  -- the entry was re-delivered to between the two reads the task as failed and does it too
  redis.call('XADD', dead_key, 'MAXLEN', '~', dead_maxlen, '*', 'e', dead_letter)
elseif mode == 'requeue' and acked == 1 then
  -- the mark follows the entry, so a cancel before a worker reads it can take it off
  local named = mark_key ~= delayed_key and redis.call('GET', mark_key)
  local id = queue_entry(queue_key, task_id, named)
  redis.call('SET', mark_key, id)  -- no TTL while queued: see enqueue.lua
  if index_key and mark_key ~= delayed_key then
    redis.call('ZADD', index_key, tonumber(string.match(id, '^(%d+)')), task_id)
  end
end
return acked
