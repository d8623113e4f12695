-- fs_grep: search inline text files in Redis so only matching lines travel. Lines are the
-- pieces of content split on '\n' (like Python's str.split), matched with a plain find: on
-- valid UTF-8 this is exactly Python's `pattern in line`.
--
-- KEYS (all in the namespace's hash tag, so one Cluster slot):
--   KEYS[1..N]   meta hashes of candidate files, in path order
-- ARGV:
--   pat          literal pattern
--   budget       match budget: stop once more than this many matches were found
--                (-1 = no limit)
-- Returns {stop, file_index, line_number, line, ...}: stop is 0 when every file was searched,
-- else the index of the first file that is not inline (chunked or spilled) and was not
-- searched; the client streams that one and calls again with the files after it.
-- Binary (base64) files and files that no longer exist are skipped.
-- Errors: none of its own.

local pat = ARGV[1]
local budget = tonumber(ARGV[2])
local out = {0}
local found = 0
for k = 1, #KEYS do
  local m = redis.call('HMGET', KEYS[k], 'n', 'b', 'e', 'd')
  if m[1] and m[3] ~= 'base64' then
    if tonumber(m[1]) > 0 or (m[2] and m[2] ~= '') then
      out[1] = k
      return out
    end
    local content = m[4] or ''
    if string.find(content, pat, 1, true) then
      local pos, line_no = 1, 0
      while true do
        local s = string.find(content, '\n', pos, true)
        local line
        if s then line = string.sub(content, pos, s - 1) else line = string.sub(content, pos) end
        line_no = line_no + 1
        if string.find(line, pat, 1, true) then
          out[#out + 1] = k
          out[#out + 1] = line_no
          out[#out + 1] = line
          found = found + 1
          if budget >= 0 and found > budget then return out end
        end
        if not s then break end
        pos = s + 1
      end
    end
  end
end
return out
