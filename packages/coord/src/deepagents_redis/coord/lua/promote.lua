-- coord_promote: move retries that are due from the delayed set to the queue.
--
-- KEYS (one agent's queue keys: one hash tag):
--   queue_key      queue stream
--   delayed_key    delayed retries zset (score: when the retry is due, in ms)
--   mark keys      the enqueue mark of each of the first n_marked members, in ARGV's order
--                  (set to its new entry id, so a cancel before a worker reads it takes it
--                  off the queue)
-- ARGV:
--   mark_ttl_ms    unused (the marks get no TTL while queued: see enqueue.lua)
--   n_marked       how many of the members come with a mark key (the well-formed task ids)
--   members        the members to move if still delayed and due: the caller lists the first
--                  ones of the set, and the script checks each against the set and the
--                  server's clock, so a stale list moves nothing it should not. A member
--                  that is no task id (someone else's) moves too, with no mark: the worker
--                  that reads it dead-letters it.
-- Returns how many moved (each exactly once: ZREM in the same call).
-- Errors: none of its own.

local queue_key, delayed_key = KEYS[1], KEYS[2]
local n_marked = tonumber(ARGV[2])

local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
local moved = 0
for i = 3, #ARGV do
  local member = ARGV[i]
  local due = redis.call('ZSCORE', delayed_key, member)
  if due and tonumber(due) <= now then
    local marked = i - 2 <= n_marked
    local id = queue_entry(queue_key, member, marked and redis.call('GET', KEYS[i]))
    redis.call('ZREM', delayed_key, member)
    if marked then redis.call('SET', KEYS[i], id) end  -- no TTL: see enqueue.lua
    moved = moved + 1
  end
end
return moved
