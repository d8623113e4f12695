-- coord_abandon: remove a task this submit created when it could not be queued.
--
-- KEYS (one task's keys: one hash tag):
--   task_key       task record hash
--   events_key     task events stream
-- ARGV:
--   digest         digest of the submit that created it
--   own            optional: '1' when the task id is the submit's own random one (no other
--                  submit can name it), so an 'adopted' mark can only be this submit's own
--                  create re-sent after its reply was lost, and does not keep the task
-- Returns 1 if removed, 0 if it is no longer an unstarted task of that submit alone (a
-- repeat submit with the same key found it pending: 'adopted', and may have queued it).
-- Errors: none of its own.

local task_key, events_key = KEYS[1], KEYS[2]
local digest, own = ARGV[1], ARGV[2] or ''

local f = redis.call('HMGET', task_key, 'status', 'attempts', 'digest', 'adopted')
if f[1] ~= 'pending' or f[2] ~= '0' or f[3] ~= digest or (f[4] and own ~= '1') then
  return 0
end
redis.call('DEL', task_key, events_key)
return 1
