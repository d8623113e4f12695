-- coord_dequeue: take a task cancelled before it ran off its agent's queue, so it stops
-- counting against the backlog at once (not when a worker with a free slot reads it).
--
-- KEYS (one agent's queue keys: one hash tag):
--   queue_key      queue stream
--   delayed_key    delayed retries zset
--   mark_key       enqueue mark: the entry id the task was queued as
-- ARGV:
--   task_id        the task id (it must have ended: the caller's cancel said so)
--   mark_ttl_ms    TTL in ms the mark gets (it had none while the task was queued)
-- Returns how many entries it removed (an entry a worker has read already is only deleted:
-- its claim finds the task ended and acknowledges it).
-- Errors: none of its own.

local queue_key, delayed_key, mark_key = KEYS[1], KEYS[2], KEYS[3]
local task_id, mark_ttl_ms = ARGV[1], ARGV[2]

local removed = redis.call('ZREM', delayed_key, task_id)
local id = redis.call('GET', mark_key)
if id then
  removed = removed + redis.call('XDEL', queue_key, id)
  redis.call('PEXPIRE', mark_key, mark_ttl_ms)
end
return removed
