-- fs_stage: put the chunks of a big write into its stage hash, with a TTL, in one step.
-- Only for clients that cannot run MULTI (the asyncio cluster client of a redis-py without
-- cluster transactions); every other
-- client stages with MULTI / HSET / PEXPIRE / EXEC, which keeps the bytes out of Lua.
--
-- KEYS:
--   stage_key    the write's stage hash (s:<path>:<generation>)
-- ARGV:
--   ttl          the stage's TTL in ms (an abandoned stage expires)
--   field, chunk, field, chunk, ...   '<generation>:<i>' and the chunk's bytes
-- Returns the number of fields added.
-- Errors: OOM on a full server (HSET is its first write, refused whole).

local stage_key = KEYS[1]
local ttl = ARGV[1]

local added = 0
local i = 2
while i <= #ARGV do
  local field, chunk = ARGV[i], ARGV[i + 1]
  added = added + redis.call('HSET', stage_key, field, chunk)
  i = i + 2
end
redis.call('PEXPIRE', stage_key, ttl)
return added
