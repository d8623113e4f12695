from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
import redis.exceptions as rexc
from deepagents_redis.core import (
    MAX_OP_TTL_MS,
    DeepAgentsRedisError,
    IdempotentScript,
    InvalidInputError,
    KeySpace,
    OutcomeUnknownError,
    RedisUnavailableError,
    arun_idempotent,
    new_op_id,
    run_idempotent,
)
from deepagents_redis.core._idempotent import _check_call
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

INCR = IdempotentScript(
    "incr",
    """
-- keys[1] counter; returns the new value
return redis.call('INCR', keys[1])
""",
)

# Returns whatever shape argv[1] names, after incrementing keys[1] (so a replay is visible).
SHAPES = IdempotentScript(
    "shapes",
    """
if argv[1] == 'bad' then return redis.error_reply('BAD validation failed') end
local n = redis.call('INCR', keys[1])
if argv[1] == 'int' then return n end
if argv[1] == 'str' then return argv[2] end
if argv[1] == 'nil' then return nil end
if argv[1] == 'false' then return false end
if argv[1] == 'status' then return redis.status_reply('DONE') end
if argv[1] == 'nested' then return {n, argv[2], {1, {'deep', n}}, {}} end
return redis.error_reply('unknown shape')
""",
)


def test_wrapper_source_states_its_contract() -> None:
    assert INCR.source.startswith(
        "-- deepagents-redis idempotent wrapper: incr\n-- KEYS[1] op-id key"
    )
    assert INCR.body in INCR.source
    with pytest.raises(InvalidInputError):
        IdempotentScript("x", " ")


@pytest.mark.integration
async def test_applied_once_per_op_id(redis_target: Any, key_prefix: str) -> None:
    ks = KeySpace(key_prefix)
    client = redis_target.client
    key = ks.key("n", "scope")
    op = ks.op_key("scope", new_op_id())
    assert run_idempotent(client, INCR, op_key=op, keys=[key]) == 1
    assert run_idempotent(client, INCR, op_key=op, keys=[key]) == 1
    assert int(client.get(key)) == 1
    assert 0 < client.pttl(op) <= 60_000 * 60 * 24
    other = ks.op_key("scope", new_op_id())
    assert run_idempotent(client, INCR, op_key=other, keys=[key], op_ttl_ms=5_000) == 2
    assert 0 < client.pttl(other) <= 5_000

    aclient = redis_target.async_client
    aop = ks.op_key("scope", new_op_id())
    assert await arun_idempotent(aclient, INCR, op_key=aop, keys=[key]) == 3
    assert await arun_idempotent(aclient, INCR, op_key=aop, keys=[key]) == 3
    assert run_idempotent(client, INCR, op_key=aop, keys=[key]) == 3
    assert int(client.get(key)) == 3


@pytest.mark.integration
@pytest.mark.parametrize(
    ("shape", "extra", "expected"),
    [
        ("int", [], 1),
        ("str", [b"\x00\xffbin\x80"], b"\x00\xffbin\x80"),
        ("nil", [], None),
        ("false", [], None),
        ("status", [], b"DONE"),
        ("nested", [b"x"], [1, b"x", [1, [b"deep", 1]], []]),
    ],
)
def test_stored_reply_replays_identically(
    redis_client: Any, key_prefix: str, shape: str, extra: list[bytes], expected: Any
) -> None:
    ks = KeySpace(key_prefix)
    key = ks.key("n", "s")
    op = ks.op_key("s", "op-1")
    first = run_idempotent(redis_client, SHAPES, op_key=op, keys=[key], args=[shape, *extra])
    again = run_idempotent(redis_client, SHAPES, op_key=op, keys=[key], args=[shape, *extra])
    assert first == again == expected
    assert int(redis_client.get(key)) == 1


