-- lease.lua (helper of cache_acquire and cache_lookup, listed before them):
-- take_lease(lease_key, token, lease_ms) takes the single-flight lease of one entry, or
-- says who has it: {2} when this caller holds it now (new, or already its own: re-entry,
-- its TTL pushed to lease_ms); {3, pttl} when another caller holds it (pttl = its
-- remaining ms).
local function take_lease(lease_key, token, lease_ms)
  if redis.call('SET', lease_key, token, 'NX', 'PX', lease_ms) then
    return {2}
  end
  if redis.call('GET', lease_key) == token then
    redis.call('PEXPIRE', lease_key, lease_ms)
    return {2}
  end
  return {3, redis.call('PTTL', lease_key)}
end
