-- thread.lua (prelude of every checkpoint script, listed first): binds the thread's eight
-- fixed keys, the only keys a checkpoint script touches (see `_keys`), and the helpers that
-- read what they hold (read-only: expire.lua has the one shared write). Data (namespaces,
-- ids, refs, runs) lives in fields and members; every key comes from KEYS, never from data.
--   KEYS[1] idx_key    zset 'cid<TAB>ecns'     KEYS[2] ns_key     zset 'ecns<TAB>cid'
--   KEYS[3] cp_key     hash body per cp        KEYS[4] cpi_key    hash index record per cp
--   KEYS[5] blob_key   hash 'ecns<TAB>ref'     KEYS[6] w_key      hash one field per write
--   KEYS[7] wl_key     hash write list per cp  KEYS[8] runs_key   zset 'erun<TAB>cid<TAB>ecns'
local idx_key, ns_key, cp_key, cpi_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local blob_key, w_key, wl_key, runs_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]

-- a stored msgpack value the client wrote, or a CORRUPT error reply (a typed
-- SerializationError for the caller) when someone else wrote those bytes
local function unpacked(raw, what)
  local ok, value = pcall(cmsgpack.unpack, raw)
  if not ok or type(value) ~= 'table' then
    error({err = 'CORRUPT ' .. what .. ' is not msgpack'})
  end
  return value
end

-- the index record of checkpoint field f ('ecns<TAB>cid') decoded, and as stored; or nil:
-- {parent cid, {blob ref...}, erun, {filter field = canonical JSON}}
local function record(f)
  local raw = redis.call('HGET', cpi_key, f)
  if not raw then return nil end
  local rec = unpacked(raw, 'a checkpoint index record')
  if type(rec[1]) ~= 'string' or type(rec[2]) ~= 'table' or type(rec[3]) ~= 'string'
      or type(rec[4]) ~= 'table' then
    error({err = 'CORRUPT a checkpoint index record has an unexpected shape'})
  end
  -- each ref is concatenated into a field name here and read as bytes by the client: a
  -- table stopped the script on a Lua error (untyped), and a number reached the client,
  -- where bytes(4000000000) allocated 4 GB
  for _, ref in ipairs(rec[2]) do
    if type(ref) ~= 'string' then
      error({err = 'CORRUPT a checkpoint index record has an unexpected shape'})
    end
  end
  return rec, raw
end

-- the 'idx<TAB>task' names of checkpoint f's writes (its write list)
local function write_names(f)
  local raw = redis.call('HGET', wl_key, f)
  if not raw then return {} end
  local names = unpacked(raw, 'a write list')
  -- each name is concatenated into a field name (a table stopped the script, untyped)
  for _, name in ipairs(names) do
    if type(name) ~= 'string' then
      error({err = 'CORRUPT a write list has an unexpected shape'})
    end
  end
  return names
end

-- The runs whose orphan writes name a member of checkpoint f in runs_key (put_writes
-- adds one for writes stored while f has no record): the field f<TAB><TAB>runs of w_key
-- (no write's name starts with a tab: '<idx><TAB><task>'), a cmsgpack array of eruns. A
-- member's run is its first part, so without it the delete of f's writes could not find
-- the members naming them (a walk of the whole run index); it goes with f's writes.
local function orphans_field(f) return f .. '\t\truns' end

-- the eruns of checkpoint f's orphan writes (see orphans_field)
local function orphan_runs(f)
  local raw = redis.call('HGET', w_key, orphans_field(f))
  if not raw then return {} end
  local eruns = unpacked(raw, 'a list of runs')
  for _, erun in ipairs(eruns) do
    if type(erun) ~= 'string' then
      error({err = 'CORRUPT a list of runs has an unexpected shape'})
    end
  end
  return eruns
end

-- checkpoint f's writes, flat {'idx<TAB>task', value, ...}, O(its writes)
local function writes_of(f)
  local names = write_names(f)
  local out = {}
  for first = 1, #names, 500 do
    local fields = {}
    for i = first, math.min(first + 499, #names) do fields[#fields + 1] = f .. '\t' .. names[i] end
    local values = redis.call('HMGET', w_key, unpack(fields))
    for i, value in ipairs(values) do
      if value then
        out[#out + 1] = names[first + i - 1]
        out[#out + 1] = value
      end
    end
  end
  return out
end

-- the blobs of refs in namespace ecns, aligned with refs ('' for a missing one)
local function blobs_of(ecns, refs)
  local out = {}
  for first = 1, #refs, 500 do
    local fields = {}
    for i = first, math.min(first + 499, #refs) do fields[#fields + 1] = ecns .. '\t' .. refs[i] end
    for _, value in ipairs(redis.call('HMGET', blob_key, unpack(fields))) do
      out[#out + 1] = value or ''
    end
  end
  return out
end
