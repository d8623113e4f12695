-- coord_confirm: after a submit's enqueue, remove the TTL its create gave the task (on a
-- Cluster, where the queue is in another slot; on a single server coord_enqueue does it in
-- the same call). Needs keep.lua before it. Idempotent by construction (PERSIST).
--
-- KEYS (one task's keys: one hash tag):
--   task_key       task record hash
--   events_key     task events stream
--   inbox_key      task inbox stream
-- ARGV: none.
-- Returns 1 if the record exists, 0 if it is gone (it expired before its enqueue was
-- confirmed: the queue entry is acknowledged as 'gone' by the worker that reads it).
-- Errors: none of its own.

local task_key, events_key, inbox_key = KEYS[1], KEYS[2], KEYS[3]

return keep(task_key, events_key, inbox_key)
