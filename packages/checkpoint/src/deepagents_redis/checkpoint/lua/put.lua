-- ckpt_put: store one checkpoint with its new blobs and index entries, atomically.
-- Needs expire_refs.lua before it.
--
-- KEYS:
--   index_key    the thread's index (zset 'cid<TAB>ecns'); every other key is the thread
--                head (ARGV head) plus a suffix, so it shares this key's hash tag and slot
-- ARGV:
--   head         the thread's key head
--   ecns         the encoded checkpoint namespace
--   cid          the checkpoint id
--   ttl          TTL in ms ('' = none)
--   erun         the encoded run id ('' = none)
--   refs         blob refs of every channel version ('\n'-joined)
--   nf, nb       F hash fields and B blobs that follow
--   ARGV[9..]    F field/value pairs of the checkpoint hash, then B ref/value pairs of blobs
-- Returns 1.
-- Errors: OOM from core's deny_oom probe when the server is full (before any write).

local index_key = KEYS[1]
local head, ecns, cid, ttl, erun = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local refs = ARGV[6]
local nf, nb = tonumber(ARGV[7]), tonumber(ARGV[8])
local cp = head .. ':cp:' .. ecns .. ':' .. cid
local nsidx = head .. ':ns:' .. ecns
local member = cid .. '\t' .. ecns
-- a full server refuses this script here, before it writes (core's deny_oom)
redis.call('SETRANGE', index_key .. ':oom-probe', 0, '')
redis.call('DEL', cp)
local i = 9
for _ = 1, nf do
  redis.call('HSET', cp, ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('HSET', cp, 'bk', refs)
for _ = 1, nb do
  local key = head .. ':b:' .. ecns .. ':' .. ARGV[i]
  if ttl ~= '' then
    redis.call('SET', key, ARGV[i + 1], 'PX', ttl)
  else
    redis.call('SET', key, ARGV[i + 1])
  end
  i = i + 2
end
redis.call('ZADD', index_key, 0, member)
redis.call('ZADD', nsidx, 0, cid)
local runkey = nil
if erun ~= '' then
  runkey = head .. ':run:' .. erun
  redis.call('SADD', runkey, member)
end
if ttl ~= '' then
  redis.call('PEXPIRE', cp, ttl)
  redis.call('PEXPIRE', index_key, ttl)
  redis.call('PEXPIRE', nsidx, ttl)
  redis.call('PEXPIRE', head .. ':w:' .. ecns .. ':' .. cid, ttl)
  if runkey then redis.call('PEXPIRE', runkey, ttl) end
  -- blobs this checkpoint still uses (written by earlier puts) live as long as it does
  expire_refs(head, ecns, refs, ttl)
end
return 1
