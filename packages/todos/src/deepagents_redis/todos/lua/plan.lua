-- Shared helper of todos_read and todos_mutate's outer script: the plan, as one reply.
-- read_plan(plan_key) -> {version, items_json, updated_ms, last_op}: items_json is the plan's
-- items as one JSON array in plan order (assembled from order and the i:<id> fields; a plan
-- in the old layout has it stored as `items`, which wins), so the client decodes one string
-- (redis-py's pure-Python reply parser costs about a microsecond per array element: a
-- field/value array of a 10-item plan cost more than the script). Missing fields are false.
local function read_plan(plan_key)
  local p = redis.call('HMGET', plan_key, 'version', 'items', 'updated_ms', 'order', 'last_op')
  local items = p[2]
  if not items and p[4] then
    local ids = cjson.decode(p[4])
    local names, values = {}, {}
    for i, id in ipairs(ids) do names[i] = 'i:' .. id end
    -- In chunks: Lua's unpack has a stack limit.
    for start = 1, #names, 1000 do
      local got = redis.call('HMGET', plan_key, unpack(names, start, math.min(start + 999, #names)))
      for _, v in ipairs(got) do
        if v then values[#values + 1] = v end
      end
    end
    items = '[' .. table.concat(values, ',') .. ']'
  end
  return { p[1], items, p[3], p[5] }
end
