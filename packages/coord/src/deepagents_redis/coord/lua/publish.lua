-- coord_publish: append an event to a topic, once per idempotency key.
--
-- KEYS (one topic's keys: one hash tag):
--   topic_key      topic stream
--   record_key     idempotency record: the entry id of the first publish with the key
-- ARGV:
--   event          the event (codec bytes)
--   maxlen         approximate length cap of the topic stream
--   record_ttl_ms  TTL of the idempotency record in ms
--   keyed          '1' when the event has an idempotency key (the client sends an unkeyed
--                  event as a plain XADD of the same fields, without this script)
-- Returns the entry id (the first one's, for a repeated key).
-- Errors: none of its own.

local topic_key, record_key = KEYS[1], KEYS[2]
local event, maxlen, record_ttl_ms, keyed = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

if keyed == '1' then
  local prev = redis.call('GET', record_key)
  if prev then return prev end
end
local id = redis.call('XADD', topic_key, 'MAXLEN', '~', maxlen, '*', 'e', event)
if keyed == '1' then redis.call('SET', record_key, id, 'PX', record_ttl_ms) end
return id
