"""The coord phase's Lua scripts, each headed by its contract (BRIEF §3 "Lua").

Task scripts touch only one task's keys (one hash tag), queue scripts only one agent's queue.
Every write about a running task passes the **fencing token** the claim handed out; a worker
whose lease was taken over gets ``FENCED <current token>`` and changes nothing. Times come
from the server (``TIME``), so workers' clocks may disagree without shortening a lease.
Events are encoded by the caller (core's codec, keyed by the events stream) and appended by
the script only when its transition applies.
"""

from __future__ import annotations

from typing import Final

from deepagents_redis.core import IdempotentScript, LuaScript

__all__ = [
    "ABANDON",
    "ACK",
    "ACK_PLAIN",
    "CANCEL",
    "CLAIM",
    "CREATE",
    "ENQUEUE",
    "EVENT",
    "FINISH",
    "GROUP",
    "HANDBACK",
    "HEARTBEAT",
    "PROMOTE",
    "PUBLISH",
    "RESET",
    "SEND",
    "TERMINAL",
]

TERMINAL: Final = frozenset({"success", "error", "cancelled", "timeout"})
"""Statuses a task never leaves."""

_NOW = """\
local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
"""

_TERMINAL = """\
local terminal = {success = true, error = true, cancelled = true, timeout = true}
"""

CREATE: Final = LuaScript(
    "coord_create",
    """\
-- coord_create: create a task record once (idempotent by construction).
-- KEYS[1] task record hash   KEYS[2] task events stream
-- ARGV[1] agent   ARGV[2] input (codec bytes)   ARGV[3] digest of agent + input
-- ARGV[4] max attempts   ARGV[5] 'submitted' event   ARGV[6] events maxlen
-- ARGV[7] run timeout seconds ('' = none)   ARGV[8] trace context (JSON, '' = none)
-- returns {created 1|0, status, same digest 1|0}
local digest = redis.call('HGET', KEYS[1], 'digest')
if digest then
  return {0, redis.call('HGET', KEYS[1], 'status'), digest == ARGV[3] and 1 or 0}
end
"""
    + _NOW
    + """\
redis.call('HSET', KEYS[1], 'status', 'pending', 'agent', ARGV[1], 'input', ARGV[2],
  'digest', ARGV[3], 'attempts', 0, 'max_attempts', ARGV[4], 'fence', 0, 'cancel', 0,
  'created_ms', now, 'timeout_s', ARGV[7], 'history', '[]', 'lease_until', 0, 'trace', ARGV[8])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'e', ARGV[5])
return {1, 'pending', 1}
""",
)

ENQUEUE: Final = LuaScript(
    "coord_enqueue",
    """\
-- coord_enqueue: put a task id on its agent's queue once, if the backlog has room.
-- KEYS[1] queue stream   KEYS[2] delayed retries zset   KEYS[3] enqueue mark (same tag)
-- ARGV[1] task id   ARGV[2] max backlog   ARGV[3] mark ttl ms
-- returns {1, entry id} (added now, or by an earlier call with the same mark) or
-- {0, backlog, limit} (full: nothing added, nothing recorded, so a later call may add it)
local prev = redis.call('GET', KEYS[3])
if prev then return {1, prev} end
local backlog = redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if backlog >= tonumber(ARGV[2]) then return {0, backlog, tonumber(ARGV[2])} end
local id = redis.call('XADD', KEYS[1], '*', 't', ARGV[1])
redis.call('SET', KEYS[3], id, 'PX', ARGV[3])
return {1, id}
""",
)

ABANDON: Final = LuaScript(
    "coord_abandon",
    """\
-- coord_abandon: remove a task this submit created when it could not be queued.
-- KEYS[1] task record   KEYS[2] task events   ARGV[1] digest of the submit that created it
-- returns 1 if removed, 0 if it is no longer an unstarted task of that submit
local f = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'digest')
if f[1] ~= 'pending' or f[2] ~= '0' or f[3] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
""",
)