@pytest.mark.integration
async def test_error_reply_is_not_recorded(redis_target: Any, key_prefix: str) -> None:
    ks = KeySpace(key_prefix)
    client = redis_target.client
    key = ks.key("n", "s")
    op = ks.op_key("s", new_op_id())
    with pytest.raises(rexc.ResponseError, match="BAD validation failed"):
        run_idempotent(client, SHAPES, op_key=op, keys=[key], args=["bad"])
    assert client.exists(op) == 0
    assert client.get(key) is None
    with pytest.raises(rexc.ResponseError, match="BAD validation failed"):
        await arun_idempotent(
            redis_target.async_client, SHAPES, op_key=op, keys=[key], args=["bad"]
        )
    # The same op id can still be applied once the input is valid.
    assert run_idempotent(client, SHAPES, op_key=op, keys=[key], args=["int"]) == 1
    assert run_idempotent(client, SHAPES, op_key=op, keys=[key], args=["int"]) == 1


@pytest.mark.integration
def test_bad_ttl_refused_by_wrapper(redis_client: Any, key_prefix: str) -> None:
    ks = KeySpace(key_prefix)
    key = ks.key("n", "s")
    # 2^53 and 1e18: past what a Lua number holds exactly, SET ... PX got '1e+18' and failed
    # after the body's INCR (the counter moved, no record, a retry INCRed again).
    for ttl in ("0", "-5", "1.5", "x", "9007199254740992", "1000000000000000000"):
        with pytest.raises(rexc.ResponseError, match="positive integer TTL"):
            INCR(redis_client, keys=[ks.op_key("s", "o"), key], args=[ttl])
    assert redis_client.get(key) is None


def _refuses(op_key: str | bytes, keys: list[str | bytes]) -> bool:
    try:
        _check_call(op_key, keys, 1000, 0)
    except InvalidInputError:
        return True
    return False


def _tag_with_slot_of(tag: str) -> str:
    # Another hash-tag text hashing to the same slot (16384 slots: a short search finds one).
    slot = key_slot(tag.encode())
    for i in range(1_000_000):
        other = f"t{i}"
        if other != tag and key_slot(other.encode()) == slot:
            return other
    raise AssertionError("no colliding tag found")


def test_slot_check_same_tag_text_is_one_slot() -> None:
    ks = KeySpace("t")
    op = ks.op_key("scope", new_op_id())
    keys: list[str | bytes] = [ks.key("n", "scope"), ks.key("todo", "scope", "a", "b")]
    assert not _refuses(op, keys)
    assert not _refuses(op, [k.encode() for k in keys if isinstance(k, str)])  # bytes keys too
    assert not _refuses(op.encode(), keys)
    # The tag is the FIRST {...}: a later brace pair in the key changes nothing.
    assert not _refuses(op, ["x:{scope}:{other}"])
    assert not _refuses("{scope}", ["{scope}"])


def test_slot_check_refuses_other_slots() -> None:
    ks = KeySpace("t")
    op = ks.op_key("scope", "1")
    assert _refuses(op, [ks.key("n", "other")])  # another scope
    assert _refuses(op, [ks.key("n", "scope"), ks.key("n", "other")])  # one bad key of several
    assert _refuses(op, ["no-tag-at-all"])  # a key without a tag hashes as a whole
    assert _refuses(op, ["x:{}:{scope}"])  # an empty first tag: the whole key is hashed
    assert _refuses(op, ["x:{scope"])  # no closing brace: the whole key is hashed
    assert _refuses(op, ["x:{scope-longer}"])  # the op tag's text as a prefix is not enough
    assert _refuses(op, ["x:{sco}pe}"])  # the first '}' ends the tag
    assert _refuses("op-without-tag", [ks.key("n", "scope")])
    assert _refuses("{}op", ["{}other"])  # empty tags: each key hashed whole


