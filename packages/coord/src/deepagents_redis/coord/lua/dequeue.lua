-- coord_dequeue: take a task cancelled before it ran off its agent's queue, so it stops
-- counting against the backlog at once (not when a worker with a free slot reads it).
--
-- KEYS (one agent's queue keys: one hash tag):
--   queue_key      queue stream
--   delayed_key    delayed retries zset
--   mark_key       enqueue mark: the entry id the task was queued as
--   index_key      optional: the queue's index of queued tasks (see enqueue.lua): the task
--                  leaves it with its mark's TTL. Left there, it was tidied only by a sweep
--                  that listed it, i.e. once every entry older than it was gone: behind one
--                  long run (or an entry nobody acknowledges) the cancels piled up in it
-- ARGV:
--   task_id        the task id (it must have ended: the caller's cancel said so)
--   mark_ttl_ms    TTL in ms the mark gets (it had none while the task was queued)
-- Returns how many entries it removed (an entry a worker has read already is only deleted:
-- its claim finds the task ended and acknowledges it).
-- Errors: none of its own.

local queue_key, delayed_key, mark_key, index_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local task_id, mark_ttl_ms = ARGV[1], ARGV[2]

local removed = redis.call('ZREM', delayed_key, task_id)
local id = redis.call('GET', mark_key)
if id then
  removed = removed + redis.call('XDEL', queue_key, id)
  redis.call('PEXPIRE', mark_key, mark_ttl_ms)
end
if index_key then redis.call('ZREM', index_key, task_id) end
return removed
