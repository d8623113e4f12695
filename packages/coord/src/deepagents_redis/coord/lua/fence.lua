-- fence.lua (helper of coord_heartbeat, coord_event, coord_finish, coord_handback and
-- coord_take, listed before their own file): holder(task_key, fence, ...) reads the task
-- record's status and fencing token, then the fields named in `...`, and checks that the
-- caller still holds the lease: the task runs and its token is the caller's.
-- Returns the fields read {status, fence, ...} when it does; else nil and the error reply
-- 'FENCED <current token>', which the script returns before it writes anything.
local function holder(task_key, fence, ...)
  local f = redis.call('HMGET', task_key, 'status', 'fence', ...)
  if f[1] ~= 'running' or f[2] ~= fence then
    return nil, redis.error_reply('FENCED ' .. (f[2] or '0'))
  end
  return f
end