def test_slot_check_goes_by_slot_not_by_tag_text() -> None:
    # Decided: the check is Redis Cluster's own rule (one slot), so keys whose tags differ in
    # text but share a slot are accepted (the server runs such a script), and untagged keys
    # are accepted exactly when their whole-key slots agree.
    other = _tag_with_slot_of("scope")
    assert not _refuses("op:{scope}:1", [f"data:{{{other}}}"])
    untagged = _tag_with_slot_of("plain-op-key")
    assert not _refuses("plain-op-key", [untagged])
    assert _refuses("plain-op-key", ["plain-data-key"]) == (
        key_slot(b"plain-op-key") != key_slot(b"plain-data-key")
    )


@settings(max_examples=300, deadline=None)
@given(
    op_key=st.text(alphabet="ab{}:", min_size=1, max_size=8),
    keys=st.lists(st.text(alphabet="ab{}:é", max_size=8), max_size=4),
)
def test_slot_check_agrees_with_key_slot(op_key: str, keys: list[str]) -> None:
    # Differential: the tag-text fast path decides exactly as comparing CRC16 slots does.
    slot = key_slot(op_key.encode())
    expected = any(key_slot(k.encode()) != slot for k in keys)
    assert _refuses(op_key, list(keys)) == expected


def test_argument_checks() -> None:
    ks = KeySpace("t")
    client: Any = object()  # never reached: arguments are checked first
    with pytest.raises(InvalidInputError, match="hash slot"):
        run_idempotent(client, INCR, op_key=ks.op_key("a", "1"), keys=[ks.key("n", "b")])
    with pytest.raises(InvalidInputError):
        run_idempotent(client, INCR, op_key=ks.op_key("a", "1"), keys=[], op_ttl_ms=0)
    with pytest.raises(InvalidInputError):
        run_idempotent(client, INCR, op_key=ks.op_key("a", "1"), keys=[], retries=-1)
    with pytest.raises(InvalidInputError, match="op_ttl_ms"):
        run_idempotent(
            client, INCR, op_key=ks.op_key("a", "1"), keys=[], op_ttl_ms=MAX_OP_TTL_MS + 1
        )


@pytest.mark.integration
async def test_the_longest_op_ttl_records_and_a_longer_one_applies_nothing(
    redis_target: Any, key_prefix: str
) -> None:
    ks = KeySpace(key_prefix)
    key = ks.key("n", "ttl")
    sync_op, async_op = ks.op_key("ttl", new_op_id()), ks.op_key("ttl", new_op_id())
    for _ in range(2):
        run_idempotent(
            redis_target.client, INCR, op_key=sync_op, keys=[key], op_ttl_ms=MAX_OP_TTL_MS
        )
        await arun_idempotent(
            redis_target.async_client, INCR, op_key=async_op, keys=[key], op_ttl_ms=MAX_OP_TTL_MS
        )
    too_long = {"op_key": ks.op_key("ttl", "x"), "keys": [key], "op_ttl_ms": 10**18}
    with pytest.raises(InvalidInputError):
        run_idempotent(redis_target.client, INCR, **too_long)
    with pytest.raises(InvalidInputError):
        await arun_idempotent(redis_target.async_client, INCR, **too_long)
    assert redis_target.client.get(key) == b"2"  # once per op id
    assert redis_target.client.pttl(sync_op) > 10**15


class _LosesReplies:
    """A client whose first `fail` EVALSHA calls run on the server but lose the reply."""

    def __init__(self, client: redis.Redis, fail: int) -> None:
        self._client = client
        self.fail = fail
        self.calls = 0

    def get_retry(self) -> None:
        return None

    def evalsha(self, *args: Any) -> Any:
        self.calls += 1
        reply = self._client.evalsha(*args)
        if self.calls <= self.fail:
            raise rexc.TimeoutError("Timeout reading from socket")
        return reply

    def eval(self, *args: Any) -> Any:
        return self._client.eval(*args)


