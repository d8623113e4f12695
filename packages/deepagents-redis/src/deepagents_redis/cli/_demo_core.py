"""Demo section ``core``: keys, codec, Lua, a retried idempotent write, the breaker."""

from __future__ import annotations

import uuid
from typing import Any

from deepagents_redis.cli._demo import DemoContext

__all__ = [
    "run",
]


# Body convention (core's _idempotent): `keys`/`argv` are KEYS/ARGV shifted past the op-id slot.
_INCR_BODY = "return redis.call('INCRBY', keys[1], argv[1])"


def run(ctx: DemoContext) -> None:
    """Run a round of core operations and print what each did.

    Args:
        ctx: The demo context.
    """
    from deepagents_redis.core import (
        CircuitBreaker,
        Codec,
        IdempotentScript,
        LuaScript,
        new_op_id,
        run_idempotent,
    )
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration

    keyspace = ctx.connector.keyspace
    client = ctx.connector.client()
    scope = ctx.scratch(f"demo user {uuid.uuid4().hex[:6]}: {{tricky}} *scope*")

    key = keyspace.key("demo", scope, "greeting")
    ctx.out(f"KeySpace: scope {scope!r} -> key {key!r}")
    ctx.facts["key"] = key

    codec = Codec()
    generation = ChatGeneration(
        message=AIMessage(
            content="Hello from Redis.",
            tool_calls=[{"name": "ls", "args": {"path": "/"}, "id": "call_1"}],
        )
    )
    blob = codec.encode(generation, key=key)
    client.set(key, blob, ex=300)
    decoded = codec.decode(client.get(key), key=key)
    same = decoded == generation
    ctx.out(f"Codec: ChatGeneration with a tool call -> {len(blob)} bytes, round trip: {same}")
    ctx.facts["codec_round_trip"] = same

    client.delete(key)
    if not ctx.lua:
        ctx.out("LuaScript, idempotent write: skipped (the server cannot run Lua scripts)")
        _breaker_round(ctx, CircuitBreaker)
        return

    echo = LuaScript("demo_echo", "return {KEYS[1], ARGV[1]}")
    reply = echo(client, keys=[key], args=["pong"])
    ctx.out(f"LuaScript: EVALSHA echo -> {[_text(x) for x in reply]}")
    ctx.facts["lua_reply"] = [_text(x) for x in reply]

    counter = keyspace.key("demo", scope, "counter")
    op_key = keyspace.op_key(scope, new_op_id())
    script = IdempotentScript("demo_incr", _INCR_BODY)
    first = run_idempotent(client, script, op_key=op_key, keys=[counter], args=["5"])
    again = run_idempotent(client, script, op_key=op_key, keys=[counter], args=["5"])
    value = int(client.get(counter))
    ctx.out(
        f"Idempotent write: INCRBY 5 sent twice with one op id -> replies {first}, {again}; "
        f"counter = {value} (applied once)"
    )
    ctx.facts["idempotent_counter"] = value
    client.delete(counter, op_key)
    _breaker_round(ctx, CircuitBreaker)


def _breaker_round(ctx: DemoContext, breaker_cls: Any) -> None:
    breaker = breaker_cls(failure_threshold=2, reset_timeout=30.0)
    states = [breaker.state.name]
    breaker.record_failure()
    breaker.record_failure()
    states.append(breaker.state.name)
    ctx.out(
        f"CircuitBreaker: {' -> '.join(states)} after 2 failures; "
        f"allow() = {breaker.allow()} (calls fail fast, no I/O)"
    )
    ctx.facts["breaker_states"] = states


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
