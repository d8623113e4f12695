-- coord_ack_plain: coord_ack without the op-id record, for the modes that are idempotent by
-- construction (ack: XACK/XDEL; retry: ZADD), so no op record is written per task.
-- ack.lua follows this file: it is coord_ack's body, run here on KEYS/ARGV directly.
--
-- KEYS: coord_ack's data keys (queue_key, delayed_key, dead_key, mark_key), see ack.lua.
-- ARGV: coord_ack's data args (entry_id, mode, task_id, ...), see ack.lua.
-- Returns: see ack.lua.
-- Errors: none of its own.

local keys, argv = KEYS, ARGV
