-- lease.lua (helper of cache_acquire, cache_lookup and cache_write, listed before them):
-- take_lease(lease_key, token, lease_ms) takes the single-flight lease of one entry, or
-- says who has it: {2} when this caller holds it now (new, or already its own: re-entry,
-- its TTL pushed to lease_ms); {3, pttl} when another caller holds it (pttl = its
-- remaining ms). A lease without an expiry was not written by a cache (every cache lease
-- is SET with PX; a copy or restore that drops TTLs, or another tool, leaves one) and would
-- never end: every caller waited wait_timeout on it, on every lookup. It is taken over.
-- holds_lease(lease_key, token) says whether the lease holds this token, comparing lengths
-- first: a 4 MiB value planted under a lease key was copied into the script by each GET. A
-- key of another type holds no token (pcall: its WRONGTYPE failed every miss of the prompt,
-- and the update after it); without an expiry, it is taken over like any such lease.
local function holds_lease(lease_key, token)
  return redis.pcall('STRLEN', lease_key) == string.len(token)
    and redis.call('GET', lease_key) == token
end

local function take_lease(lease_key, token, lease_ms)
  if redis.call('SET', lease_key, token, 'NX', 'PX', lease_ms) then
    return {2}
  end
  if holds_lease(lease_key, token) then
    redis.call('PEXPIRE', lease_key, lease_ms)
    return {2}
  end
  local pttl = redis.call('PTTL', lease_key)
  if pttl < 0 then
    redis.call('SET', lease_key, token, 'PX', lease_ms)
    return {2}
  end
  return {3, pttl}
end
