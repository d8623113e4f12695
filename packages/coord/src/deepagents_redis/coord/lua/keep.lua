-- keep.lua (helper of coord_enqueue and coord_confirm, listed before their own file):
-- keep(task_key, events_key, inbox_key) makes a queued task's keys last: coord_create gives
-- a new task's record and events a TTL (`pending_ttl_ms`), so a record whose enqueue never
-- happened (the submit failed or was refused, its process died) expires instead of staying
-- pending on no queue for good (there is no sweeper). Once the task is on its queue it may
-- wait there however long, so its keys lose that TTL here; a task that ended meanwhile keeps
-- the TTL its end gave it.
-- Returns 1 if the record exists (its TTL removed if it was pending), 0 if it is gone.
local function keep(task_key, events_key, inbox_key)
  local st = redis.call('HGET', task_key, 'status')
  if not st then return 0 end
  if st == 'pending' then
    redis.call('PERSIST', task_key)
    redis.call('PERSIST', events_key)
    redis.call('PERSIST', inbox_key)
  end
  return 1
end
