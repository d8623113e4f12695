-- coord_promote: move retries that are due from the delayed set to the queue.
--
-- KEYS (one agent's queue keys: one hash tag):
--   queue_key      queue stream
--   delayed_key    delayed retries zset (score: when the retry is due, in ms)
--   mark keys      the enqueue mark of each listed task, in ARGV's order (set to its new
--                  entry id, so a cancel before a worker reads it takes it off the queue)
-- ARGV:
--   mark_ttl_ms    TTL of the marks in ms
--   task ids       the tasks to move if still delayed and due (the caller lists the first
--                  members of the set: the script checks each against the set and the
--                  server's clock, so a stale list moves nothing it should not)
-- Returns how many moved (each exactly once: ZREM in the same call).
-- Errors: none of its own.

local queue_key, delayed_key = KEYS[1], KEYS[2]
local mark_ttl_ms = ARGV[1]

local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
local moved = 0
for i = 2, #ARGV do
  local task_id = ARGV[i]
  local due = redis.call('ZSCORE', delayed_key, task_id)
  if due and tonumber(due) <= now then
    local id = redis.call('XADD', queue_key, '*', 't', task_id)
    redis.call('ZREM', delayed_key, task_id)
    redis.call('SET', KEYS[i + 1], id, 'PX', mark_ttl_ms)
    moved = moved + 1
  end
end
return moved
