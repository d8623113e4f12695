-- cache_write_many: store several entries of one namespace under its current generation.
-- Needs gen.lua before it.
--
-- KEYS (all in the namespace's hash tag, so one Cluster slot):
--   gen_key      the namespace's generation counter (absent or empty = generation '0')
--   KEYS[2..n+1] the entries, each stored as '<current generation>:<envelope>'
-- ARGV: one pair per entry, in the order of KEYS[2..]:
--   ARGV[2i-1]   TTL in ms of KEYS[i+1] ('0' = no expiry), in the same SET as its value
--   ARGV[2i]     its codec envelope
-- An absent counter is created as '0' (SET NX) with the entries: the node cache reads the
-- counter with MGET, which answers nil for an absent key and for a key of another type
-- alike, so entries under an absent counter cost the reader a TYPE check before they are
-- served as generation 0; written here, the counter of every namespace written is there.
-- Returns the number of entries written; -1 (none written) when the generation counter is
-- corrupt (see gen.lua).
-- Errors: none of its own.

local gen_key = KEYS[1]

local gen = generation(gen_key)
if not gen then
  return -1
end
redis.call('SET', gen_key, '0', 'NX')
for i = 2, #KEYS do
  local ttl = ARGV[2 * (i - 1) - 1]
  local value = gen .. ':' .. ARGV[2 * (i - 1)]
  if ttl == '0' then
    redis.call('SET', KEYS[i], value)
  else
    redis.call('SET', KEYS[i], value, 'PX', ttl)
  end
end
return #KEYS - 1
