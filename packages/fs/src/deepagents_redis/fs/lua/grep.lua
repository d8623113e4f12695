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
--   max_bytes    content budget: once the files searched hold this many bytes, stop
--                (bounds one call's work; at least one file is always searched)
--   max_work     comparison budget: a plain find compares pat at every position where its
--                first byte occurs, up to #content * #pat per search (content 'aaa...',
--                pat 'aa...ab': 277 ms for one 250 KB file and a 125 KB pattern, the server
--                held); the files of one call may cost this much in all, and a file that
--                alone costs more is left to the client (whose search is linear)
--   max_lines    line budget: one call may walk this many lines of files holding pat, a
--                line counting 1 and a match 4 more (each line is cut out and searched, ~0.3
--                us, and a match added to the reply, ~1 us: 16 files of 131,000 short lines
--                held the server 448 ms in one call); a file whose walk would pass it has
--                its matches dropped, and is left to the next call, or to the client when it
--                alone needs more
-- Needs utf8.lua before it.
-- Returns {stop, file_index, line_number, line, ...}: stop is 0 when every file was searched;
-- k > 0 when file k is not inline (chunked or spilled), too costly to search or to check
-- for UTF-8 here, or holds a match in content that is not UTF-8, and was not searched
-- (none of its matches is in the reply): the client streams that one and calls again with
-- the files after it; -k when the content, comparison or line budget ran out before or in
-- file k (or the UTF-8 check's, before it): the client calls again from file k.
-- Binary (base64) files and files that no longer exist are skipped.
-- Errors: none of its own.

local pat = ARGV[1]
local budget = tonumber(ARGV[2])
local max_bytes = tonumber(ARGV[3])
local max_work = tonumber(ARGV[4])
local max_lines = tonumber(ARGV[5])
local walked = 0
local out = {0}
local found = 0
local searched = 0
local work = 0
local checked = 0
-- content bytes one call checks for UTF-8 at most (~10 ms of scans)
local UTF8_CALL_MAX = 1024 * 1024
for k = 1, #KEYS do
  if searched >= max_bytes then
    out[1] = -k
    return out
  end
  -- Only inline files have 'd' (a chunked or spilled write drops it), and every file has
  -- 'e'. The content is read first and the encoding only when it matters (no content, or
  -- a match to confirm): one HGET per file instead of an HMGET of both fields (a grep
  -- over 1,000 files: 14-16% less round trip time, alternated runs; fs performance pass,
  -- issue 13).
  local content = redis.call('HGET', KEYS[k], 'd')
  if not content then
    local e = redis.call('HGET', KEYS[k], 'e')
    if e and e ~= 'base64' then
      out[1] = k
      return out
    end
  else
    local cost = #content * #pat
    if cost > max_work then
      out[1] = k
      return out
    end
    if work + cost > max_work then
      out[1] = -k
      return out
    end
    work = work + cost
    searched = searched + #content
    if string.find(content, pat, 1, true)
        and redis.call('HGET', KEYS[k], 'e') ~= 'base64' then
      -- A file with a match answers only when its content is UTF-8 (another program may
      -- have stored other bytes, in a line without the match too): a read refuses such
      -- content, and grep skips the file. The check scans the content (see utf8.lua), so
      -- one call checks UTF8_CALL_MAX bytes at most, a byte of non-ASCII content counting
      -- UTF8_CHECK_COST (its gsub passes: counted as one, 16 files of 64 KiB held the
      -- server ~130 ms in one call); non-ASCII content over UTF8_CHECK_MAX, or any over
      -- UTF8_CALL_MAX, and content that is not UTF-8 are the client's, which decodes the
      -- whole file and skips it (with a warning) if it fails.
      if #content > UTF8_CALL_MAX then
        out[1] = k
        return out
      end
      if checked > 0 and checked + #content > UTF8_CALL_MAX then
        out[1] = -k
        return out
      end
      if has_high_byte(content) then  -- (stops at the first slice holding one)
        if #content > UTF8_CHECK_MAX then
          out[1] = k
          return out
        end
        if checked > 0 and checked + #content * UTF8_CHECK_COST > UTF8_CALL_MAX then
          out[1] = -k
          return out
        end
        checked = checked + #content * UTF8_CHECK_COST
        if not is_utf8(content) then
          out[1] = k
          return out
        end
      else
        checked = checked + #content
      end
      local mark, found_before, walked_before = #out, found, walked
      local pos, line_no = 1, 0
      while true do
        walked = walked + 1
        if walked > max_lines then
          -- this file's matches go; it is searched again from its first line
          for j = #out, mark + 1, -1 do out[j] = nil end
          found = found_before
          if walked_before > 0 then out[1] = -k else out[1] = k end
          return out
        end
        local s = string.find(content, '\n', pos, true)
        local line
        if s then line = string.sub(content, pos, s - 1) else line = string.sub(content, pos) end
        line_no = line_no + 1
        if string.find(line, pat, 1, true) then
          out[#out + 1] = k
          out[#out + 1] = line_no
          out[#out + 1] = line
          found = found + 1
          walked = walked + 4
          if budget >= 0 and found > budget then return out end
        end
        if not s then break end
        pos = s + 1
      end
    end
  end
end
return out
