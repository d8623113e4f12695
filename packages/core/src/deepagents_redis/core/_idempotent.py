"""Retry-safe writes: the operation-id pattern (BRIEF §3 "Retries that do not duplicate").

A timeout can hide a write that did happen; retrying it blindly applies it twice (redis-py's
own retry does exactly that with ``INCR``). A non-idempotent write therefore carries an
operation id, and the server records "op id -> reply" in the same Lua script that applies
the write. A retry with the same op id finds the record and returns the first reply without
applying anything.

**Wrapper contract** (what `IdempotentScript` sends to Redis)::

    KEYS[1]    op-id key; must share the hash tag of the data keys (KeySpace.op_key)
    KEYS[2..]  data keys
    ARGV[1]    op-id TTL in milliseconds (positive integer)
    ARGV[2..]  data arguments
    returns    the body's reply; a repeat with the same op-id key returns the stored reply

**Body convention.** The body is the Lua text of a function ``body(keys, argv)``: it receives
two Lua tables *shifted by one*, ``keys[1] == KEYS[2]`` and ``argv[1] == ARGV[2]``, and
returns its reply. (``KEYS``/``ARGV`` remain visible unshifted; bodies should not use
them.) For example, an idempotent ``INCRBY``::

    return redis.call('INCRBY', keys[1], argv[1])

**Replies.** Integers, strings (binary-safe), ``nil``/``false``, status replies
(``redis.status_reply``) and arrays of these (nested) are stored with ``cmsgpack`` and replayed
identically. Keep replies small: they live for the op TTL.

**Errors.** If the body returns ``redis.error_reply(...)`` the reply is passed through and *not*
recorded: a retry runs the body again. This is only correct if nothing was written: **a body
must validate everything before its first write**, and report problems with
``redis.error_reply`` (a Lua ``error()`` or a failing ``redis.call`` also records nothing, but
Redis does not roll back writes made before it).

`run_idempotent` / `arun_idempotent` call the script with one op-id key and retry
on connection errors and timeouts with the *same* op id and jittered exponential backoff. When
the last attempt still failed and an earlier one may have reached the server, they raise
`OutcomeUnknownError`; when no attempt can have been sent
(connection refused on a client without its own retries), they raise
`RedisUnavailableError`.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import redis.exceptions as rexc
from deepagents_redis.core._deadline import no_resend, not_retryable, remaining, was_not_sent
from deepagents_redis.core._errors import (
    REDIS_EXCEPTIONS,
    InvalidInputError,
    OutcomeUnknownError,
    RedisUnavailableError,
    _is_refused_for_availability,
    translate_redis_error,
)
from deepagents_redis.core._scripts import KeyArg, LuaScript, ScriptArg, _is_script_error
from redis.crc import key_slot

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = [
    "DEFAULT_OP_TTL_MS",
    "MAX_OP_TTL_MS",
    "IdempotentScript",
    "arun_idempotent",
    "new_op_id",
    "run_idempotent",
]

DEFAULT_OP_TTL_MS: Final = 24 * 3600 * 1000
"""How long an op-id record lives by default (one day): far longer than any retry loop."""

MAX_OP_TTL_MS: Final = 2**53 - 1
"""The longest op-id TTL the wrapper takes: the largest integer a Lua number holds exactly.
Past it Lua hands ``SET ... PX`` a number like ``1e+18``, which Redis refuses only after the
body's writes: the write applied, the caller got an error, no record was made, and a retry
with the same op id applied it again (seen with todos' ``op_ttl_seconds=10**15``)."""

_WRAPPER: Final = """\
-- deepagents-redis idempotent wrapper: {name}
-- KEYS[1] op-id key (same hash tag as the data keys)   KEYS[2..] data keys = keys[1..]
-- ARGV[1] op-id TTL ms (positive integer)               ARGV[2..] data args = argv[1..]
-- returns the body's reply; a repeat with the same op-id key returns the stored reply;
-- error replies from the body are returned and not recorded
local op_ttl = tonumber(ARGV[1])
-- At most 2^53 - 1: a larger TTL is not an exact Lua number, is passed to SET as '1e+18'
-- and SET fails after the body has written (applied, reported failed, no record).
if not op_ttl or op_ttl < 1 or op_ttl ~= math.floor(op_ttl) or op_ttl > 9007199254740991 then
  return redis.error_reply('ERR idempotent wrapper: ARGV[1] must be a positive integer TTL in ms'
    .. ' (at most 2^53 - 1)')
end
local stored = redis.call('GET', KEYS[1])
if stored then
  return cmsgpack.unpack(stored)[1]
end
local function body(keys, argv)
{body}
end
local shifted_keys, shifted_argv = {{}}, {{}}
for i = 2, #KEYS do shifted_keys[i - 1] = KEYS[i] end
for i = 2, #ARGV do shifted_argv[i - 1] = ARGV[i] end
local reply = body(shifted_keys, shifted_argv)
if type(reply) == 'table' and reply['err'] ~= nil then
  return reply
end
-- Wrapped in a one-element array so a nil/false reply is stored too.
redis.call('SET', KEYS[1], cmsgpack.pack({{reply}}), 'NX', 'PX', op_ttl)
return reply
"""


class IdempotentScript(LuaScript):
    """A Lua body wrapped so that a repeat with the same op id is not applied twice.

    See the module docstring for the KEYS/ARGV layout and the body convention.

    Args:
        name: Short identifier of the operation.
        body: Lua text of ``body(keys, argv)`` (shifted tables); it returns the reply.

    Example:
        >>> INCR = IdempotentScript("incr", "return redis.call('INCR', keys[1])")
        >>> run_idempotent(client, INCR, op_key=ks.op_key("s", new_op_id()),
        ...                keys=[ks.key("n", "s")], args=[])  # doctest: +SKIP
        1
    """

    __slots__ = ("_body",)

    def __init__(self, name: str, body: str) -> None:
        if not body.strip():
            raise InvalidInputError("an IdempotentScript needs a non-empty body")
        self._body = body
        super().__init__(name, _WRAPPER.format(name=name.replace("\n", " "), body=body))

    @property
    def body(self) -> str:
        """The Lua body as given (without the wrapper)."""
        return self._body


def new_op_id() -> str:
    """Return a fresh, unique operation id (random UUID hex)."""
    return uuid.uuid4().hex


def _as_bytes(key: KeyArg) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def _hashed_part(key: bytes) -> bytes:
    """What Redis Cluster hashes for `key`: the text of its hash tag, else the whole key.

    The tag is the text between the first ``{`` and the first ``}`` after it, when that text
    is not empty (the cluster spec's rule, as redis-py's `key_slot` applies it).
    """
    start = key.find(b"{")
    if start > -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def _check_call(op_key: KeyArg, keys: Sequence[KeyArg], op_ttl_ms: int, retries: int) -> None:
    if (
        isinstance(op_ttl_ms, bool)
        or not isinstance(op_ttl_ms, int)
        or not 1 <= op_ttl_ms <= MAX_OP_TTL_MS
    ):
        raise InvalidInputError(f"op_ttl_ms must be an int from 1 to {MAX_OP_TTL_MS}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidInputError("retries must be an int >= 0")
    if not op_key:
        raise InvalidInputError("op_key must not be empty")
    # Checked on every topology so a wrong op key fails in tests on one node, not in
    # production on a cluster with CROSSSLOT.
    #
    # Fast path first: a key whose hash tag has the op key's tag text hashes the very same
    # bytes, so it is in the same slot without computing one (every key KeySpace builds for
    # one scope; a CRC16 slot per key cost ~0.5 µs of an op-id write with 3 data keys,
    # measured in the performance pass). Anything else (no tag, another tag's text) falls
    # back to comparing slots, so the answer is exactly Redis Cluster's: two tags whose texts
    # differ but hash to one slot are accepted, as the server accepts them.
    op = _as_bytes(op_key)
    hashed = _hashed_part(op)
    tagged = b"{" + hashed + b"}" if len(hashed) < len(op) else None
    slot = -1
    for key in keys:
        raw = key.encode("utf-8") if isinstance(key, str) else key
        start = raw.find(b"{")
        if tagged is not None and start >= 0 and raw.startswith(tagged, start):
            # The op key's tag text holds no '}' (it ends at the first one), so the first
            # '}' after this key's first '{' closes exactly this tag.
            continue
        if slot < 0:
            slot = key_slot(op)
        if key_slot(raw) != slot:
            raise InvalidInputError(
                f"op key and data keys must share one hash slot (hash tag): {key!r}"
            )


def _client_resends(client: Any) -> bool:
    """Whether the client may itself have re-sent a command before raising.

    Asked inside `no_resend()`: our factory's clients then answer no (their `BoundedRetry`
    reports 0 retries); a client built elsewhere with its own retries answers yes.
    """
    getter = getattr(client, "get_retry", None)
    retry = getter() if callable(getter) else getattr(client, "retry", None)
    get_retries = getattr(retry, "get_retries", None)
    if retry is None:
        return False
    if callable(get_retries):
        return bool(get_retries() != 0)
    return True  # unknown policy: assume the worst


def jittered_backoff(attempt: int, base: float, cap: float) -> float:
    """The pause before retry `attempt` (1, 2, ...): the one backoff formula of every phase.

    "Full jitter" (AWS architecture blog, Exponential Backoff And Jitter): uniform in
    `[0, min(cap, base * 2**(attempt - 1))]`, which spreads the retries of many workers that
    failed together. redis-py's `ExponentialWithJitterBackoff`, which our clients use for
    their own retries, is the same formula.

    Args:
        attempt: Which retry this is, from 1.
        base: Seconds of the first step.
        cap: Most seconds of any step.

    Returns:
        Seconds to pause.
    """
    return random.uniform(0.0, min(cap, base * (2 ** (max(attempt, 1) - 1))))


_delay = jittered_backoff


def _pause(attempt: int, retries: int, base: float, cap: float) -> float | None:
    """The pause before retry number `attempt`, or None when no retry is left.

    No retry starts after the current deadline (`deadline(...)`): the pause must end before
    it, so the call returns within its budget plus, at most, the cut-down attempt in flight.
    """
    if attempt > retries:
        return None
    pause = _delay(attempt, base, cap)
    left = remaining()
    if left is not None and left - pause <= 0:
        return None
    return pause


_RETRYABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.TryAgainError, rexc.ClusterDownError)


class _Tracker:
    __slots__ = ("_client", "last", "maybe_sent")

    def __init__(self, client: Any) -> None:
        self.maybe_sent = False
        self.last: BaseException | None = None
        # Asked on the first failure only (still inside `no_resend()`, where the answer is
        # the same as at the start): a write that succeeds first time never pays for it.
        self._client = client

    def failed(self, exc: BaseException) -> None:
        self.last = exc
        # With the client's own retries on, an earlier internal attempt may have been sent
        # even if the error we see is a refused connection.
        if not was_not_sent(exc) or _client_resends(self._client):
            self.maybe_sent = True

    def after(
        self,
        exc: BaseException,
        script: LuaScript,
        attempt: int,
        retries: int,
        base: float,
        cap: float,
    ) -> float:
        """Decide after failed attempt `attempt`: the pause before the next, or raise.

        The one policy of the sync and async loops: transport failures are retried with the
        same op id while retries and the deadline allow; a script error reply is re-raised
        as is; anything else is translated.
        """
        if not isinstance(exc, _RETRYABLE) or not_retryable(exc):
            if self.maybe_sent and not _is_body_reply(exc):
                # A refusal of this attempt (a demoted primary's READONLY, NOREPLICAS, an ACL
                # change) says nothing about an earlier one whose reply was lost: reporting
                # it as "unavailable" (nothing applied) led callers to retry with a new op
                # id and apply the write twice. Only the body's own reply is an answer.
                self.last = exc
                raise self.final(script, attempt) from exc
            translated = _translate_other(exc)
            if translated is None:
                raise exc
            raise translated from exc
        self.failed(exc)
        pause = _pause(attempt, retries, base, cap)
        if pause is None:
            raise self.final(script, attempt) from self.last
        return pause

    def final(self, script: LuaScript, attempts: int) -> Exception:
        assert self.last is not None
        what = f"{script.name}: {attempts} attempt(s) failed"
        if self.maybe_sent:
            return OutcomeUnknownError(
                f"{what}; the write may or may not have been applied "
                f"(last error: {translate_redis_error(self.last)})"
            )
        return RedisUnavailableError(f"{what} before anything was sent: {self.last}")


def _is_body_reply(exc: BaseException) -> bool:
    """Whether `exc` is the script body's own error reply (the wrapper ran: no record).

    Not a server refusal that only looks like one (``NOREPLICAS``, ``MASTERDOWN``).
    """
    return _is_script_error(exc) and not _is_refused_for_availability(str(exc))


def _translate_other(exc: BaseException) -> Exception | None:
    if _is_script_error(exc):
        return None
    return translate_redis_error(exc)


def run_idempotent(
    client: redis.Redis | redis.RedisCluster,
    script: IdempotentScript,
    *,
    op_key: KeyArg,
    keys: Sequence[KeyArg] = (),
    args: Sequence[ScriptArg] = (),
    op_ttl_ms: int = DEFAULT_OP_TTL_MS,
    retries: int = 3,
    backoff_base: float = 0.05,
    backoff_cap: float = 1.0,
) -> Any:
    """Run an idempotent script, retrying transport failures with the same op id.

    Args:
        client: A sync ``redis.Redis`` or ``redis.RedisCluster``.
        script: The wrapped write.
        op_key: The op-id key (``KeySpace.op_key(scope, new_op_id())``); keep it for the whole
            logical operation, including retries by the caller.
        keys: Data keys (the body's ``keys``), in the op key's hash slot.
        args: Data arguments (the body's ``argv``).
        op_ttl_ms: How long the op-id record lives.
        retries: Retries after the first attempt (on connection errors and timeouts).
        backoff_base: First backoff ceiling in seconds (full jitter, doubling).
        backoff_cap: Largest backoff ceiling in seconds.

    Returns:
        The body's reply (the stored first reply if the op already ran).

    Raises:
        OutcomeUnknownError: Every attempt failed and one may have reached the server.
        RedisUnavailableError: Every attempt failed before anything could be sent.
        InvalidInputError: Bad arguments, or keys outside the op key's hash slot.
        redis.exceptions.ResponseError: An error reply from the body (nothing recorded).
    """
    _check_call(op_key, keys, op_ttl_ms, retries)
    full_keys = [op_key, *keys]
    full_args = [op_ttl_ms, *args]
    with no_resend():
        tracker = _Tracker(client)
        attempt = 0
        while True:
            try:
                return script.run_raw(client, full_keys, full_args)
            except REDIS_EXCEPTIONS as exc:
                attempt += 1
                pause = tracker.after(exc, script, attempt, retries, backoff_base, backoff_cap)
            time.sleep(pause)


async def arun_idempotent(
    client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
    script: IdempotentScript,
    *,
    op_key: KeyArg,
    keys: Sequence[KeyArg] = (),
    args: Sequence[ScriptArg] = (),
    op_ttl_ms: int = DEFAULT_OP_TTL_MS,
    retries: int = 3,
    backoff_base: float = 0.05,
    backoff_cap: float = 1.0,
) -> Any:
    """Async twin of `run_idempotent` (same arguments, reply and errors)."""
    _check_call(op_key, keys, op_ttl_ms, retries)
    full_keys = [op_key, *keys]
    full_args = [op_ttl_ms, *args]
    with no_resend():
        tracker = _Tracker(client)
        attempt = 0
        while True:
            try:
                return await script.arun_raw(client, full_keys, full_args)
            except REDIS_EXCEPTIONS as exc:
                attempt += 1
                pause = tracker.after(exc, script, attempt, retries, backoff_base, backoff_cap)
            await asyncio.sleep(pause)
