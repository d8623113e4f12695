-- coord_lost: list the tasks of a queue's index whose entry may be gone (the first step of a
-- worker's sweep; sweep.lua checks each and queues it again).
--
-- KEYS (one agent's queue keys: one hash tag):
--   queue_key      queue stream
--   index_key      the queue's index of queued tasks (zset: task id -> ms of its entry, at
--                  most; see enqueue.lua)
-- ARGV:
--   count          most task ids to list
-- Returns the task ids (oldest first) scored before the queue's first entry: a task whose
-- entry is in the stream has a score of at most that entry's time, and the stream's first
-- entry is its oldest, so in a stream that lost no entry only tasks whose score trails
-- their entry (re-queued, promoted, delayed: sweep.lua moves them up) are listed; after the
-- stream was deleted and made again, every task it held is. Never one scored after the
-- server's clock: an entry is made at that clock's time (or at a later stream id's), and a
-- delayed retry is scored at its due time, so a queue whose stream is empty (every entry
-- acknowledged and deleted) while retries wait listed them all (up to `count`) at every
-- worker's every heartbeat, for sweep.lua to check and leave as they were.
-- Errors: none of its own.

local queue_key, index_key = KEYS[1], KEYS[2]
local count = ARGV[1]

local t = redis.call('TIME')
local bound = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local first = redis.call('XRANGE', queue_key, '-', '+', 'COUNT', 1)
if #first > 0 then
  local first_ms = tonumber(string.match(first[1][1], '^(%d+)'))
  if first_ms <= bound then bound = first_ms - 1 end
end
return redis.call('ZRANGEBYSCORE', index_key, '-inf', bound, 'LIMIT', 0, count)