RESET: Final = LuaScript(
    "coord_reset",
    """\
-- coord_reset: give a failed (dead-lettered) task a new set of attempts.
-- KEYS[1] task record   KEYS[2] task events   KEYS[3] task inbox   ARGV[1] event
-- ARGV[2] events maxlen
-- returns 1; errors 'NOTFOUND task', 'INVALID task is <status>' (only error/timeout restart)
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return redis.error_reply('NOTFOUND task') end
if st ~= 'error' and st ~= 'timeout' then return redis.error_reply('INVALID task is ' .. st) end
redis.call('HSET', KEYS[1], 'status', 'pending', 'attempts', 0, 'cancel', 0, 'lease_until', 0)
redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('HDEL', KEYS[1], 'result', 'ended_ms')
for i = 1, 3 do redis.call('PERSIST', KEYS[i]) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[1])
return 1
""",
)

CLAIM: Final = LuaScript(
    "coord_claim",
    """\
-- coord_claim: a worker takes a delivered task: new fencing token, lease, attempt.
-- KEYS[1] task record   KEYS[2] task events
-- ARGV[1] worker id   ARGV[2] lease ms   ARGV[3] 'started' event   ARGV[4] events maxlen
-- ARGV[5] 'failed' event (out of attempts; '' asks for {'exhausted?'} first)
-- ARGV[6] ttl ms of a finished task
-- returns {'run', fence, attempt, input, timeout_s, agent, max attempts, trace context}
-- | {'busy'} (another live worker holds it) | {'done', status} (finished: ack the entry)
-- | {'gone'} (no record: expired)
-- | {'exhausted', attempts, history} (out of attempts: now status error; dead-letter it)
"""
    + _TERMINAL
    + """\
local f = redis.call('HMGET', KEYS[1], 'status', 'lease_until', 'attempts', 'max_attempts',
  'worker', 'history')
local st = f[1]
if not st then return {'gone'} end
if terminal[st] then return {'done', st} end
"""
    + _NOW
    + """\
if st == 'running' and tonumber(f[2] or '0') > now then return {'busy'} end
local attempts = tonumber(f[3])
local exhausted = attempts >= tonumber(f[4])
-- the 'failed' event is built only for this rare path: without it, ask for it (no writes)
if exhausted and ARGV[5] == '' then return {'exhausted?', attempts} end
if st == 'running' then
  -- the previous holder stopped heartbeating: that attempt is lost, and recorded
  local h = cjson.decode(f[6] or '[]')
  h[#h + 1] = {attempt = attempts, worker = f[5] or '', error = 'worker stopped heartbeating',
    at_ms = now}
  redis.call('HSET', KEYS[1], 'history', cjson.encode(h))
end
if exhausted then
  redis.call('HSET', KEYS[1], 'status', 'error', 'lease_until', 0, 'ended_ms', now,
    'error', 'out of attempts: ' .. attempts .. ' of ' .. f[4])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[5])
  for _, k in ipairs({KEYS[1], KEYS[2]}) do redis.call('PEXPIRE', k, ARGV[6]) end
  return {'exhausted', attempts, redis.call('HGET', KEYS[1], 'history')}
end
attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[1],
  'lease_until', now + tonumber(ARGV[2]), 'started_ms', now)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[3])
local rest = redis.call('HMGET', KEYS[1], 'input', 'timeout_s', 'agent', 'trace')
return {'run', fence, attempts, rest[1], rest[2], rest[3], tonumber(f[4]), rest[4] or ''}
""",
)

HEARTBEAT: Final = LuaScript(
    "coord_heartbeat",
    """\
-- coord_heartbeat: renew a running task's lease.
-- KEYS[1] task record   ARGV[1] fencing token   ARGV[2] lease ms
-- returns 1 if a cancel was requested, else 0; errors 'FENCED <token>' (lease lost)
local f = redis.call('HMGET', KEYS[1], 'status', 'fence', 'cancel')
if f[1] ~= 'running' or f[2] ~= ARGV[1] then
  return redis.error_reply('FENCED ' .. (f[2] or '0'))
end
"""
    + _NOW
    + """\
redis.call('HSET', KEYS[1], 'lease_until', now + tonumber(ARGV[2]))
return tonumber(f[3])
""",
)