@pytest.mark.integration
def test_our_retry_uses_the_same_op_id(redis_client: Any, key_prefix: str) -> None:
    ks = KeySpace(key_prefix)
    key = ks.key("n", "s")
    INCR(redis_client, keys=[ks.op_key("s", "warm"), key], args=[1000])  # load the script
    redis_client.delete(key)
    flaky = _LosesReplies(redis_client, fail=2)
    op = ks.op_key("s", new_op_id())
    assert run_idempotent(flaky, INCR, op_key=op, keys=[key], retries=3, backoff_base=0.001) == 1  # type: ignore[arg-type]
    assert flaky.calls == 3
    assert int(redis_client.get(key)) == 1

    # Every attempt loses its reply: the caller learns the outcome is unknown, not "failed".
    flaky = _LosesReplies(redis_client, fail=99)
    op2 = ks.op_key("s", new_op_id())
    with pytest.raises(OutcomeUnknownError) as info:
        run_idempotent(flaky, INCR, op_key=op2, keys=[key], retries=2, backoff_base=0.001)  # type: ignore[arg-type]
    assert isinstance(info.value.__cause__, rexc.TimeoutError)
    assert flaky.calls == 3
    assert int(redis_client.get(key)) == 2  # applied once, whatever the client saw


def test_refused_connection_without_client_retries_is_unavailable() -> None:
    client = redis.Redis(port=1, socket_connect_timeout=0.5, retry=None)
    try:
        with pytest.raises(RedisUnavailableError) as info:
            run_idempotent(
                client, INCR, op_key="{s}op", keys=["{s}k"], retries=1, backoff_base=0.001
            )
        assert not isinstance(info.value, OutcomeUnknownError)
    finally:
        client.close()


def test_refused_connection_with_client_retries_is_unknown() -> None:
    # redis-py's own retries may have sent an earlier attempt before the refusal we see.
    client = redis.Redis(port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 1))
    try:
        with pytest.raises(OutcomeUnknownError):
            run_idempotent(client, INCR, op_key="{s}op", keys=["{s}k"], retries=0)
    finally:
        client.close()


@pytest.mark.integration
@pytest.mark.fault
async def test_blackholed_server_outcome_unknown(redis_url: str, fault_proxy: Any) -> None:
    proxy = fault_proxy(redis_url)
    client = redis.asyncio.Redis.from_url(proxy.url, socket_timeout=0.2, retry=None)
    try:
        await client.ping()
        proxy.set_mode("blackhole")
        with pytest.raises(OutcomeUnknownError):
            await arun_idempotent(
                client, INCR, op_key="{s}op", keys=["{s}k"], retries=1, backoff_base=0.001
            )
    finally:
        await client.aclose()


# ------------------------------------------------------------------ DEBUG SLEEP (issue 2)

SOCKET_TIMEOUT = 1.0
PROBE_TIMEOUT = 0.2
# Sleep so that, once the probe has seen the server asleep, between 1x and 2x the socket
# timeout of sleep remains: the first attempt times out, the retry is answered after wake-up.
SLEEP = 1.5 * SOCKET_TIMEOUT + PROBE_TIMEOUT


def _put_to_sleep(url: str) -> threading.Thread:
    def sleeper() -> None:
        c = redis.Redis.from_url(url, socket_timeout=SLEEP + 10)
        try:
            c.execute_command("DEBUG", "SLEEP", SLEEP)
        finally:
            c.close()

    thread = threading.Thread(target=sleeper, daemon=True)
    thread.start()
    # The server is asleep once a PING goes unanswered (it answers within ~0.1 ms otherwise).
    probe = redis.Redis.from_url(url, socket_timeout=PROBE_TIMEOUT, retry=None)
    try:
        for _ in range(2000):
            try:
                probe.ping()
            except rexc.TimeoutError:
                return thread
            thread.join(0.005)
        raise AssertionError("the server never went to sleep")
    finally:
        probe.close()


def _writer(url: str, *, client_retries: int) -> redis.Redis:
    retry = Retry(NoBackoff(), client_retries) if client_retries else None
    client = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT, retry=retry, protocol=2)
    client.ping()  # connect while the server is awake
    return client


