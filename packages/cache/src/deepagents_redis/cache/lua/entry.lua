-- entry.lua (helper of cache_read and cache_lookup, listed before them; needs gen.lua):
-- fresh_entry(gen_key, entry_key, ttl_ms, max_bytes) reads one entry the way cache_read
-- answers: the stored value ('<gen>:<envelope>') when it belongs to the namespace's current
-- generation (its TTL pushed to ttl_ms unless ttl_ms is '0'); nil when there is none; 0 when
-- it belongs to an older generation (stale); 1 when it is not ours (bytes that are not an
-- entry, or a key of another type), or the generation counter is corrupt (corrupt); 2 when
-- it is larger than max_bytes (oversize: never read, so a planted 200 MiB value costs
-- nothing). A key of another type (pcall) raised WRONGTYPE out of every lookup of the prompt:
-- no lease, so no single flight for it, and with strict=True an error on every lookup, where
-- foreign bytes are a counted miss; now it is foreign bytes' miss, and the update overwrites it.
-- Its second result is the generation it read (false: corrupt), which a miss hands back so
-- the caller's update stores under that generation or not at all (cache_write's ARGV[4]).
local function fresh_entry(gen_key, entry_key, ttl_ms, max_bytes)
  local gen = generation(gen_key)
  local size = redis.pcall('STRLEN', entry_key)
  if type(size) ~= 'number' then
    return 1, gen
  end
  if size > tonumber(max_bytes) then
    return 2, gen
  end
  local v = redis.call('GET', entry_key)
  if not v then
    return nil, gen
  end
  if not gen then
    return 1, gen
  end
  if string.sub(v, 1, string.len(gen) + 1) == gen .. ':' then
    if ttl_ms ~= '0' then
      redis.call('PEXPIRE', entry_key, ttl_ms)
    end
    return v, gen
  end
  if string.match(v, '^%d+:') then
    return 0, gen
  end
  return 1, gen
end
