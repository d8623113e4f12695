-- prefix_end.lua (helper of fs_list and fs_delete, listed before their own file):
-- prefix_end(p) is ZRANGEBYLEX's exclusive upper bound of the members that start with p:
-- p with its trailing 0xff bytes cut and its last byte then raised by one, or '+' (no end)
-- when p is empty or all 0xff. `'(' .. p .. '\255'` left out every member whose byte after
-- p is 0xff: no UTF-8 path has one, so only members another program stored (or damaged
-- ones), which a listing must meet and refuse, not pass over in silence.
local function prefix_end(p)
  local i = #p
  while i > 0 and string.byte(p, i) == 255 do i = i - 1 end
  if i == 0 then return '+' end
  return '(' .. string.sub(p, 1, i - 1) .. string.char(string.byte(p, i) + 1)
end
