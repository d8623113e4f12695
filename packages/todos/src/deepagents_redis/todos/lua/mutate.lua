-- todos_mutate: every mutation of one plan, applied atomically in one script call.
-- This is the body of core's IdempotentScript: it runs as `body(keys, argv)`, where keys and
-- argv are KEYS/ARGV without the op-id key and the op-id TTL the wrapper puts first; the
-- wrapper returns the stored reply for a repeated op id and records nothing on an error.
--
-- KEYS (data keys, after the op-id key that IdempotentScript puts first; all share the
--       plan's hash tag, so one Cluster slot):
--   plan hash    fields: version (int), updated_ms (int), order (JSON array of the item ids,
--                in plan order), size (bytes of the plan as one JSON array: the sum of the
--                item JSONs, plus commas and brackets), last_op (op id of the last applied
--                mutation), and one field per item: 'i:' .. id -> the item's JSON object.
--                A plan stored by an older version has one field `items` (the JSON array)
--                instead of order/size/i:*: it is read, and the first mutation rewrites it
--                in this layout (and deletes `items`), in the same call.
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
--   op_id        the operation id (recorded in the log, and as the plan's last_op)
--   max_content  largest item content, in bytes
--   max_plan     largest payload and largest stored plan (size), in bytes
-- Returns {version}: the new version. The wrapper records this reply under the op id for a
-- day, so it is kept small on purpose (a reply carrying the plan cost a plan-sized record per
-- mutation); the repository's outer script appends the current plan to it (see
-- _repository.py, MUTATE_SCRIPT).
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
-- Why one field per item: update, claim, complete, add and remove touch one item, so they
-- decode and encode that item only (and the order list for add/remove), not the whole plan;
-- decoding and re-encoding a 10-item plan was ~30 us of a ~48 us update (issue 13). replace,
-- and any mutation of a plan in the old layout, rebuild every item.

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
local stored = redis.call('HMGET', plan_key, 'version', 'items', 'order', 'size')
local version = tonumber(stored[1]) or 0
if expected ~= '' and tonumber(expected) ~= version then
  return fail('CONFLICT ' .. version)
end
-- `items`: the whole plan as one JSON array, as older versions stored it.
local legacy, order_raw = stored[2], stored[3]
local plan_size = 2
if legacy then plan_size = #legacy elseif stored[4] then plan_size = tonumber(stored[4]) end
-- An add only grows the plan: refuse it before decoding a plan that is already too large
-- (one that grew through another writer, or before the limit existed).
if op == 'add' and plan_size > max_plan then
  return too_large('plan', plan_size, max_plan)
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function lease_live(it)
  return is_str(it.owner) and #it.owner > 0 and tonumber(it.lease_until or 0) > now
end

local function encode_ids(ids)
  -- By hand: cjson would encode an empty array as '{}'.
  local parts = {}
  for i, id in ipairs(ids) do parts[i] = cjson.encode(id) end
  return '[' .. table.concat(parts, ',') .. ']'
end

-- HSET/HMGET/HDEL with many arguments, in chunks (Lua's unpack has a stack limit).
local function chunked(cmd, args)
  local out = {}
  for start = 1, #args, 1000 do
    local r = redis.call(cmd, plan_key, unpack(args, start, math.min(start + 999, #args)))
    if type(r) == 'table' then for _, v in ipairs(r) do out[#out + 1] = v end end
  end
  return out
end

local item_id = ''
local detail = {}

-- The change to one item, for update, claim and complete (an error reply, or nil).
local function change(it)
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
  end
  return nil
end

-- The fields every mutation writes, then its own.
local new_version = version + 1
local writes = { 'version', new_version, 'updated_ms', now, 'last_op', op_id }
local deletes = {}

if not legacy and op ~= 'replace' then
  -- One item (and, for add/remove, the order list): the stored size is updated by the
  -- difference, so the whole plan is never decoded.
  if op == 'add' then
    local ids = {}
    if order_raw then ids = cjson.decode(order_raw) end
    if #ids + 1 > max_items then return fail('TOOMANY ' .. (#ids + 1) .. ' ' .. max_items) end
    local it = payload.item
    if redis.call('HEXISTS', plan_key, 'i:' .. it.id) == 1 then
      return fail('INVALID duplicate item id ' .. it.id)
    end
    local n = { id = it.id, content = it.content, status = it.status, metadata = it.metadata, updated_at = now }
    local index = tonumber(payload.index) or -1
    if index < 0 or index >= #ids then
      ids[#ids + 1] = it.id
    else
      table.insert(ids, index + 1, it.id)
    end
    local enc = cjson.encode(n)
    if #ids == 1 then plan_size = #enc + 2 else plan_size = plan_size + #enc + 1 end
    if plan_size > max_plan then return too_large('plan', plan_size, max_plan) end
    item_id = it.id
    detail = { content = it.content, status = it.status }
    writes[#writes + 1] = 'order'; writes[#writes + 1] = encode_ids(ids)
    writes[#writes + 1] = 'i:' .. it.id; writes[#writes + 1] = enc
  else
    local field = 'i:' .. payload.id
    local raw = redis.call('HGET', plan_key, field)
    if not raw then return fail('NOTFOUND ' .. payload.id) end
    local it = cjson.decode(raw)
    item_id = payload.id
    if op == 'remove' then
      local ids = cjson.decode(order_raw)
      for i, id in ipairs(ids) do
        if id == payload.id then table.remove(ids, i); break end
      end
      if #ids == 0 then plan_size = 2 else plan_size = plan_size - #raw - 1 end
      detail = { content = it.content }
      writes[#writes + 1] = 'order'; writes[#writes + 1] = encode_ids(ids)
      deletes[1] = field
    else
      local err = change(it)
      if err then return err end
      local enc = cjson.encode(it)
      plan_size = plan_size - #raw + #enc
      if plan_size > max_plan then return too_large('plan', plan_size, max_plan) end
      writes[#writes + 1] = field; writes[#writes + 1] = enc
    end
  end
else
  -- The whole plan: replace, or any mutation of a plan stored in the old layout.
  local items, old_ids = {}, {}
  if legacy then
    -- `items` wins over `order`: it is there either because nothing migrated the plan yet,
    -- or because a writer of the old layout wrote after (its i:* fields are stale: dropped).
    items = cjson.decode(legacy)
    if order_raw then old_ids = cjson.decode(order_raw) end
  elseif order_raw then
    old_ids = cjson.decode(order_raw)
    local names = {}
    for i, id in ipairs(old_ids) do names[i] = 'i:' .. id end
    for _, raw in ipairs(chunked('HMGET', names)) do
      if raw then items[#items + 1] = cjson.decode(raw) end
    end
  end

  local function find(id)
    for i, it in ipairs(items) do
      if it.id == id then return i, it end
    end
    return nil, nil
  end

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
    if op == 'remove' then
      table.remove(items, i)
      detail = { content = it.content }
    else
      local err = change(it)
      if err then return err end
    end
  end

  -- Encode each item; the size is what the plan would be as one JSON array.
  local ids, kept = {}, {}
  plan_size = 1
  for i, it in ipairs(items) do
    local enc = cjson.encode(it)
    plan_size = plan_size + #enc + 1
    ids[i] = it.id
    kept[it.id] = true
    writes[#writes + 1] = 'i:' .. it.id; writes[#writes + 1] = enc
  end
  if #items == 0 then plan_size = 2 end
  -- The last check, still before the first write.
  if plan_size > max_plan then return too_large('plan', plan_size, max_plan) end
  writes[#writes + 1] = 'order'; writes[#writes + 1] = encode_ids(ids)
  if legacy then deletes[#deletes + 1] = 'items' end
  for _, id in ipairs(old_ids) do
    if not kept[id] then deletes[#deletes + 1] = 'i:' .. id end
  end
end

writes[#writes + 1] = 'size'; writes[#writes + 1] = plan_size
version = new_version
-- HSET first: a deny-oom command as the first write makes a full server refuse the script
-- before it changes anything (a first HDEL would go through, then the HSET fail).
chunked('HSET', writes)
if #deletes > 0 then chunked('HDEL', deletes) end
local detail_json = '{}'
if next(detail) ~= nil then detail_json = cjson.encode(detail) end
redis.call('XADD', log_key, 'MAXLEN', '~', log_maxlen, '*',
  'v', version, 'op', op, 'actor', actor, 'op_id', op_id, 'item', item_id, 'detail', detail_json)
return { version }
