-- utf8.lua (helper of fs_edit and fs_grep, listed before their own file):
-- is_utf8(s) is true when s is valid UTF-8 as Python's strict decoder takes it (no overlong
-- forms, no surrogates, nothing past U+10FFFF): a read and the client's edit path refuse
-- anything else. Lua 5.1 has no utf8 library and a byte loop costs ~0.1 us a byte;
-- instead each shape of valid multi-byte sequence is replaced by an ASCII byte in one gsub
-- pass (the shapes' first bytes are disjoint and are no continuation bytes, so each
-- sequence of valid text matches exactly one shape, and a replacement never joins bytes
-- into a new sequence), and the text is valid once no byte >= 0x80 is left. Each pass and
-- each check scans the text (a pass ~10 ns a byte on Redis 7.0, a check ~4: ASCII text
-- costs one check, 256 KiB ~1.5 ms; valid text holding every shape 7 passes and 8
-- checks): the callers bound how much text they check.
local UTF8_SHAPES = {
  '[\194-\223][\128-\191]',                      -- U+0080..U+07FF
  '[\225-\236\238\239][\128-\191][\128-\191]',   -- U+1000..U+CFFF, U+E000..U+FFFF
  '\240[\144-\191][\128-\191][\128-\191]',       -- U+10000..U+3FFFF
  '\224[\160-\191][\128-\191]',                  -- U+0800..U+0FFF
  '\237[\128-\159][\128-\191]',                  -- U+D000..U+D7FF (no surrogates)
  '[\241-\243][\128-\191][\128-\191][\128-\191]', -- U+40000..U+FFFFF
  '\244[\128-\143][\128-\191][\128-\191]',       -- U+100000..U+10FFFF
}
-- has_high_byte(s) is true when s holds a byte >= 0x80. string.byte of a slice and
-- math.max both run in C: ~4 ns a byte, where string.find(s, '[\128-\255]') takes ~10 ns
-- (Redis 7.0: 1.5 against 3.3 ms for 256 KiB). Slices of 4,000 bytes: 8,000 overflowed the
-- C stack ('string slice too long').
local function has_high_byte(s)
  for i = 1, #s, 4000 do
    if math.max(string.byte(s, i, i + 3999)) > 127 then return true end
  end
  return false
end

local function is_utf8(s)
  if not has_high_byte(s) then return true end
  for i = 1, #UTF8_SHAPES do
    s = string.gsub(s, UTF8_SHAPES[i], 'x')
    if not has_high_byte(s) then return true end
  end
  return false
end

-- Most bytes of non-ASCII text a script checks in one step (~10 ms of scans at worst);
-- larger text is left to the client.
local UTF8_CHECK_MAX = 64 * 1024
-- What a byte of non-ASCII text costs is_utf8, in bytes of ASCII text (one check): up to 7
-- passes and 8 checks, ~8x (Redis 7.0: 64 KiB of text holding every shape ~8 ms, of ASCII
-- ~1 ms). A caller that bounds the bytes it checks per call counts such text this much.
local UTF8_CHECK_COST = 8
