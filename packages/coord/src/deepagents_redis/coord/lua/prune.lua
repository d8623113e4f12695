-- coord_prune: delete the queue group's consumers that hold nothing: the caller's own (a
-- stopping worker) and any other silent for longer than idle_ms (a worker that died or
-- stopped before this script existed). Every worker start names a new consumer (host, pid,
-- random suffix), and Redis keeps a consumer until it is deleted, so without this the
-- group's consumer list grew by one per worker start, for ever.
--
-- KEYS (one agent's queue keys: one hash tag):
--   queue_key      queue stream
-- ARGV:
--   group          the consumer group
--   consumer       the caller's own consumer ('' = none): deleted if it holds nothing
--   idle_ms        other consumers holding nothing and idle longer than this are deleted
--   most           most consumers deleted by one call (bounded work)
-- Returns how many consumers were deleted. A consumer with pending entries is never
-- deleted (XGROUP DELCONSUMER drops its pending list: those entries would be lost to
-- XAUTOCLAIM); one holding nothing loses nothing, and a live one is made again by its
-- next delivery. The check and the delete are one script, so nothing is delivered between.
-- Errors: none of its own (a missing stream or group deletes nothing).

local queue_key = KEYS[1]
local group, own, idle_ms, most = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])

local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', queue_key, group)
if not ok then return 0 end
local deleted = 0
for _, c in ipairs(consumers) do
  if deleted >= most then break end
  local info = {}
  for i = 1, #c - 1, 2 do info[c[i]] = c[i + 1] end
  local name = info['name']
  if name and tonumber(info['pending']) == 0
      and (name == own or tonumber(info['idle'] or 0) > idle_ms) then
    redis.call('XGROUP', 'DELCONSUMER', queue_key, group, name)
    deleted = deleted + 1
  end
end
return deleted