EVENT: Final = LuaScript(
    "coord_event",
    """\
-- coord_event: a running task's worker appends a progress event.
-- KEYS[1] task record   KEYS[2] task events   ARGV[1] fencing token   ARGV[2] event
-- ARGV[3] events maxlen
-- returns the entry id; errors 'FENCED <token>'
local f = redis.call('HMGET', KEYS[1], 'status', 'fence')
if f[1] ~= 'running' or f[2] ~= ARGV[1] then
  return redis.error_reply('FENCED ' .. (f[2] or '0'))
end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[2])
""",
)

FINISH: Final = LuaScript(
    "coord_finish",
    """\
-- coord_finish: end an attempt, once, by the worker holding the lease.
-- KEYS[1] task record   KEYS[2] task events   KEYS[3] task inbox
-- ARGV[1] fencing token   ARGV[2] outcome: success|error|cancelled|timeout|retry
-- ARGV[3] result (codec bytes, '' none)   ARGV[4] error text ('' none)   ARGV[5] event
-- ARGV[6] events maxlen   ARGV[7] ttl ms of a finished task   ARGV[8] history entry (JSON, '')
-- returns the outcome; errors 'FENCED <token>' (not the holder: nothing written)
local f = redis.call('HMGET', KEYS[1], 'status', 'fence', 'history')
if f[1] ~= 'running' or f[2] ~= ARGV[1] then
  return redis.error_reply('FENCED ' .. (f[2] or '0'))
end
"""
    + _NOW
    + """\
if ARGV[8] ~= '' then
  local h = cjson.decode(f[3] or '[]')
  h[#h + 1] = cjson.decode(ARGV[8])
  redis.call('HSET', KEYS[1], 'history', cjson.encode(h))
end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[4]) end
if ARGV[2] == 'retry' then
  redis.call('HSET', KEYS[1], 'status', 'pending', 'lease_until', 0, 'worker', '')
else
  redis.call('HSET', KEYS[1], 'status', ARGV[2], 'lease_until', 0, 'ended_ms', now)
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'result', ARGV[3]) end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'e', ARGV[5])
if ARGV[2] ~= 'retry' then
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
end
return ARGV[2]
""",
)

HANDBACK: Final = LuaScript(
    "coord_handback",
    """\
-- coord_handback: a stopping worker gives a running task back (the attempt does not count).
-- KEYS[1] task record   KEYS[2] task events   ARGV[1] fencing token   ARGV[2] event
-- ARGV[3] events maxlen
-- returns 1; errors 'FENCED <token>'
local f = redis.call('HMGET', KEYS[1], 'status', 'fence')
if f[1] ~= 'running' or f[2] ~= ARGV[1] then
  return redis.error_reply('FENCED ' .. (f[2] or '0'))
end
redis.call('HSET', KEYS[1], 'status', 'pending', 'lease_until', 0, 'worker', '')
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[2])
return 1
""",
)

_ACK_BODY: Final = """\
-- keys[1] queue stream   keys[2] delayed retries zset   keys[3] dead letters stream
-- argv[1] entry id ('' none)   argv[2] mode: ack|retry|dead|requeue   argv[3] task id
-- argv[4] retry delay ms   argv[5] dead letter (codec bytes)   argv[6] consumer group
-- argv[7] dead letters maxlen
-- returns 1: the entry is acknowledged and deleted, and the task rescheduled, re-queued or
-- dead-lettered as asked (all in one slot, so a crash never leaves half of it)
if argv[1] ~= '' then
  redis.call('XACK', keys[1], argv[6], argv[1])
  redis.call('XDEL', keys[1], argv[1])
end
if argv[2] == 'retry' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', keys[2], now + tonumber(argv[4]), argv[3])
elseif argv[2] == 'dead' then
  redis.call('XADD', keys[3], 'MAXLEN', '~', argv[7], '*', 'e', argv[5])
elseif argv[2] == 'requeue' then
  redis.call('XADD', keys[1], '*', 't', argv[3])
end
return 1"""

