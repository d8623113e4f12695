-- ckpt_delete: delete checkpoints of one thread with their writes and unused blobs.
-- Needs thread.lua before it.
--
-- KEYS:
--   the thread's eight keys (thread.lua): idx, ns, cp, cpi, b, w, wl, runs
-- ARGV:
--   mode         'all'          the whole thread: collect up to `arg` run members per call
--                               (the runs it wrote, for the cross-thread run index), then
--                               UNLINK the eight keys in the call that finds none left
--                'run'          delete up to `arg` checkpoints that run `erun` wrote (a
--                               checkpoint left whose parent goes is left with no parent),
--                               and the writes it stored for checkpoints with no record
--                               (put_writes names the run for those)
--                'keep_check'   keep_latest's check, deleting nothing: look at up to `arg`
--                               members of the ns index after member `cursor`
--                'keep_latest'  delete, of up to `arg` members of the ns index after member
--                               `cursor`, each but the newest of its checkpoint namespace
--                               (and cut the newest's parent if it is gone); a batch with
--                               a checkpoint that uses a DeltaChannel deletes nothing;
--                               index entries whose checkpoint is gone (no record or no
--                               body) are dropped first, as a read drops them
--                'keep_gc'      after keep_latest: look at up to ~`arg` fields of the blob
--                               hash from HSCAN cursor `cursor` ('0' first) and delete those
--                               no checkpoint of their namespace names
--                'keep_wgc'     after keep_gc: look at up to ~`arg` fields of the write list
--                               hash from HSCAN cursor `cursor` ('0' first) and delete the
--                               writes of each checkpoint that has no index record and an
--                               id below its namespace's newest checkpoint (writes put_writes
--                               stored for a checkpoint never put, or deleted before they
--                               landed); one above it may await its put (kept)
--                'leftover'     a thread with no checkpoint index (sweep_threads): UNLINK
--                               its seven other keys, which no read can reach; a thread
--                               with an index is left as it is
--   arg          see mode (a positive count)
--   erun         the encoded run id ('run'); the cursor (keep_*; '' = from the first
--                member); '' otherwise
-- Every delete of a checkpoint's writes takes the run members that name them (orphan
-- writes: see thread.lua's orphans_field), so no member is left naming nothing.
-- Returns {checkpoints deleted ('run': run members taken off, each with its checkpoint if
-- one is behind it; fewer than `arg` when the run has none left), checkpoints left in the
-- thread (for 'all': run members left), then ('all') erun of each run seen... or ('run')
-- erun of each other run this call took the last member of in the thread...}; 'keep_check'
-- and 'keep_latest': {-1 if the batch has a DeltaChannel checkpoint (then '') else
-- checkpoints deleted, the cursor to go on from ('' when done), erun of each run this call
-- took the last member of in the thread...}; 'keep_gc': {blobs deleted, the next HSCAN
-- cursor ('0' when done)}; 'keep_wgc': {write lists deleted, the next HSCAN cursor, erun of
-- each run this call took the last member of...};
-- 'leftover': {keys unlinked, 1 if the thread has an index
-- (nothing unlinked) else 0}. Each keep_* call is atomic, and a call sent again (a lost
-- reply) finds its work done and goes on from the same place.
-- Errors: 'INVALID unknown delete mode' (nothing deleted); 'CORRUPT ...' when an index
--   record or a write list is not ours.

local mode, arg, erun0 = ARGV[1], ARGV[2], ARGV[3]
local touched = {}
local runs = {}
local deleted = 0
local taken = nil
local dropped = {}
-- Checkpoint f's writes go: the members of the runs that stored them while f had no record
-- go with them (orphans_field names those runs), or each stayed naming nothing, for good,
-- and a later delete_for_runs of its run took the writes another run stored under the same
-- id meanwhile for that run's own, and deleted them.
local function drop_writes(f, cid, ecns)
  for _, name in ipairs(write_names(f)) do redis.call('HDEL', w_key, f .. '\t' .. name) end
  redis.call('HDEL', wl_key, f)
  for _, erun in ipairs(orphan_runs(f)) do
    redis.call('ZREM', runs_key, erun .. '\t' .. cid .. '\t' .. ecns)
    runs[erun] = true
  end
  redis.call('HDEL', w_key, orphans_field(f))
end
local function drop(cid, ecns)
  local f = ecns .. '\t' .. cid
  local rec = record(f)
  dropped[ecns] = dropped[ecns] or {}
  dropped[ecns][cid] = true
  if rec then
    touched[ecns] = touched[ecns] or {}
    for _, ref in ipairs(rec[2]) do touched[ecns][ref] = true end
    if rec[3] ~= '' then
      redis.call('ZREM', runs_key, rec[3] .. '\t' .. cid .. '\t' .. ecns)
      runs[rec[3]] = true
    end
  end
  drop_writes(f, cid, ecns)
  redis.call('HDEL', cp_key, f)
  redis.call('HDEL', cpi_key, f)
  redis.call('ZREM', idx_key, cid .. '\t' .. ecns)
  redis.call('ZREM', ns_key, f)
  deleted = deleted + 1
