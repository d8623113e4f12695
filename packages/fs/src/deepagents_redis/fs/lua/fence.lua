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
-- Returns 1 when the fence holds (op_key holds `fence` and nothing names the blob: the
-- commit never applied, and one that reaches Redis later replays the fence and applies
-- nothing), else 0 (the commit applied or its record is there: keep the blob). A re-run
-- finds its own fence and answers the same.
-- Errors: none of its own; OOM when the server is full (its one write is the SET).

local op_key, meta_key, blobs_key = KEYS[1], KEYS[2], KEYS[3]
local fence, ttl, ref = ARGV[1], ARGV[2], ARGV[3]

if redis.call('HGET', meta_key, 'b') == ref then return 0 end
if redis.call('ZSCORE', blobs_key, ref) then return 0 end
local cur = redis.call('GET', op_key)
if cur then
  if cur == fence then return 1 end
  return 0
end
redis.call('SET', op_key, fence, 'PX', ttl)
return 1
