-- todos_read: one plan, read atomically in either stored layout (see mutate.lua, KEYS).
-- KEYS
--   plan hash    the plan (version, updated_ms, order, size, last_op, i:<id> fields; or the
--                old layout's version, items, updated_ms)
-- ARGV
--   (none)
-- Returns {version, items_json, updated_ms, last_op} (see plan.lua; all false for a plan
--   never written).
-- Errors
--   none of its own (read only).
local plan_key = KEYS[1]
return read_plan(plan_key)
