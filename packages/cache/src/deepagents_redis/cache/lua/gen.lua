-- gen.lua (helper of every cache script that reads a namespace's generation, listed before
-- them): generation(gen_key) is the namespace's current generation as text, '0' when the
-- counter is absent or empty; false when it holds what INCR never writes (more than 20
-- bytes, or not a decimal integer): a corrupt counter, read no further than its length.
-- The scripts then serve no entry and store none: a 4 MiB counter was read whole by every
-- call and put in front of every value stored ('<counter>:<envelope>'), and a counter like
-- '1:2' was served by one path and missed by another. The Python reads (the plain-read hit
-- path, the node cache's MGET) apply the same rule, an empty counter as '0' included: the
-- scripts read '' as the generation '' and each side missed what the other wrote.
-- A counter of another data type (a hash someone put there) is corrupt too (pcall): its
-- WRONGTYPE failed every lookup, update and node set of the namespace, and with strict=True
-- raised out of every lookup, where a corrupt string counter is a counted miss.
local function generation(gen_key)
  local size = redis.pcall('STRLEN', gen_key)
  if type(size) ~= 'number' or size > 20 then
    return false
  end
  if size == 0 then -- absent or empty: no GET (every miss now reads the generation)
    return '0'
  end
  local gen = redis.call('GET', gen_key)
  if not string.match(gen, '^%-?%d+$') then
    return false
  end
  return gen
end
