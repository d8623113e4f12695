-- unlink_dirs.lua (helper of fs_delete and fs_purge, listed before their own file):
-- unlink_dirs(keys, argv, pos, key_base) removes one path from its directory hashes.
--   keys, argv   the script's keys and arguments (the body's shifted tables in fs_delete)
--   pos          where the path's D (number of directory hashes) is in argv; D pairs
--                follow: the index of a directory hash in keys, counted after key_base,
--                and the path's field in it (parent first, then each ancestor)
-- The parent loses the path's field; each ancestor's count of files below it drops by one,
-- and the field goes when no file is left below. Returns the position after the pairs.
local function unlink_dirs(keys, argv, pos, key_base)
  local dcount = tonumber(argv[pos])
  for j = 0, dcount - 1 do
    local key = keys[key_base + tonumber(argv[pos + 1 + 2 * j])]
    local field = argv[pos + 2 + 2 * j]
    if j == 0 then
      redis.call('HDEL', key, field)
    elseif redis.call('HINCRBY', key, field, -1) <= 0 then
      redis.call('HDEL', key, field)
    end
  end
  return pos + 1 + 2 * dcount
end
