-- expire.lua (helper of ckpt_put, ckpt_put_writes and ckpt_read, listed after thread.lua):
-- expire_thread(ttl) sets the lifetime of the whole thread: its eight keys expire together
-- (PEXPIRE of a missing key does nothing).
local function expire_thread(ttl)
  redis.call('PEXPIRE', idx_key, ttl)
  redis.call('PEXPIRE', ns_key, ttl)
  redis.call('PEXPIRE', cp_key, ttl)
  redis.call('PEXPIRE', cpi_key, ttl)
  redis.call('PEXPIRE', blob_key, ttl)
  redis.call('PEXPIRE', w_key, ttl)
  redis.call('PEXPIRE', wl_key, ttl)
  redis.call('PEXPIRE', runs_key, ttl)
end
