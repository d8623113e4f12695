-- todos_mutate: every mutation of one plan, applied atomically in one script call.
-- This is the body of core's IdempotentScript: it runs as `body(keys, argv)`, where keys and
-- argv are KEYS/ARGV without the op-id key and the op-id TTL the wrapper puts first; the
-- wrapper returns the stored reply for a repeated op id and records nothing on an error.
--
-- KEYS (data keys, after the op-id key that IdempotentScript puts first; all share the
--       plan's hash tag, so one Cluster slot):
--   plan hash    fields: version (int), items (JSON array), updated_ms (int)
--   change log   a stream capped with MAXLEN ~
-- ARGV (data args, after the op-id TTL that IdempotentScript puts first):
--   op           replace | add | update | claim | complete | remove
--   expected     expected version ('' = any)
--   payload      JSON object, per op:
--                  replace  {"items": [item, ...]}
--                  add      {"item": item, "index": n | -1}
--                  update   {"id": s, "content"?: s, "status"?: s, "metadata"?: s}
--                  claim    {"id": s, "owner": s, "lease_ms": n}
--                  complete {"id": s, "owner"?: s}
--                  remove   {"id": s}
--                an item is {"id", "content", "status", "owner"?, "metadata"?}; in replace,
--                fields left out keep the stored item's value (same id), and JSON null
--                clears owner/lease.
--   max_items    the item cap
--   log_maxlen   approximate length cap of the change log
--   actor        who makes the change (recorded in the log)
--   op_id        the operation id (recorded in the log)
--   max_content  largest item content, in bytes
--   max_plan     largest payload and largest stored plan (the items JSON), in bytes
-- Returns {version, digest}: the new version and the SHA1 hex of the stored items JSON. The
-- wrapper records this reply under the op id for a day, so it is kept small on purpose (a
-- reply carrying the plan cost a plan-sized record per mutation); the repository's outer
-- script appends the current plan to it (see _repository.py, MUTATE_SCRIPT).
-- Errors (nothing is changed when one is raised; every check runs before the first write):
--   INVALID <why>                     bad payload: status, empty content, duplicate id ...
--   CONFLICT <actual>                 the plan is not at the expected version
--   NOTFOUND <item id>                no item with this id
--   TOOMANY <count> <cap>             the plan would exceed max_items
--   TOOLARGE <what> <bytes> <cap>     content, payload or plan over its byte limit
--   CLAIMED <version> <lease_until_ms> <owner>   held by another owner whose lease is live
-- Items are JSON so the script can edit them (cjson is built into Redis and Valkey);
-- `metadata` is an opaque JSON string the script never parses, so cjson cannot reshape
-- user data (it would turn an empty array into an object).

local plan_key, log_key = keys[1], keys[2]
local op, expected, payload_raw = argv[1], argv[2], argv[3]
local max_items, log_maxlen = tonumber(argv[4]), argv[5]
local actor, op_id = argv[6], argv[7]
local max_content, max_plan = tonumber(argv[8]), tonumber(argv[9])

local STATUSES = { pending = true, in_progress = true, completed = true }

local function fail(msg) return redis.error_reply(msg) end
local function too_large(what, size, cap)
  return fail('TOOLARGE ' .. what .. ' ' .. string.format('%d %d', size, cap))
end

-- Sizes before any decoding: decoding and re-encoding a huge plan is what blocked the server
-- (issue 8 defect 5: one 100 MB item made every later add take 2.6 s, and other clients'
-- PING wait 5.1 s). The client checks the same limits; these catch other writers.
if #payload_raw > max_plan then return too_large('payload', #payload_raw, max_plan) end

local ok, payload = pcall(cjson.decode, payload_raw)
if not ok or type(payload) ~= 'table' then return fail('INVALID payload is not a JSON object') end

local function is_str(v) return type(v) == 'string' end
local function valid_content(v) return is_str(v) and string.find(v, '%S') ~= nil end
local function valid_status(v) return is_str(v) and STATUSES[v] == true end
local function valid_id(v) return is_str(v) and #v > 0 and #v <= 200 end
local function content_too_large(v) return is_str(v) and #v > max_content end

-- Structural checks first: they do not depend on the stored plan.
if op == 'replace' then
  if type(payload.items) ~= 'table' then return fail('INVALID replace needs items') end
  local seen = {}
  for i, it in ipairs(payload.items) do
    if type(it) ~= 'table' or not valid_id(it.id) then return fail('INVALID item ' .. i .. ' has no valid id') end
    if seen[it.id] then return fail('INVALID duplicate item id ' .. it.id) end
    seen[it.id] = true
    if not valid_content(it.content) then return fail('INVALID item ' .. it.id .. ' has empty content') end
    if content_too_large(it.content) then return too_large('content', #it.content, max_content) end
    if not valid_status(it.status) then return fail('INVALID item ' .. it.id .. ' has unknown status') end
    if it.owner ~= nil and it.owner ~= cjson.null and not is_str(it.owner) then return fail('INVALID owner must be a string') end
    if it.metadata ~= nil and not is_str(it.metadata) then return fail('INVALID metadata must be encoded JSON') end
  end
elseif op == 'add' then
  local it = payload.item
  if type(it) ~= 'table' or not valid_id(it.id) then return fail('INVALID add needs an item with an id') end
  if not valid_content(it.content) then return fail('INVALID item ' .. it.id .. ' has empty content') end
  if content_too_large(it.content) then return too_large('content', #it.content, max_content) end
  if not valid_status(it.status) then return fail('INVALID item ' .. it.id .. ' has unknown status') end
  if it.metadata ~= nil and not is_str(it.metadata) then return fail('INVALID metadata must be encoded JSON') end
elseif op == 'update' or op == 'claim' or op == 'complete' or op == 'remove' then
  if not valid_id(payload.id) then return fail('INVALID ' .. op .. ' needs an item id') end
  if op == 'update' then
    if payload.content ~= nil and not valid_content(payload.content) then return fail('INVALID empty content') end
    if content_too_large(payload.content) then return too_large('content', #payload.content, max_content) end
    if payload.status ~= nil and not valid_status(payload.status) then return fail('INVALID unknown status') end
    if payload.metadata ~= nil and not is_str(payload.metadata) then return fail('INVALID metadata must be encoded JSON') end
  elseif op == 'claim' then
    if not is_str(payload.owner) or #payload.owner == 0 then return fail('INVALID claim needs an owner') end
    if type(payload.lease_ms) ~= 'number' or payload.lease_ms <= 0 then return fail('INVALID lease must be positive') end
  elseif op == 'complete' then
    if payload.owner ~= nil and not is_str(payload.owner) then return fail('INVALID owner must be a string') end
  end
else
  return fail('INVALID unknown op ' .. tostring(op))
end

-- Then the version check against the stored plan.
local stored = redis.call('HMGET', plan_key, 'version', 'items')
local version = tonumber(stored[1]) or 0
if expected ~= '' and tonumber(expected) ~= version then
  return fail('CONFLICT ' .. version)
end
-- An add only grows the plan: refuse it before decoding a plan that is already too large
-- (one that grew through another writer, or before the limit existed).
if op == 'add' and stored[2] and #stored[2] > max_plan then
  return too_large('plan', #stored[2], max_plan)
end
local items = {}
if stored[2] then items = cjson.decode(stored[2]) end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function find(id)
  for i, it in ipairs(items) do
    if it.id == id then return i, it end
  end
  return nil, nil
end

local function lease_live(it)
  return is_str(it.owner) and #it.owner > 0 and tonumber(it.lease_until or 0) > now
end

local item_id = ''
local detail = {}

-- Then the checks that need the stored plan, then the change itself.
if op == 'replace' then
  if #payload.items > max_items then return fail('TOOMANY ' .. #payload.items .. ' ' .. max_items) end
  local old = {}
  for _, it in ipairs(items) do old[it.id] = it end
  local new_items = {}
  for _, it in ipairs(payload.items) do
    local prev = old[it.id]
    local n = { id = it.id, content = it.content, status = it.status }
    if prev then
      n.owner, n.lease_until, n.metadata = prev.owner, prev.lease_until, prev.metadata
    end
    if it.owner == cjson.null then n.owner, n.lease_until = nil, nil
    elseif it.owner ~= nil then n.owner = it.owner end
    if it.metadata ~= nil then n.metadata = it.metadata end
    if prev and prev.content == n.content and prev.status == n.status and prev.owner == n.owner
        and prev.metadata == n.metadata then
      n.updated_at = prev.updated_at
    else
      n.updated_at = now
    end
    new_items[#new_items + 1] = n
  end
  items = new_items
  detail = { count = #items }
elseif op == 'add' then
  if #items + 1 > max_items then return fail('TOOMANY ' .. (#items + 1) .. ' ' .. max_items) end
  local it = payload.item
  if find(it.id) then return fail('INVALID duplicate item id ' .. it.id) end
  local n = { id = it.id, content = it.content, status = it.status, metadata = it.metadata, updated_at = now }
  local index = tonumber(payload.index) or -1
  if index < 0 or index >= #items then
    items[#items + 1] = n
  else
    table.insert(items, index + 1, n)
  end
  item_id = it.id
  detail = { content = it.content, status = it.status }
else
  local i, it = find(payload.id)
  if not i then return fail('NOTFOUND ' .. payload.id) end
  item_id = payload.id
  if op == 'update' then
    if payload.content ~= nil then it.content = payload.content; detail.content = payload.content end
    if payload.status ~= nil then it.status = payload.status; detail.status = payload.status end
    if payload.metadata ~= nil then it.metadata = payload.metadata; detail.metadata = true end
    it.updated_at = now
  elseif op == 'claim' then
    if it.status == 'completed' then return fail('INVALID item ' .. it.id .. ' is completed') end
    if lease_live(it) and it.owner ~= payload.owner then
      return fail('CLAIMED ' .. version .. ' ' .. tostring(it.lease_until) .. ' ' .. it.owner)
    end
    it.owner = payload.owner
    it.lease_until = now + math.floor(payload.lease_ms)
    if it.status == 'pending' then it.status = 'in_progress' end
    it.updated_at = now
    detail = { owner = it.owner, lease_until = it.lease_until, status = it.status }
  elseif op == 'complete' then
    if payload.owner ~= nil and lease_live(it) and it.owner ~= payload.owner then
      return fail('CLAIMED ' .. version .. ' ' .. tostring(it.lease_until) .. ' ' .. it.owner)
    end
    it.status = 'completed'
    it.lease_until = nil
    it.updated_at = now
    detail = { status = 'completed' }
  elseif op == 'remove' then
    table.remove(items, i)
    detail = { content = it.content }
  end
end

-- Encode by hand: cjson would encode an empty array as '{}'.
local parts = {}
for i, it in ipairs(items) do parts[i] = cjson.encode(it) end
local items_json = '[' .. table.concat(parts, ',') .. ']'
-- The last check, still before the first write.
if #items_json > max_plan then return too_large('plan', #items_json, max_plan) end

version = version + 1
redis.call('HSET', plan_key, 'version', version, 'items', items_json, 'updated_ms', now)
local detail_json = '{}'
if next(detail) ~= nil then detail_json = cjson.encode(detail) end
redis.call('XADD', log_key, 'MAXLEN', '~', log_maxlen, '*',
  'v', version, 'op', op, 'actor', actor, 'op_id', op_id, 'item', item_id, 'detail', detail_json)
return { version, redis.sha1hex(items_json) }
