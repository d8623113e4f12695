-- ckpt_delete: delete checkpoints of one thread with their writes and unused blobs.
-- Needs thread.lua before it.
--
-- KEYS:
--   the thread's eight keys (thread.lua): idx, ns, cp, cpi, b, w, wl, runs
-- ARGV:
--   mode         'all'          the whole thread: collect up to `arg` run members per call
--                               (the runs it wrote, for the cross-thread run index), then
--                               UNLINK the eight keys in the call that finds none left
--                'run'          delete up to `arg` checkpoints that run `erun` wrote
--                'keep_latest'  delete all but the newest checkpoint of each checkpoint
--                               namespace; `arg` 'check': delete nothing (a batch's check
--                               before it prunes); a thread that uses a DeltaChannel is
--                               never pruned (see below)
--   arg          see mode
--   erun         the encoded run id ('run'; '' otherwise)
-- Returns {checkpoints deleted ('run': run members taken off, each with its checkpoint if
-- one is behind it; fewer than `arg` when the run has none left), checkpoints left in the
-- thread (for 'all': run members left), erun of each run seen...}; 'keep_latest' of a
-- thread that uses a DeltaChannel (or with 'check'): {-1 if it does else 0, checkpoints
-- in the thread}.
-- Errors: 'INVALID unknown delete mode' (nothing deleted); 'CORRUPT ...' when an index
--   record or a write list is not ours.

local mode, arg, erun0 = ARGV[1], ARGV[2], ARGV[3]
local touched = {}
local runs = {}
local deleted = 0
local taken = nil
local function drop(cid, ecns)
  local f = ecns .. '\t' .. cid
  local rec = record(f)
  if rec then
    touched[ecns] = touched[ecns] or {}
    for _, ref in ipairs(rec[2]) do touched[ecns][ref] = true end
    if rec[3] ~= '' then
      redis.call('ZREM', runs_key, rec[3] .. '\t' .. cid .. '\t' .. ecns)
      runs[rec[3]] = true
    end
  end
  for _, name in ipairs(write_names(f)) do redis.call('HDEL', w_key, f .. '\t' .. name) end
  redis.call('HDEL', wl_key, f)
  redis.call('HDEL', cp_key, f)
  redis.call('HDEL', cpi_key, f)
  redis.call('ZREM', idx_key, cid .. '\t' .. ecns)
  redis.call('ZREM', ns_key, f)
  deleted = deleted + 1
end
if mode == 'all' then
  -- a thread is eight keys: what needs a walk is only the runs it names (for the caller's
  -- cross-thread run index), taken in bounded batches; then UNLINK (freed off the main thread)
  local batch = tonumber(arg)
  for _, member in ipairs(redis.call('ZRANGE', runs_key, 0, batch - 1)) do
    -- a member without its tab is not ours: it names no run to clean (UNLINKed below)
    local tab = string.find(member, '\t', 1, true)
    if tab then runs[string.sub(member, 1, tab - 1)] = true end
  end
  redis.call('ZREMRANGEBYRANK', runs_key, 0, batch - 1)
  local left = redis.call('ZCARD', runs_key)
  if left == 0 then
    deleted = redis.call('ZCARD', idx_key)
    redis.call('UNLINK', idx_key, ns_key, cp_key, cpi_key, blob_key, w_key, wl_key, runs_key)
  end
  local out = {deleted, left}
  for erun in pairs(runs) do out[#out + 1] = erun end
  return out
elseif mode == 'run' then
  -- the run's members are the lex range ['erun<TAB>', 'erun<LF>')
  local lo, hi = '[' .. erun0 .. '\t', '(' .. erun0 .. '\n'
  local members = redis.call('ZRANGE', runs_key, lo, hi, 'BYLEX', 'LIMIT', 0, tonumber(arg))
  for _, member in ipairs(members) do
    -- Every member looked at leaves the range, whatever is behind it: drop() takes off
    -- the member its checkpoint's record names, and a member with no record behind it
    -- (or not of our shape) stayed, so the caller's loop ran again on it without end.
    redis.call('ZREM', runs_key, member)
    local rest = string.sub(member, #erun0 + 2)
    local tab = string.find(rest, '\t', 1, true)
    if tab then drop(string.sub(rest, 1, tab - 1), string.sub(rest, tab + 1)) end
  end
  taken = #members
elseif mode == 'keep_latest' then
  -- ns members sort by namespace, then id: each namespace's newest is its last member
  local members = redis.call('ZRANGE', ns_key, 0, -1)
  -- A DeltaChannel rebuilds its value from the ancestors' writes back to a snapshot: with
  -- them deleted it silently comes back empty. LangGraph marks such checkpoints in their
  -- metadata (PostgresSaver refuses the same threads by the same keys).
  for _, member in ipairs(members) do
    local rec = record(member)
    if rec and (rec[4]['counters_since_delta_snapshot'] ~= nil
        or rec[4]['delta_writes_versioned'] ~= nil) then
      return {-1, #members}
    end
  end
  if arg == 'check' then return {0, #members} end
  local kept = {}
  for i, member in ipairs(members) do
    local tab = string.find(member, '\t', 1, true)
    local ecns = string.sub(member, 1, tab - 1)
    local following = members[i + 1]
    if following and string.sub(following, 1, tab) == ecns .. '\t' then
      drop(string.sub(member, tab + 1), ecns)
    else
      kept[#kept + 1] = {member, ecns}
    end
  end
  -- A kept checkpoint whose parent went is left with no parent, as PostgresSaver's prune
  -- leaves it: a parent_config naming a deleted checkpoint reads as an empty state. The
  -- record is the client's msgpack [parent, refs, erun, filters] (fixarray 4, parent a
  -- raw string): its parent is cut out of the bytes, the rest kept as written (cmsgpack
  -- would pack empty filters as an array).
  for _, pair in ipairs(kept) do
    local rec, raw = record(pair[1])
    if rec and rec[1] ~= ''
        and redis.call('HEXISTS', cpi_key, pair[2] .. '\t' .. rec[1]) == 0 then
      local head, size = string.byte(raw, 2), nil
      if string.byte(raw, 1) == 0x94 and head >= 0xa0 and head <= 0xbf then
        size = 1 + head - 0xa0
      elseif string.byte(raw, 1) == 0x94 and head == 0xd9 then
        size = 2 + string.byte(raw, 3)
      elseif string.byte(raw, 1) == 0x94 and head == 0xda then
        size = 3 + string.byte(raw, 3) * 256 + string.byte(raw, 4)
      else
        error({err = 'CORRUPT a checkpoint index record has an unexpected shape'})
      end
      redis.call('HSET', cpi_key, pair[1], '\148\160' .. string.sub(raw, 2 + size))
    end
  end
else
  return redis.error_reply('INVALID unknown delete mode')
end
-- a blob may be shared by checkpoints of one namespace: keep those still referenced
for ecns, refs in pairs(touched) do
  local kept = redis.call('ZRANGE', ns_key, '[' .. ecns .. '\t', '(' .. ecns .. '\n', 'BYLEX')
  for _, member in ipairs(kept) do
    local rec = record(member)
    if rec then
      for _, ref in ipairs(rec[2]) do refs[ref] = nil end
    end
  end
  for ref in pairs(refs) do redis.call('HDEL', blob_key, ecns .. '\t' .. ref) end
end
local out = {taken or deleted, redis.call('ZCARD', idx_key)}
for erun in pairs(runs) do out[#out + 1] = erun end
return out