ACK: Final = IdempotentScript("coord_ack", _ACK_BODY)
"""The queue-side end of a run, recorded by op id: for a dead letter or a re-queue, whose
``XADD`` must not be repeated by a retry."""

ACK_PLAIN: Final = LuaScript(
    "coord_ack_plain",
    "-- coord_ack_plain: the same as coord_ack (KEYS = its keys, ARGV = its argv), for the\n"
    "-- modes that are idempotent by construction (ack: XACK/XDEL; retry: ZADD), so no op\n"
    "-- record is written per task\n"
    "local keys, argv = KEYS, ARGV\n" + _ACK_BODY,
)

PROMOTE: Final = LuaScript(
    "coord_promote",
    """\
-- coord_promote: move retries that are due from the delayed set to the queue.
-- KEYS[1] queue stream   KEYS[2] delayed retries zset   ARGV[1] most to move
-- returns how many moved (each exactly once: ZREM in the same call)
"""
    + _NOW
    + """\
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(due) do
  redis.call('XADD', KEYS[1], '*', 't', id)
  redis.call('ZREM', KEYS[2], id)
end
return #due
""",
)

CANCEL: Final = LuaScript(
    "coord_cancel",
    """\
-- coord_cancel: cancel a task: at once if it waits, through its worker if it runs.
-- KEYS[1] task record   KEYS[2] task events   KEYS[3] task inbox
-- ARGV[1] 'cancelled' event   ARGV[2] 'cancel requested' event   ARGV[3] events maxlen
-- ARGV[4] ttl ms of a finished task
-- returns the status after the call: 'cancelled', 'cancelling' or the terminal status it had
-- errors 'NOTFOUND task'
"""
    + _TERMINAL
    + """\
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return redis.error_reply('NOTFOUND task') end
if terminal[st] then return st end
if st == 'pending' then
"""
    + _NOW
    + """\
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'ended_ms', now)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[1])
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
  return 'cancelled'
end
if redis.call('HGET', KEYS[1], 'cancel') ~= '1' then
  redis.call('HSET', KEYS[1], 'cancel', 1)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[2])
end
return 'cancelling'
""",
)

SEND: Final = LuaScript(
    "coord_send",
    """\
-- coord_send: a follow-up message for a task that has not finished.
-- KEYS[1] task record   KEYS[2] task inbox   KEYS[3] task events
-- ARGV[1] message (codec bytes)   ARGV[2] 'message' event   ARGV[3] events maxlen
-- returns the inbox entry id; errors 'NOTFOUND task', 'INVALID task is <status>'
"""
    + _TERMINAL
    + """\
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return redis.error_reply('NOTFOUND task') end
if terminal[st] then return redis.error_reply('INVALID task is ' .. st) end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[2])
return id
""",
)

GROUP: Final = LuaScript(
    "coord_group",
    """\
-- coord_group: make sure a queue and its consumer group exist.
-- KEYS[1] queue stream   ARGV[1] group name
-- returns 1 if the group was created now, 0 if it existed
local ok = pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
if ok then return 1 end
return 0
""",
)

PUBLISH: Final = LuaScript(
    "coord_publish",
    """\
-- coord_publish: append an event to a topic, once per idempotency key.
-- KEYS[1] topic stream   KEYS[2] idempotency record (same hash tag)
-- ARGV[1] event (codec bytes)   ARGV[2] stream maxlen   ARGV[3] key ttl ms
-- ARGV[4] '1' when the event has an idempotency key
-- returns the entry id (the first one's, for a repeated key)
if ARGV[4] == '1' then
  local prev = redis.call('GET', KEYS[2])
  if prev then return prev end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[1])
if ARGV[4] == '1' then redis.call('SET', KEYS[2], id, 'PX', ARGV[3]) end
return id
""",
)
