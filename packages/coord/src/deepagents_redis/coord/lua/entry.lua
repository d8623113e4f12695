-- queue_entry: append a task's entry to its queue stream, never with the id `previous` (the
-- entry the task's enqueue mark names until this call moves it).
--
-- Acks and sweeps tell a task's current entry from an old one by the mark: "the mark names
-- this entry". A queue stream that was deleted (its group made again) forgets its last id, so
-- a new entry made in the same millisecond as the old one got the very same id: a late
-- 'retry' ack of the old entry then read as one of the new entry and scheduled the task a
-- second time (seen: the stream-deleted case of test_claim_retry_review). Such an entry is
-- taken back at once and added again right after `previous`.
-- Shared: listed before enqueue.lua, ack.lua, promote.lua and sweep.lua.
local function queue_entry(queue_key, task_id, previous)
  local id = redis.call('XADD', queue_key, '*', 't', task_id)
  if previous and id == previous then
    local ms, seq = string.match(previous, '^(%d+)%-(%d+)$')
    redis.call('XDEL', queue_key, id)
    id = redis.call('XADD', queue_key, ms .. '-' .. string.format('%d', tonumber(seq) + 1),
      't', task_id)
  end
  return id
end
