-- fence.lua (helper of coord_heartbeat, coord_event, coord_finish, coord_handback and
-- coord_take, listed before their own file): holder(task_key, fence, ...) reads the task
-- record's status and fencing token, then the fields named in `...`, and checks that the
-- caller still holds the lease: the task runs and its token is the caller's.
-- Returns the fields read {status, fence, ...} when it does; else nil, the error reply
-- 'FENCED <current token>', which the script returns before it writes anything, and the
-- fields read (coord_finish tells its own re-sent call from a caller fenced out by them).
local function holder(task_key, fence, ...)
  local f = redis.call('HMGET', task_key, 'status', 'fence', ...)
  if f[1] ~= 'running' or f[2] ~= fence then
    return nil, redis.error_reply('FENCED ' .. (f[2] or '0')), f
  end
  return f
end
