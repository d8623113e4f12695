-- todos_mutate: every mutation of one plan, applied atomically in one script call.
-- This is the body of core's IdempotentScript: it runs as `body(keys, argv)`, where keys and
-- argv are KEYS/ARGV without the op-id key and the op-id TTL the wrapper puts first; the
-- wrapper returns the stored reply for a repeated op id and records nothing on an error.
--
-- KEYS (data keys, after the op-id key that IdempotentScript puts first; all share the
--       plan's hash tag, so one Cluster slot):
--   plan hash    fields: version (int), items (JSON array), updated_ms (int), last_op (op id
--                of the last applied mutation), index: {"v": version, "ids": [id, ...],
--                "lens": [n, ...]}, the id and the byte length of each item's JSON in
--                `items`, in order, valid only when "v" is the plan's version (so a plan
--                written by an older version, which has no index or a stale one, is
--                indexed again by its next mutation).
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
--   max_plan     largest payload and largest stored plan (the items JSON), in bytes
--   known        the plan state the client holds ('' = none): '<version>:<last_op>:
--                <updated_ms>:<byte length of items>', as stored; see the end of the script
-- Returns {version}: the new version. The wrapper records this reply under the op id for a
-- day, so it is kept small on purpose (a reply carrying the plan cost a plan-sized record per
-- mutation); the repository's outer script appends the current plan to it (see
-- _repository.py, MUTATE_SCRIPT): the body hands it the plan it wrote in the outer script's
-- local `written` (so this body runs only inside that script).
-- Errors (nothing is changed when one is raised; every check runs before the first write):
--   INVALID <why>                     bad payload: status, empty content, duplicate id ...
--   CONFLICT <actual>                 the plan is not at the expected version
--   NOTFOUND <item id>                no item with this id
--   TOOMANY <count> <cap>             the plan would exceed max_items
--   TOOLARGE <what> <bytes> <cap>     content, payload or plan over its byte limit
--   CLAIMED <version> <lease_until_ms> <owner>   held by another owner whose lease is live
--   MALFORMED <why>                   the stored plan is not what this script writes
-- Items are JSON so the script can edit them (cjson is built into Redis and Valkey);
-- `metadata` is an opaque JSON string the script never parses, so cjson cannot reshape
-- user data (it would turn an empty array into an object).
-- Why the index: update, claim, complete, add and remove cut their item out of `items` by
-- its offset and splice the new JSON in, so they decode and encode that item only, not the
-- whole plan (decoding and re-encoding a 10-item plan was ~30 us of a ~48 us update, issue
-- 13); reads stay one HMGET of one JSON array. replace decodes the plan (it keeps stored
-- owners, leases and metadata) but reuses the stored JSON of every item it leaves unchanged.

local plan_key, log_key = keys[1], keys[2]
local op, expected, payload_raw = argv[1], argv[2], argv[3]
local max_items, log_maxlen = tonumber(argv[4]), argv[5]
local actor, op_id = argv[6], argv[7]
local max_content, max_plan = tonumber(argv[8]), tonumber(argv[9])
local known = argv[10] or ''

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
    -- MAX_LEASE_SECONDS of _repository.py, in ms: a longer lease ends past what cjson
    -- writes exactly (14 digits) or any datetime holds, and the plan could not be read.
    if payload.lease_ms > 315360000000 then return fail('INVALID lease is longer than 315360000 seconds') end
  elseif op == 'complete' then
    if payload.owner ~= nil and not is_str(payload.owner) then return fail('INVALID owner must be a string') end
  end
else
  return fail('INVALID unknown op ' .. tostring(op))
end

-- Then the version check against the stored plan.
local stored = redis.call('HMGET', plan_key, 'version', 'items', 'index', 'last_op', 'updated_ms')
-- The version as this script writes it: 1 to 15 ASCII digits (exact in a Lua number). Read
-- with `tonumber(...) or 0`, a planted 'abc' restarted the plan at version 1 (versions
-- repeated), '1e3' jumped to 1001 and '1.5' wrote 2.5, which no reader accepts.
local version = 0
if stored[1] then
  if #stored[1] > 15 or not string.find(stored[1], '^%d+$') then
    return fail('MALFORMED the stored version is not a count of at most 15 digits')
  end
  version = tonumber(stored[1])
