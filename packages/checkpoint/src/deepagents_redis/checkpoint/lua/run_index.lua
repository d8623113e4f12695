-- ckpt_run_index: name threads in one run's cross-thread index and set its lifetime, at once.
-- The fallback of the MULTI that `RedisSaver` sends for this (SADD, PEXPIRE): core's driver
-- runs it instead only on an asyncio cluster client without transactions, which the
-- redis-py core requires does not have; registered with no other script (see _scripts).
--
-- KEYS:
--   KEYS[1]      the run's index: a set of thread ids, in the run's own slot
-- ARGV:
--   ttl          its lifetime in ms
--   ARGV[2..]    the thread ids to name
-- Returns the number of thread ids new to the set.
-- Errors: none of its own.

local run_key = KEYS[1]
local ttl = ARGV[1]
local added = redis.call('SADD', run_key, unpack(ARGV, 2))
redis.call('PEXPIRE', run_key, ttl)
return added
