-- coord_sweep: queue again, once, each listed task whose queue entry is gone while its
-- enqueue mark still names it (the second step of a worker's sweep, after lost.lua).
--
-- A task's entry leaves the stream only with a call that also moves its mark on (a
-- re-queue, a promote), gives the mark a TTL (the task left the queue: ack, dead letter,
-- dequeue) or puts the task in the delayed set (a retry). An entry gone with none of these,
-- and on no pending list of the group, went with its stream (deleted, then made again with
-- its group): the pending lists went too, so no XAUTOCLAIM finds the task, and it stayed
-- 'running' (its worker died) or
-- 'pending' (its worker died between the finish and the ack of a retry, a hand-back or a
-- dead letter; or it was queued and never read) for good. The new entry goes through the
-- claim like any re-delivered one: it runs the task again only once the lease in the task
-- record expired (never under a live worker: 'busy', and the entry is looked at again at
-- each reclaim), records the lost attempt and moves the fencing token on, dead-letters a
-- task out of attempts, writes the missing dead letter of one that failed for good, and
-- acknowledges one that ended.
--
-- KEYS (one agent's queue keys: one hash tag):
--   queue_key      queue stream
--   delayed_key    delayed retries zset
--   index_key      the queue's index of queued tasks (see enqueue.lua)
--   mark keys      the enqueue mark of each of the first n_marked members, in ARGV's order
-- ARGV:
--   n_marked       how many of the members come with a mark key (the well-formed task ids)
--   group          the queue's consumer group: an entry still on its pending list is not
--                  lost, even when the stream no longer holds it (trimmed by XTRIM, which
--                  queues must not be, or XDEL): its worker's ack still acknowledges it and
--                  schedules its retry or writes its dead letter, so a re-queue made
--                  meanwhile queued the task twice (a second dead letter; a retry due later
--                  while the new entry ran it at once). Once off that list (a reclaim drops
--                  a deleted entry from it, Redis 7+) the ack finds nothing to take off, and
--                  the mark decides, as after a deleted stream.
--   members        the members lost.lua listed; the ones past n_marked (no task id: not
--                  ours) are dropped from the index
-- Returns how many tasks it queued again. Each check and its re-queue are one step of this
-- call, and the re-queue moves the mark, so of sweeps racing (several workers), or this
-- call re-sent after its reply was lost (core's driver), only the first queues a task.
-- Tidies as it goes: a task whose mark has a TTL or is gone leaves the index; one whose
-- entry stands or that is delayed is scored at its entry's or its due time, so it is not
-- listed again while that holds.
-- Errors: none of its own.

local queue_key, delayed_key, index_key = KEYS[1], KEYS[2], KEYS[3]
local n_marked, group = tonumber(ARGV[1]), ARGV[2]

local function entry_ms(id) return tonumber(string.match(id, '^(%d+)')) end

-- whether `id` is on the group's pending list (no group or no stream: on none)
local function pending(id)
  local p = redis.pcall('XPENDING', queue_key, group, id, id, 1)
  return type(p) == 'table' and not p.err and #p > 0
end

local queued = 0
for i = 3, #ARGV do
  local member, j = ARGV[i], i - 2
  if j > n_marked then
    redis.call('ZREM', index_key, member)
  else
    local mark = redis.call('GET', KEYS[3 + j])
    local due = redis.call('ZSCORE', delayed_key, member)
    if not mark or redis.call('PTTL', KEYS[3 + j]) ~= -1 then
      redis.call('ZREM', index_key, member)  -- the task left the queue
    elseif #redis.call('XRANGE', queue_key, mark, mark) > 0 then
      redis.call('ZADD', index_key, 'XX', entry_ms(mark), member)
    elseif due then
      redis.call('ZADD', index_key, 'XX', due, member)  -- a promote queues it
    elseif pending(mark) then
      -- its worker (or a reclaim) still ends it: listed again at the next sweep
    else
      local id = queue_entry(queue_key, member, mark)
      redis.call('SET', KEYS[3 + j], id)  -- no TTL while queued: see enqueue.lua
      redis.call('ZADD', index_key, entry_ms(id), member)
      queued = queued + 1
    end
  end
end
return queued
