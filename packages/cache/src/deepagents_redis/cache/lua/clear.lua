-- cache_clear: clear namespaces by bumping each one's generation counter (O(1) each).
-- Every counter is checked before any is bumped, so a refused call changes nothing.
--
-- KEYS (one script call: standalone, or counters of one Cluster slot):
--   KEYS[1..n]   generation counters ('<prefix>:v1:<kind>:{<scope>}:gen')
-- ARGV: none.
-- A counter is bumped with INCR when it is absent (to 1) or holds an integer INCR takes.
-- An empty counter (a restore or another tool left '') reads as generation 0 everywhere
-- but INCR refuses it, so clear() raised and could never repair it: it now becomes a fresh
-- generation, the server's clock in microseconds (TIME), kept with its TTL if it had one.
-- The generations used before it was emptied are unknown, and counting on from 1 could
-- serve entries stored under 1, 2... before the damage; the clock is above any counter INCR
-- could have reached from 0. A counter of another data type, or a non-empty string INCR
-- never writes (text, '007', '1:2', the largest 64-bit integer) may be someone else's data
-- under a colliding key: it is left alone and the call refused.
-- Returns the number of counters bumped.
-- Errors: 'CORRUPT <key>, <key>...' naming the refused counters (KeySpace keys: printable)
-- when any counter is refused; then no counter was changed.

local INT64_MAX = '9223372036854775807'

-- Whether INCR takes this string: a canonical 64-bit decimal integer below the largest.
local function incrementable(s)
  local digits = string.match(s, '^%-?([1-9]%d*)$')
  if s == '0' then
    return true
  end
  if not digits then
    return false
  end
  if string.len(digits) < 19 then
    return true
  end
  if string.len(digits) > 19 then
    return false
  end
  if string.sub(s, 1, 1) == '-' then
    return digits <= '9223372036854775808'
  end
  return digits < INT64_MAX
end

local bad, empty = {}, {}
for i, gen_key in ipairs(KEYS) do
  local size = redis.pcall('STRLEN', gen_key)
  if type(size) ~= 'number' or size > 20 then
    table.insert(bad, gen_key)
  elseif size == 0 then
    empty[i] = redis.call('EXISTS', gen_key) == 1
  elseif not incrementable(redis.call('GET', gen_key)) then
    table.insert(bad, gen_key)
  end
end
if #bad > 0 then
  return redis.error_reply('CORRUPT ' .. table.concat(bad, ', '))
end
local fresh = nil
for i, gen_key in ipairs(KEYS) do
  if empty[i] then
    if not fresh then
      local now = redis.call('TIME')
      fresh = now[1] .. string.format('%06d', tonumber(now[2]))
    end
    redis.call('SET', gen_key, fresh, 'KEEPTTL')
  else
    redis.call('INCR', gen_key)
  end
end
return #KEYS