@pytest.mark.integration
@pytest.mark.fault
@pytest.mark.parametrize("client_retries", [3, 0], ids=["redis-py-retries", "our-retries"])
def test_debug_sleep_raw_incr_twice_idempotent_once(
    redis_server_factory: Any, client_retries: int
) -> None:
    server = redis_server_factory(debug=True)
    ks = KeySpace("dar")
    raw_key = ks.key("n", "raw")
    our_key = ks.key("n", "ours")

    # 1. Raw redis-py INCR with its own retries: the timed-out first attempt is applied too.
    raw = _writer(server.url, client_retries=3)
    try:
        sleeper = _put_to_sleep(server.url)
        assert raw.incr(raw_key) == 2
        sleeper.join(SLEEP + 10)
        assert not sleeper.is_alive()
        assert int(raw.get(raw_key)) == 2
    finally:
        raw.close()

    # 2. The same write through run_idempotent: applied exactly once.
    ours = _writer(server.url, client_retries=client_retries)
    try:
        ours.script_load(INCR.source)  # a NOSCRIPT reply would hide the double-send
        op = ks.op_key("ours", new_op_id())
        sleeper = _put_to_sleep(server.url)
        reply = run_idempotent(
            ours, INCR, op_key=op, keys=[our_key], retries=3, backoff_base=0.01, backoff_cap=0.02
        )
        sleeper.join(SLEEP + 10)
        assert not sleeper.is_alive()
        assert reply == 1
        assert int(ours.get(our_key)) == 1
        assert ours.exists(op) == 1
    finally:
        ours.close()


class _Scripted:
    """A client whose EVALSHA calls raise the given errors in turn (no server)."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def get_retry(self) -> None:
        return None

    def evalsha(self, *args: Any) -> Any:
        self.calls += 1
        raise self.errors.pop(0)

    eval = evalsha


class _AsyncScripted(_Scripted):
    async def evalsha(self, *args: Any) -> Any:  # type: ignore[override]
        return super().evalsha(*args)

    eval = evalsha  # type: ignore[assignment]


@pytest.mark.parametrize(
    "second",
    [
        rexc.ReadOnlyError("You can't write against a read only replica."),
        rexc.ResponseError("NOREPLICAS Not enough good replicas to write."),
        rexc.NoPermissionError("this user has no permissions to run the 'evalsha' command"),
    ],
    ids=["readonly", "noreplicas", "noperm"],
)
async def test_a_refusal_after_a_lost_reply_is_outcome_unknown(second: BaseException) -> None:
    """The first attempt's reply was lost (it may have been applied); the retry was refused
    (a failover's demoted primary, an ACL change). That refusal says nothing about the first
    attempt: the caller was told "unavailable" (nothing applied) or "bad credentials", and a
    caller retrying with a new op id applied the write twice. The outcome is unknown."""
    lost = rexc.TimeoutError("Timeout reading from socket")
    call = {"op_key": "{s}op", "keys": ["{s}k"], "retries": 1, "backoff_base": 0.001}
    client = _Scripted(lost, second)
    with pytest.raises(OutcomeUnknownError) as info:
        run_idempotent(client, INCR, **call)  # type: ignore[arg-type]
    assert info.value.__cause__ is second
    assert client.calls == 2
    aclient = _AsyncScripted(lost, second)
    with pytest.raises(OutcomeUnknownError):
        await arun_idempotent(aclient, INCR, **call)  # type: ignore[arg-type]
    # Nothing may have been sent before the refusal: it is reported as it is.
    with pytest.raises((rexc.RedisError, DeepAgentsRedisError)) as first_only:
        run_idempotent(_Scripted(second), INCR, **{**call, "retries": 0})  # type: ignore[arg-type]
    assert not isinstance(first_only.value, OutcomeUnknownError)
