-- coord_promote: move retries that are due from the delayed set to the queue.
--
-- KEYS (one agent's queue keys: one hash tag):
--   queue_key      queue stream
--   delayed_key    delayed retries zset (score: when the retry is due, in ms)
-- ARGV:
--   most           most retries to move in this call
-- Returns how many moved (each exactly once: ZREM in the same call).
-- Errors: none of its own.

local queue_key, delayed_key = KEYS[1], KEYS[2]
local most = ARGV[1]

local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, tonumber(most))
for _, id in ipairs(due) do
  redis.call('XADD', queue_key, '*', 't', id)
  redis.call('ZREM', delayed_key, id)
end
return #due
