-- coord_group: make sure a queue and its consumer group exist.
--
-- KEYS:
--   queue_key      queue stream (created empty if missing)
-- ARGV:
--   group          the consumer group
-- Returns 1 if the group was created now, 0 if it existed.
-- Errors: none: pcall turns XGROUP's error (BUSYGROUP: the group exists) into the 0 reply.

local queue_key = KEYS[1]
local group = ARGV[1]

local ok = pcall(redis.call, 'XGROUP', 'CREATE', queue_key, group, '0', 'MKSTREAM')
if ok then return 1 end
return 0
