-- expire_refs.lua (helper of ckpt_put and ckpt_read, listed before their own file):
-- expire_refs(head, ecns, refs, ttl) sets the TTL of each blob a checkpoint uses, so blobs
-- written by earlier puts live as long as the checkpoints that still use them.
--   head   the thread's key head   ecns   the encoded checkpoint namespace
--   refs   the checkpoint's blob refs ('\n'-joined; nil or '' = none)   ttl   TTL in ms
local function expire_refs(head, ecns, refs, ttl)
  for ref in string.gmatch(refs or '', '[^\n]+') do
    redis.call('PEXPIRE', head .. ':b:' .. ecns .. ':' .. ref, ttl)
  end
end
