-- fs_fence: fence the op id of a spilled write whose commit failed, unless that commit
-- applied, so the write's blob can be deleted safely.
-- A failed spilled write deletes its blob after the call only when its commit never applied
-- and never will. The op-id record alone cannot tell: it expires after the op TTL (10
-- minutes), and a cleanup that runs later (the next call of an idle backend) would find no
-- record of a commit that did apply. The lasting facts are checked instead: the file's meta
-- names the blob ('b'), or the blobs set holds it (from the commit until a later write
-- replaces it or gc claims it after its file's expiry and grace).
--
-- KEYS (all in the namespace's hash tag, so one Cluster slot):
--   op_key       the write's op-id key (core's idempotent wrapper records the reply there)
--   meta_key     the file's meta hash (m:<path>)
--   blobs_key    sorted set blob ref -> when it may be deleted
-- ARGV:
--   fence        the record put under op_key (the wrapper's format; never a real reply)
--   ttl          its TTL in ms (the op TTL)
--   ref          the write's blob ref
-- Returns 1 when the blob may go: nothing names it and either the fence holds (op_key
-- holds `fence`: the commit never applied, and one that reaches Redis later replays the
-- fence and applies nothing) or op_key holds the commit's own CONFLICT record (it wrote
-- nothing, and a replay returns the record and writes nothing; the record's lifetime is
-- pushed to `ttl` from now, as long as a fence would live, unless it has none). Else 0
-- (the commit applied, or a record that is no CONFLICT is there: keep the blob). A re-run
-- answers the same.
-- Errors: none of its own; OOM when the server is full (its writes are the SET, PEXPIRE).

local op_key, meta_key, blobs_key = KEYS[1], KEYS[2], KEYS[3]
local fence, ttl, ref = ARGV[1], ARGV[2], ARGV[3]

if redis.call('HGET', meta_key, 'b') == ref then return 0 end
if redis.call('ZSCORE', blobs_key, ref) then return 0 end
local cur = redis.call('GET', op_key)
if cur then
  if cur == fence then return 1 end
  -- the idempotent wrapper's record: cmsgpack of {reply}; write.lua's CONFLICT reply is
  -- {'CONFLICT', actual}, returned before its first write
  local ok, rec = pcall(cmsgpack.unpack, cur)
  if ok and type(rec) == 'table' and type(rec[1]) == 'table' and rec[1][1] == 'CONFLICT' then
    local left = redis.call('PTTL', op_key)
    if left >= 0 and left < tonumber(ttl) then redis.call('PEXPIRE', op_key, ttl) end
    return 1
  end
  return 0
end
redis.call('SET', op_key, fence, 'PX', ttl)
return 1