end
if expected ~= '' and tonumber(expected) ~= version then
  return fail('CONFLICT ' .. version)
end
local items_raw = stored[2] or '[]'
-- An add only grows the plan: refuse it before decoding a plan that is already too large
-- (one that grew through another writer, or before the limit existed).
if op == 'add' and #items_raw > max_plan then
  return too_large('plan', #items_raw, max_plan)
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- tonumber(...) or 0: a lease another writer stored as JSON null (cjson.null, which
-- tonumber makes nil) is no lease, as for every reader; compared as nil it was a Lua error.
local function lease_live(it)
  return is_str(it.owner) and #it.owner > 0 and (tonumber(it.lease_until) or 0) > now
end

-- The index, if it describes `items` as stored: written at this version, and its lengths
-- add up to the length of `items` (else: nil, and the whole plan is decoded).
local ids, lens, ids_text
if not stored[2] then
  ids, lens = {}, {}
elseif stored[3] then
  local ok_idx, idx = pcall(cjson.decode, stored[3])
  if ok_idx and type(idx) == 'table' and tonumber(idx.v) == version
      and type(idx.ids) == 'table' and type(idx.lens) == 'table' and #idx.ids == #idx.lens then
    -- Framed: each length cuts out one '{...}' at its offset, followed by ',' (or ']' after
    -- the last), and the lengths add up to `items`. Trusted on the sum alone, an index at the
    -- plan's version that another writer made (one 0-byte item on '[]') had an append write
    -- '[,{...}]'. Its ids are checked where an op relies on them (the cut, the duplicate
    -- check of an add, the JSON a replace reuses).
    local framed = string.byte(items_raw, 1) == 91 and string.byte(items_raw, -1) == 93
    local pos, count = 2, #idx.lens
    for k = 1, count do
      if not framed then break end
      local n = idx.lens[k]
      framed = type(n) == 'number' and n >= 2 and n == math.floor(n) and valid_id(idx.ids[k])
        and string.byte(items_raw, pos) == 123 and string.byte(items_raw, pos + n - 1) == 125
        and string.byte(items_raw, pos + n) == (k == count and 93 or 44)
      if framed then pos = pos + n + 1 end
    end
    if framed and pos == #items_raw + (count == 0 and 0 or 1) then
      ids, lens = idx.ids, idx.lens
      -- ids_text: the stored "ids" array as text, when the index is framed exactly as this
      -- script writes it: '{"v":<v>,"ids":' .. ids_text .. ',"lens":[<digits and commas>]}'.
      -- Put back into that frame it decodes to these same ids (cjson reads it the same
      -- way), so an op that keeps the ids, or appends one, reuses it instead of encoding
      -- every id again.
      local raw = stored[3]
      local head = '{"v":' .. stored[1] .. ',"ids":'
      if string.sub(raw, 1, #head) == head then
        local at = string.find(raw, ',"lens":[', #head + 1, true)
        if at and string.find(raw, '^[%d,]*%]}$', at + 9) then
          ids_text = string.sub(raw, #head + 1, at - 1)
        end
      end
    end
  end
end

-- Where item k's JSON starts in `items`: after '[' and the items before it, with commas.
local function offset(k)
  local pos = 2
  for j = 1, k - 1 do pos = pos + lens[j] + 1 end
  return pos
end

local function position(id)
  for k, v in ipairs(ids) do
    if v == id then return k end
  end
  return nil
end

-- A one-item op cuts its item out here; a cut that does not decode to that item means the
-- index does not describe `items` (a write to the hash by something else than this script):
-- then the whole plan is decoded instead, as for a plan without an index.
local cut_k, cut_a, cut_b, cut_item
if ids and (op == 'update' or op == 'claim' or op == 'complete' or op == 'remove') then
  cut_k = position(payload.id)
  if not cut_k then
    -- Not in the index: decode the whole plan to be sure (an index another writer made
    -- may lack an id `items` holds; this costs only the error path).
    ids, lens = nil, nil
  else
    cut_a = offset(cut_k)
    cut_b = cut_a + lens[cut_k] - 1
    local ok_cut, it = pcall(cjson.decode, string.sub(items_raw, cut_a, cut_b))
    if ok_cut and type(it) == 'table' and it.id == payload.id then
      cut_item = it
    else
      ids, lens = nil, nil
    end
  end
end

-- An insert checks the same way that its offset is an item boundary.
if ids and op == 'add' then
  local index = tonumber(payload.index) or -1
  if index >= 0 and index < #ids then
    local a = offset(index + 1)
    local before = string.sub(items_raw, a - 1, a - 1)
    if (before ~= '[' and before ~= ',') or string.sub(items_raw, a, a) ~= '{' then
      ids, lens = nil, nil
    end
  end
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

-- Why a plan decoded whole is not what this script writes (nil when it is): a JSON array of
-- items each as Todo.from_stored accepts them (its metadata's JSON is checked by the client
-- only: here, that it is an object's text). Taken as it came, an add or a replace over a
-- planted '{"a":1}' read it as no items and dropped it, answering success; over an item
-- get() refuses (no id, content 5, an unknown status) the add was applied and the client's
-- parse of the reply then failed: an error for a change that was applied.
local function bad_time(v)
  -- Python's datetime range in ms (years 1 to 9999); nil or JSON null is no time.
  return v ~= nil and v ~= cjson.null and (type(v) ~= 'number' or v ~= v
    or v < -62135596800000 or v > 253402300799999)
end
local function stored_problem(ok_dec, items)
  if not ok_dec or type(items) ~= 'table' or not string.find(items_raw, '^%s*%[') then
    return 'items is not a JSON array'
  end
  for i, it in ipairs(items) do
    if type(it) ~= 'table' or not is_str(it.id) or #it.id == 0 then
      return 'item ' .. i .. ' has no valid id'
    end
    if not is_str(it.content) or not valid_status(it.status) then
      return 'item ' .. i .. ' has no valid content or status'
    end
    if it.owner ~= nil and it.owner ~= cjson.null and not is_str(it.owner) then
      return 'item ' .. i .. ' has an owner that is not a string'
    end
    if it.metadata ~= nil and it.metadata ~= cjson.null
        and not (is_str(it.metadata) and string.find(it.metadata, '^%s*{')) then
      return 'item ' .. i .. ' has metadata that is not an encoded JSON object'
    end
    if bad_time(it.lease_until) or bad_time(it.updated_at) then
      return 'item ' .. i .. ' has a time that is not a number of milliseconds'
    end
  end
  return nil
end

local new_items
-- The change as the client can apply it to the plan it knows: {kind, position, item JSON},
-- kind 'u' (item k replaced), 'a' (inserted at k) or 'r' (item k removed).
local delta
local keep_ids  -- the ids array as text, when reused from the stored index (see ids_text)

if ids and op ~= 'replace' then
  -- One item: cut out and spliced in by its offset; the rest of `items` is copied as is.
  if op == 'add' then
    if #ids + 1 > max_items then return fail('TOOMANY ' .. (#ids + 1) .. ' ' .. max_items) end
    local it = payload.item
    -- The index's ids, and the item's own "id" key in `items` (an unescaped quote in JSON
    -- text only delimits a string, so this text is an item's id and nothing else): an
    -- index another writer made may lack an id `items` holds.
    if position(it.id) or string.find(items_raw, '"id":' .. cjson.encode(it.id), 1, true) then
      return fail('INVALID duplicate item id ' .. it.id)
    end
    local n = { id = it.id, content = it.content, status = it.status, metadata = it.metadata, updated_at = now }
    local enc = cjson.encode(n)
    local index = tonumber(payload.index) or -1
    local k = #ids + 1
    if index >= 0 and index < #ids then k = index + 1 end
    if #ids == 0 then
      new_items = '[' .. enc .. ']'
    elseif k > #ids then
      new_items = string.sub(items_raw, 1, -2) .. ',' .. enc .. ']'
    else
      local a = offset(k)
      new_items = string.sub(items_raw, 1, a - 1) .. enc .. ',' .. string.sub(items_raw, a)
    end
    if ids_text and k > #ids then
      if #ids == 0 then
        keep_ids = '[' .. cjson.encode(it.id) .. ']'
      elseif string.sub(ids_text, -1) == ']' then
        keep_ids = string.sub(ids_text, 1, -2) .. ',' .. cjson.encode(it.id) .. ']'
      end
    end
    table.insert(ids, k, it.id)
    table.insert(lens, k, #enc)
    delta = { 'a', k, enc }
    item_id = it.id
    detail = { content = it.content, status = it.status }
  else
    local k, a, b, it = cut_k, cut_a, cut_b, cut_item
    if not k then return fail('NOTFOUND ' .. payload.id) end
    item_id = payload.id
    if op == 'remove' then
      if #ids == 1 then
        new_items = '[]'
      elseif k == #ids then
        new_items = string.sub(items_raw, 1, a - 2) .. ']'
      else
        new_items = string.sub(items_raw, 1, a - 1) .. string.sub(items_raw, b + 2)
      end
      table.remove(ids, k)
      table.remove(lens, k)
      delta = { 'r', k, '' }
      detail = { content = it.content }
    else
      local err = change(it)
      if err then return err end
      local enc = cjson.encode(it)
      new_items = string.sub(items_raw, 1, a - 1) .. enc .. string.sub(items_raw, b + 1)
      lens[k] = #enc
      keep_ids = ids_text
      delta = { 'u', k, enc }
    end
  end
else
  -- The whole plan: replace, or a plan without a valid index (an older version wrote it).
  local ok_items, items = pcall(cjson.decode, items_raw)
  local why = stored_problem(ok_items, items)
  if why then return fail('MALFORMED ' .. why) end
  -- raws: id -> stored JSON (when indexed); same: items a replace leaves exactly as stored,
  -- whose stored JSON is reused instead of encoding them again.
  local raws, same = {}, {}
  if ids then
    for k, id in ipairs(ids) do
      -- Only where the decoded item at k has that id: with another writer's index, swapped
      -- ids swapped the items a replace left unchanged.
      if type(items[k]) == 'table' and items[k].id == id then
        local a = offset(k)
        raws[id] = string.sub(items_raw, a, a + lens[k] - 1)
      end
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
    local new_list = {}
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
        if prev.lease_until == n.lease_until then same[n] = true end
      else
        n.updated_at = now
      end
      new_list[#new_list + 1] = n
    end
    items = new_list
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

  -- Encode by hand: cjson would encode an empty array as '{}'.
  local parts = {}
  ids, lens = {}, {}
  for i, it in ipairs(items) do
    parts[i] = (same[it] and raws[it.id]) or cjson.encode(it)
    ids[i] = it.id
    lens[i] = #parts[i]
  end
  new_items = '[' .. table.concat(parts, ',') .. ']'
end

-- The last check, still before the first write.
if #new_items > max_plan then return too_large('plan', #new_items, max_plan) end

version = version + 1
if not keep_ids then
  local encoded_ids = {}
  for i, id in ipairs(ids) do encoded_ids[i] = cjson.encode(id) end
  keep_ids = '[' .. table.concat(encoded_ids, ',') .. ']'
end
local index_json = '{"v":' .. version .. ',"ids":' .. keep_ids
  .. ',"lens":[' .. table.concat(lens, ',') .. ']}'
local detail_json = '{}'
if next(detail) ~= nil then detail_json = cjson.encode(detail) end
-- The log entry first: XADD is the write that can still fail (the log key holds another
-- type, or a stream whose last id is the largest possible), and a failing redis.call ends
-- the script without undoing earlier writes. Written after the HSET, such a failure left the
-- plan changed, the caller told it failed, and no op record (the wrapper records replies
-- only), so a retry with the same op id applied it again. The HSET after it cannot fail:
-- the HMGET above proved the plan key is a hash.
redis.call('XADD', log_key, 'MAXLEN', '~', log_maxlen, '*',
  'v', version, 'op', op, 'actor', actor, 'op_id', op_id, 'item', item_id, 'detail', detail_json)
redis.call('HSET', plan_key, 'version', version, 'items', new_items, 'updated_ms', now,
  'index', index_json, 'last_op', op_id)
-- The plan as just written, for the outer script's reply (`written` is its local, see
-- MUTATE_SCRIPT in _repository.py): not part of the recorded reply. When the client knows
-- the plan as it was before this call (`known` names that state: version, last op,
-- updated_ms and byte length of `items`; all four as stored), only the change is sent back,
-- with the new length of `items`, instead of the whole plan.
if delta and known ~= '' and known == (version - 1) .. ':' .. (stored[4] or '') .. ':'
    .. (stored[5] or '') .. ':' .. #items_raw then
  written = { version, false, now, op_id, delta[1], delta[2], delta[3], #new_items }
else
  written = { version, new_items, now, op_id }
end
return { version }
