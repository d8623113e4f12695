-- cache_read: serve one entry if it belongs to the namespace's current generation.
-- One bulk reply, like a GET: an MGET of both keys costs an array reply to parse, which
-- made a hit ~1.3x a GET on its own (benchmarks suite `cache`).
--
-- KEYS (both in the namespace's hash tag, so one Cluster slot):
--   gen_key      the namespace's generation counter (absent = generation '0')
--   entry_key    the entry: '<generation>:<codec envelope>'
-- ARGV:
--   ttl_ms       TTL in ms pushed on a fresh hit ('0' = leave the expiry alone)
--   max_bytes    largest value served, in bytes
-- Returns the stored value ('<gen>:<envelope>') when it is fresh; nil when there is none;
-- 0 when it belongs to an older generation (stale); 1 when it is not ours (corrupt);
-- 2 when it is larger than max_bytes (oversize: never sent, so a planted 200 MiB value
-- costs the client nothing).
-- Errors: none of its own.

local gen_key, entry_key = KEYS[1], KEYS[2]
local ttl_ms, max_bytes = ARGV[1], ARGV[2]

if redis.call('STRLEN', entry_key) > tonumber(max_bytes) then
  return 2
end
local v = redis.call('GET', entry_key)
if not v then
  return nil
end
local gen = redis.call('GET', gen_key) or '0'
if string.sub(v, 1, string.len(gen) + 1) == gen .. ':' then
  if ttl_ms ~= '0' then
    redis.call('PEXPIRE', entry_key, ttl_ms)
  end
  return v
end
if string.match(v, '^%d+:') then
  return 0
end
return 1