end
-- A kept checkpoint whose parent went is left with no parent, as PostgresSaver's prune
-- leaves it: a parent_config naming a deleted checkpoint reads as an empty state. The
-- record is the client's msgpack [parent, refs, erun, filters] (fixarray 4, parent a raw
-- string): its parent is cut out of the bytes, the rest kept as written (cmsgpack would
-- pack empty filters as an array).
local function cut_parent(f, ecns)
  local rec, raw = record(f)
  if rec and rec[1] ~= '' and redis.call('HEXISTS', cpi_key, ecns .. '\t' .. rec[1]) == 0 then
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
    redis.call('HSET', cpi_key, f, '\148\160' .. string.sub(raw, 2 + size))
  end
end
-- The runs this call took members of that have none left in the thread (but `but`): the
-- client takes the thread's name off their cross-thread index, then looks again (a put of
-- the run meanwhile names it back), as delete_for_runs does for its own run.
local function runs_gone(out, but)
  for erun in pairs(runs) do
    if erun ~= but and #redis.call('ZRANGE', runs_key, '[' .. erun .. '\t', '(' .. erun .. '\n',
        'BYLEX', 'LIMIT', 0, 1) == 0 then
      out[#out + 1] = erun
    end
  end
  return out
end
-- whether byte string a sorts before b (Lua's '<' follows the server's LC_COLLATE locale;
-- the indexes sort by bytes)
local function below(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
if mode == 'leftover' then
  -- What a write left in a thread that has no checkpoint: the HSET (HSETNX) that a MULTI
  -- ran before a script that never did (NOSCRIPT, then a failed fallback call) on a new
  -- thread. No read reaches it and, with no TTL, nothing deleted it. Checked and removed
  -- in one call: a put that creates the thread meanwhile writes its index with its
  -- values (and a fallback still to come sends them all again).
  if redis.call('EXISTS', idx_key) == 1 then return {0, 1} end
  return {redis.call('UNLINK', ns_key, cp_key, cpi_key, blob_key, w_key, wl_key, runs_key), 0}
elseif mode == 'all' then
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
    if tab then
      -- put_writes names the run of writes whose checkpoint has no record yet (orphans
      -- until their put lands): a put that then landed under another run's id made the
      -- checkpoint that run's, and this member is stale (taken off, nothing deleted)
      local cid, ecns = string.sub(rest, 1, tab - 1), string.sub(rest, tab + 1)
      local f = ecns .. '\t' .. cid
      local rec = record(f)
      if not rec or rec[3] == erun0 then
        drop(cid, ecns)
      else
        -- no longer erun0's member: off the list of runs that name f's writes
        local eruns, left = orphan_runs(f), {}
        for _, erun in ipairs(eruns) do
          if erun ~= erun0 then left[#left + 1] = erun end
        end
        if #left == 0 then
          redis.call('HDEL', w_key, orphans_field(f))
        elseif #left < #eruns then
          redis.call('HSET', w_key, orphans_field(f), cmsgpack.pack(left))
        end
      end
    end
  end
  taken = #members
elseif mode == 'keep_check' or mode == 'keep_latest' then
  -- Bounded: `arg` members of the ns index per call, after member `erun0` ('' = from the
  -- first); the caller loops on the cursor returned. ns members sort by namespace, then
  -- id: a member followed by one of its own namespace is not the newest (one more member
  -- is read to tell for the batch's last).
  local batch = tonumber(arg)
  local lo = erun0 == '' and '-' or '(' .. erun0
  local members, n, cursor, recs
  while true do
    members = redis.call('ZRANGE', ns_key, lo, '+', 'BYLEX', 'LIMIT', 0, batch + 1)
    n = math.min(#members, batch)
    cursor = #members > batch and members[batch] or ''
    -- A DeltaChannel rebuilds its value from the ancestors' writes back to a snapshot:
    -- with them deleted it silently comes back empty. LangGraph marks such checkpoints in
    -- their metadata (PostgresSaver refuses the same threads by the same keys). Checked
    -- before the batch deletes anything, so a refused batch deletes nothing.
    recs = {}
    local stale = false
    for i = 1, #members do
      local rec = record(members[i])
      if i <= n and rec and (rec[4]['counters_since_delta_snapshot'] ~= nil
          or rec[4]['delta_writes_versioned'] ~= nil) then
        return {-1, ''}
      end
      -- an entry whose checkpoint is gone (as a read finds it: no record or no body)
      if not rec or redis.call('HEXISTS', cp_key, members[i]) == 0 then rec = false end
      recs[i] = rec
      stale = stale or not rec
    end
    if mode == 'keep_check' or not stale then break end
    -- Stale entries are no checkpoint: taken as the newest of their namespace, one kept
    -- itself and had every real checkpoint before it deleted (the thread came back empty).
    -- They go, as a read drops them, and the window is read again (each pass drops one
    -- or more, so this ends).
    for i = 1, #members do
      if not recs[i] then
        local tab = string.find(members[i], '\t', 1, true)
        if tab then
          drop(string.sub(members[i], tab + 1), string.sub(members[i], 1, tab - 1))
        else
          redis.call('ZREM', ns_key, members[i])
        end
      end
    end
  end
  if mode == 'keep_check' then return {0, cursor} end
  for i = 1, n do
    local member = members[i]
    local tab = string.find(member, '\t', 1, true)
    if tab then
      local ecns = string.sub(member, 1, tab - 1)
      local following = members[i + 1]
      if following and string.sub(following, 1, tab) == ecns .. '\t' then
        drop(string.sub(member, tab + 1), ecns)
      elseif recs[i] then
        cut_parent(member, ecns)
      end
    end
  end
  return runs_gone({deleted, cursor})
elseif mode == 'keep_gc' then
  -- keep_latest's blobs, after its batches: `arg` fields of the blob hash per call from
  -- HSCAN cursor `erun0` ('0' first); a blob no checkpoint of its namespace names goes.
  -- Puts write a blob and the record naming it in one script (or MULTI), so a blob seen
  -- here with no record naming it is named by none, and can never be read.
  local scan = redis.call('HSCAN', blob_key, erun0, 'COUNT', tonumber(arg))
  local named, gone = {}, 0
  for i = 1, #scan[2], 2 do
    local field = scan[2][i]
    local tab = string.find(field, '\t', 1, true)
    if tab then
      local ecns = string.sub(field, 1, tab - 1)
      local refs = named[ecns]
      if not refs then
        refs = {}
        local kept = redis.call(
          'ZRANGE', ns_key, '[' .. ecns .. '\t', '(' .. ecns .. '\n', 'BYLEX')
        for _, member in ipairs(kept) do
          local rec = record(member)
          if rec then
            for _, ref in ipairs(rec[2]) do refs[ref] = true end
          end
        end
        named[ecns] = refs
      end
      if not refs[string.sub(field, tab + 1)] then
        redis.call('HDEL', blob_key, field)
        gone = gone + 1
      end
    end
  end
  return {gone, scan[1]}
elseif mode == 'keep_wgc' then
  -- Writes of a checkpoint with no record: put_writes stores them for any id it is given,
  -- and no index names them, so nothing but the thread's TTL or delete reached them. A
  -- checkpoint namespace's puts land in id order (LangGraph chains them), while a step's
  -- writes may land before its checkpoint's put: an id below the namespace's newest
  -- checkpoint will never be put (or was deleted), one above it may still come.
  local scan = redis.call('HSCAN', wl_key, erun0, 'COUNT', tonumber(arg))
  local newest, gone = {}, 0
  for i = 1, #scan[2], 2 do
    local f = scan[2][i]
    local tab = string.find(f, '\t', 1, true)
    if tab and redis.call('HEXISTS', cpi_key, f) == 0 then
      local ecns = string.sub(f, 1, tab - 1)
      local top = newest[ecns]
      if top == nil then
        top = redis.call('ZRANGE', ns_key, '(' .. ecns .. '\n', '[' .. ecns .. '\t', 'BYLEX',
          'REV', 'LIMIT', 0, 1)[1] or false
        newest[ecns] = top
      end
      if top and below(f, top) then
        drop_writes(f, string.sub(f, tab + 1), ecns)
        gone = gone + 1
      end
    end
  end
  return runs_gone({gone, scan[1]})
else
  return redis.error_reply('INVALID unknown delete mode')
end
-- a blob may be shared by checkpoints of one namespace: keep those still referenced; and
-- a checkpoint left whose parent this call deleted is left with no parent, as keep_latest
-- (and PostgresSaver's prune) leaves one: InMemorySaver has no delete_for_runs to follow,
-- and a parent_config naming a deleted checkpoint reads as an empty state
for ecns, refs in pairs(touched) do
  local kept = redis.call('ZRANGE', ns_key, '[' .. ecns .. '\t', '(' .. ecns .. '\n', 'BYLEX')
  for _, member in ipairs(kept) do
    local rec = record(member)
    if rec then
      for _, ref in ipairs(rec[2]) do refs[ref] = nil end
      if rec[1] ~= '' and dropped[ecns][rec[1]] then cut_parent(member, ecns) end
    end
  end
  for ref in pairs(refs) do redis.call('HDEL', blob_key, ecns .. '\t' .. ref) end
end
return runs_gone({taken or deleted, redis.call('ZCARD', idx_key)}, erun0)
