-- coord_enqueue: put a task id on its agent's queue once, if the backlog has room. Needs
-- keep.lua before it.
--
-- KEYS (one agent's queue keys: one hash tag):
--   queue_key      queue stream
--   delayed_key    delayed retries zset
--   mark_key       enqueue mark: the entry id this call queued the task as (once per mark)
--   index_key      the queue's index of queued tasks (zset: task id -> ms of its entry), so
--                  the worker's sweep finds a task whose entry is gone (its stream deleted)
--   latest_key     only when exactly five keys are given: the task's current enqueue mark
--                  (the one a cancel reads), for an operator's retry, which queues the task
--                  again under a mark of its own; otherwise (a submit) mark_key itself
--   task_key       optional (exactly seven keys), on a single server only (another slot):
--   events_key     the task's record, events and inbox; once the task is queued (now or
--   inbox_key      before) the TTL its create gave it is removed in this call (keep.lua).
--                  On a Cluster the submit calls coord_confirm after this script instead.
-- ARGV:
--   task_id        the task id
--   max_backlog    most entries queued and delayed together
--   mark_ttl_ms    TTL in ms of an operator retry's own mark (the task's mark gets none
--                  here: see below)
-- Returns {1, entry id} (added now, or by an earlier call with the same mark) or
-- {0, backlog, limit} (full: nothing added, nothing recorded, so a later call may add it).
-- Errors: none of its own.

local queue_key, delayed_key, mark_key, index_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local task_id, max_backlog, mark_ttl_ms = ARGV[1], ARGV[2], ARGV[3]
local fifth, events_key, inbox_key = KEYS[5], KEYS[6], KEYS[7]
local latest_key, task_key = mark_key, nil
if events_key then task_key = fifth elseif fifth then latest_key = fifth end

-- the ms part of an entry id: its score in the index (at most the entry's own time)
local function entry_ms(id) return tonumber(string.match(id, '^(%d+)')) end

local prev = redis.call('GET', mark_key)
-- the entry the task's own mark names now: the new entry must have another id
local named = latest_key == mark_key and prev or redis.call('GET', latest_key)
if prev and latest_key == mark_key and #redis.call('XRANGE', queue_key, prev, prev) == 0
    and not redis.call('ZSCORE', delayed_key, task_id) then
  -- A submit's mark that names no entry while the task is not delayed either is a mark of
  -- the task's earlier life: it gets its TTL when the task leaves the queue, after the
  -- record got its own (the ack follows the finish; on a Cluster, or after a reclaim, by
  -- seconds), so a repeat submit of the key between the two expiries made a new record
  -- and read it as queued already: pending on no queue, for good. A mark the task still
  -- stands behind names its entry (queued, read or running) or the task is in the delayed
  -- set (a retry whose entry went away).
  prev = false
end
if prev then
  -- a task queued before the index was kept gets its place in it (NX: never moved later)
  redis.call('ZADD', index_key, 'NX', entry_ms(prev), task_id)
  if task_key then keep(task_key, events_key, inbox_key) end
  return {1, prev}
end
local backlog = redis.call('XLEN', queue_key) + redis.call('ZCARD', delayed_key)
if backlog >= tonumber(max_backlog) then return {0, backlog, tonumber(max_backlog)} end
local id = queue_entry(queue_key, task_id, named)
-- The task's own mark has no TTL while the task may wait on the queue, however long: the
-- end of its entry (coord_ack, coord_dequeue) gives it one. With result_ttl_seconds as its
-- TTL from here, a task queued longer lost it: a cancel left its entry in the backlog and a
-- repeat submit queued it twice. An operator retry's own mark is a record of this call only.
if latest_key ~= mark_key then
  redis.call('SET', mark_key, id, 'PX', mark_ttl_ms)
end
redis.call('SET', latest_key, id)
redis.call('ZADD', index_key, entry_ms(id), task_id)
if task_key then keep(task_key, events_key, inbox_key) end
return {1, id}
