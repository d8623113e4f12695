-- gen.lua (helper of every cache script that reads a namespace's generation, listed before
-- them): generation(gen_key) is the namespace's current generation as text, '0' when the
-- counter is absent or empty. The Python reads (the plain-read hit path, the node cache's
-- MGET) take an empty counter as '0' too: the scripts read it as the generation '', wrote
-- entries as ':<envelope>', and each side missed what the other wrote.
local function generation(gen_key)
  local gen = redis.call('GET', gen_key)
  if not gen or gen == '' then
    return '0'
  end
  return gen
end
