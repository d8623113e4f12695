"""The driver's `Chain`: scripts in order, in one round trip, stopping at the first error.

On a real server, standalone and Cluster (one slot: one script; across slots: one call each),
sync and async; and the case a pipeline of `EVALSHA` gets wrong: a server that knows the
second script but not the first (after `SCRIPT FLUSH`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from deepagents_redis.core import (
    Chain,
    ConflictError,
    LuaScript,
    Operation,
    RedisConnector,
    RedisSettings,
    Script,
    arun_operation,
    run_operation,
)
from deepagents_redis.core._chain import chain_args, chain_script, one_slot

pytestmark = pytest.mark.integration

# Two steps that only make sense in order: PUSH appends to a list, SEAL reads its length and
# stores it (so a SEAL that ran first, or alone, leaves a different number).
PUSH = LuaScript(
    "test_chain_push",
    "-- KEYS[1] list   ARGV[1..n] items\n-- returns the new length\n"
    "return redis.call('RPUSH', KEYS[1], unpack(ARGV))",
)
SEAL = LuaScript(
    "test_chain_seal",
    "-- KEYS[1] list   KEYS[2] seal   ARGV[1] expected length or ''\n"
    "-- returns {length, 'sealed'}; CONFLICT <length> when ARGV[1] is given and differs\n"
    "local n = redis.call('LLEN', KEYS[1])\n"
    "if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= n then\n"
    "  return redis.error_reply('CONFLICT ' .. n)\n"
    "end\n"
    "redis.call('SET', KEYS[2], n)\n"
    "return {n, redis.status_reply('sealed')}",
)
NOTHING = LuaScript("test_chain_nothing", "-- returns nil\nreturn false")


@pytest.fixture
def connector(redis_target: Any) -> Iterator[RedisConnector]:
    conn = RedisConnector(settings=redis_target.settings)
    yield conn
    conn.close()


def _push_then_seal(
    list_key: str, seal_key: str, items: list[str], expect: str = ""
) -> Operation[Any]:
    reply = yield Chain(
        [
            Script(PUSH, [list_key], items),
            Script(NOTHING, []),
            Script(SEAL, [list_key, seal_key], [expect]),
        ]
    )
    return reply


async def test_steps_run_in_order_with_their_own_keys_and_args(
    connector: RedisConnector,
) -> None:
    ks = connector.keyspace
    lst, seal = ks.key("chain", "s", "list"), ks.key("chain", "s", "seal")
    client = connector.client()
    reply = run_operation(
        connector, "test.chain", _push_then_seal(lst, seal, ["a", "b"]), deadline_seconds=5.0
    )
    # One reply per step; the nil step is None; a nested status reply reads as when alone.
    assert reply == [2, None, [2, b"sealed"]]
    assert client.get(seal) == b"2"
    reply = await arun_operation(
        connector, "test.chain", _push_then_seal(lst, seal, ["c"]), deadline_seconds=5.0
    )
    assert reply == [3, None, [3, b"sealed"]]
    assert client.lrange(lst, 0, -1) == [b"a", b"b", b"c"]
    client.delete(lst, seal)
    await connector.aclose()


async def test_an_error_reply_stops_the_chain(connector: RedisConnector) -> None:
    ks = connector.keyspace
    lst, seal = ks.key("chain", "e", "list"), ks.key("chain", "e", "seal")
    after = ks.key("chain", "e", "after")
    client = connector.client()

    def op() -> Operation[Any]:
        reply = yield Chain(
            [
                Script(PUSH, [lst], ["x"]),
                Script(SEAL, [lst, seal], ["5"]),  # the list has 1 item: CONFLICT 1
                Script(PUSH, [after], ["never"]),
            ]
        )
        return reply

    with pytest.raises(ConflictError) as info:
        run_operation(connector, "test.chain", op(), deadline_seconds=5.0, expected=5)
    assert (info.value.expected, info.value.actual) == (5, 1)
    with pytest.raises(ConflictError):
        await arun_operation(connector, "test.chain", op(), deadline_seconds=5.0, expected=5)
    # The steps before the error ran (as one by one); the step after it did not.
    assert client.llen(lst) == 2
    assert client.exists(seal, after) == 0
    client.delete(lst)
    await connector.aclose()


async def test_across_cluster_slots_the_steps_run_one_call_each(
    connector: RedisConnector, redis_target: Any
) -> None:
    ks = connector.keyspace
    # Two scopes: two hash tags, so two slots on a Cluster.
    lst, seal = ks.key("chain", "one", "list"), ks.key("chain", "one", "seal")
    other = ks.key("chain", "two", "list")
    client = connector.client()
    assert one_slot(client, [lst, seal, other]) is (redis_target.mode != "cluster")

    def op() -> Operation[Any]:
        reply = yield Chain([Script(PUSH, [other], ["y"]), Script(SEAL, [lst, seal], [""])])
        return reply

    assert run_operation(connector, "test.chain", op(), deadline_seconds=5.0) == [
        1,
        [0, b"sealed"],
    ]
    assert await arun_operation(connector, "test.chain", op(), deadline_seconds=5.0) == [
        2,
        [0, b"sealed"],
    ]
    client.delete(other, seal)
    await connector.aclose()


def test_one_round_trip_on_one_server(redis_settings: RedisSettings) -> None:
    connector = RedisConnector(settings=redis_settings)
    ks = connector.keyspace
    lst, seal = ks.key("chain", "rt", "list"), ks.key("chain", "rt", "seal")
    client = connector.client()
    run_operation(connector, "test.chain", _push_then_seal(lst, seal, ["a"]), deadline_seconds=5.0)
    before = client.info("commandstats")
    run_operation(connector, "test.chain", _push_then_seal(lst, seal, ["b"]), deadline_seconds=5.0)
    after = client.info("commandstats")

    def calls(stats: dict[str, Any], name: str) -> int:
        return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

    # Three steps, one EVALSHA (the INFO call itself is the only other command counted).
    assert calls(after, "evalsha") - calls(before, "evalsha") == 1
    assert calls(after, "eval") == calls(before, "eval")
    client.delete(lst, seal)
    connector.close()


async def test_a_server_that_knows_only_the_second_script_still_runs_them_in_order(
    redis_server_factory: Any,
) -> None:
    server = redis_server_factory()
    connector = RedisConnector(settings=RedisSettings(url=server.url, cluster="off"))
    ks = connector.keyspace
    lst, seal = ks.key("chain", "ns", "list"), ks.key("chain", "ns", "seal")
    admin = redis.Redis.from_url(server.url)
    try:
        for attempt, runner in enumerate(("sync", "async"), start=1):
            admin.script_flush()
            # The server knows SEAL (as after a restart in which another client ran it) but
            # neither PUSH nor the chain: a pipeline of EVALSHAs would run SEAL alone here.
            SEAL(
                admin, keys=[ks.key("chain", "ns", "warm"), ks.key("chain", "ns", "w2")], args=[""]
            )
            assert admin.script_exists(SEAL.sha, PUSH.sha) == [True, False]
            op = _push_then_seal(lst, seal, ["item"])
            if runner == "sync":
                reply = run_operation(connector, "test.chain", op, deadline_seconds=5.0)
            else:
                reply = await arun_operation(connector, "test.chain", op, deadline_seconds=5.0)
            assert reply == [attempt, None, [attempt, b"sealed"]]
            assert admin.get(seal) == str(attempt).encode()  # sealed after the push, once
        assert admin.llen(lst) == 2
    finally:
        admin.close()
        await connector.aclose()
        connector.close()


def test_the_chain_script_is_built_once_and_kept_out_of_the_contract_registry() -> None:
    from deepagents_redis.core import registered_scripts

    first = chain_script((PUSH, SEAL))
    assert chain_script((PUSH, SEAL)) is first
    assert first.name == "chain(test_chain_push,test_chain_seal)"
    assert first.name not in registered_scripts()
    # Each step's text is in the chain unchanged.
    assert PUSH.source in first.source
    assert SEAL.source in first.source
    keys, args = chain_args([(["k1"], ["a", "b"]), (["k2", "k3"], [])])
    assert (keys, args) == (["k1", "k2", "k3"], [1, 2, 2, 0, "a", "b"])
