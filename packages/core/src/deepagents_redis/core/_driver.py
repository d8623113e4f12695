"""The operation driver: each operation is written once and run sync or async (BRIEF §2).

A phase writes an operation as a generator that yields requests and receives their replies:

    def _get_op(self, key: str) -> Operation[bytes | None]:
        reply = yield Command(("GET", key))
        return reply

`run(connector, "fs.read", op)` runs it on the sync client, `await arun(...)` on the asyncio
client, so the two paths have the same semantics by construction. In ONE place the driver:

* opens the span `<name>`, counts `<name>` with its outcome, records its duration
  (BRIEF §3 instrumentation: operation, outcome, latency);
* applies the deadline to everything the operation does (`deadline(...)`: each connect and
  read is cut to the time left, no retry starts after it);
* sends op-id writes (`Idempotent`) through `run_idempotent`, the only retry layer for them;
* maps redis-py errors to our tree, and script error replies through the shared vocabulary
  (`script_error`).

Requests:

| request | sync | async |
|---|---|---|
| `Script(script, keys, args)` | `EVALSHA` (re-sent with `EVAL` after `NOSCRIPT`) | same, awaited |
| `Chain(steps)` | the steps as one script (one call each across Cluster slots) | awaited |
| `Idempotent(script, op_key, keys, args, op_ttl_ms)` | `run_idempotent` | `arun_idempotent` |
| `Command(args)` | `execute_command` | awaited |
| `Pipeline(cmds)` | one pipeline round trip | awaited |
| `Snapshot(cmds, fallback)` | one `MULTI/EXEC` | same (old redis-py cluster: `fallback`) |
| `Call(fn, args)` | `fn(*args)` | `asyncio.to_thread(fn, *args)` |
| `Sleep(seconds)` | `time.sleep` | `asyncio.sleep` |
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar, cast

import redis.asyncio
import redis.exceptions as rexc
from deepagents_redis.core._alane import AsyncLaneRedis
from deepagents_redis.core._chain import chain_args, chain_script, one_slot
from deepagents_redis.core._deadline import deadline, remaining
from deepagents_redis.core._errors import (
    REDIS_EXCEPTIONS,
    ConflictError,
    DeepAgentsRedisError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    RedisUnavailableError,
    translate_redis_error,
)
from deepagents_redis.core._idempotent import (
    DEFAULT_OP_TTL_MS,
    IdempotentScript,
    arun_idempotent,
    run_idempotent,
)
from deepagents_redis.core._instrumentation import active_instrumentation
from deepagents_redis.core._lane import LaneRedis
from deepagents_redis.core._scripts import LuaScript

if TYPE_CHECKING:
    from deepagents_redis.core._connector import RedisConnector

__all__ = [
    "Call",
    "Chain",
    "Command",
    "Idempotent",
    "Operation",
    "Pipeline",
    "Request",
    "Script",
    "ScriptErrorWords",
    "Sleep",
    "Snapshot",
    "adrive",
    "aexecute",
    "aexecute_gated",
    "arun",
    "drive",
    "execute",
    "run",
    "script_error",
]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class Script:
    """Run a `LuaScript` (reads, and writes that are idempotent by construction)."""

    script: LuaScript
    keys: Sequence[str | bytes]
    args: Sequence[Any] = ()


@dataclass(slots=True)
class Chain:
    """Run `Script` steps in order in one round trip; the reply is a list, one per step.

    On one server (standalone, Sentinel), or when every key of every step is in one Cluster
    slot, the steps run as one script made of their texts (`_chain`): atomically, in order,
    all or none after a ``NOSCRIPT``. Across Cluster slots they run one call each, in order.
    Either way a step's error reply stops the chain (later steps do not run) and is raised as
    that step's error. Use it for scripts that must run in this order and whose order a
    pipeline cannot keep (a pipelined ``EVALSHA`` answering ``NOSCRIPT`` lets the next one run
    alone).
    """

    steps: Sequence[Script]


@dataclass(slots=True)
class Idempotent:
    """Run an op-id write: retried by the driver only, with the same op id."""

    script: IdempotentScript
    op_key: str | bytes
    keys: Sequence[str | bytes]
    args: Sequence[Any] = ()
    op_ttl_ms: int = DEFAULT_OP_TTL_MS
    retries: int = 3
    """Re-sends after a transport failure, with the same op id (deadline permitting)."""


@dataclass(slots=True)
class Command:
    """One Redis command, e.g. `Command(("HGETALL", key))`."""

    args: tuple[Any, ...]


@dataclass(slots=True)
class Pipeline:
    """Commands sent in one round trip (no transaction); replies in order."""

    cmds: Sequence[tuple[Any, ...]]


@dataclass(slots=True)
class Snapshot:
    """Commands run as one `MULTI/EXEC`; replies `("multi", [replies])`.

    An asyncio cluster client of a redis-py without cluster transactions runs `fallback` (a
    script that does the same atomically) and replies `("lua", reply)`.

    An error reply of one command is raised as the server sent it (not wrapped in redis-py's
    "Command # n of pipeline" text), so a script's error word maps as for a `Script`. A
    ``NOSCRIPT`` reply (an ``EVALSHA`` in `cmds` after a server lost its scripts) runs
    `fallback` instead, which loads the script: the commands of the transaction other than
    that ``EVALSHA`` have run, so a Snapshot that holds one must be safe to repeat (each
    checkpoint put with big blobs is: an ``HSET`` of immutable blobs, then the put script).
    """

    cmds: Sequence[tuple[Any, ...]]
    fallback: Script


@dataclass(slots=True)
class Call:
    """A blocking call outside Redis (a blob store); run in a thread by the async driver."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


@dataclass(slots=True)
class Sleep:
    """Pause (a backoff chosen by the operation, e.g. after a lost version race)."""

    seconds: float


Request: TypeAlias = Script | Chain | Idempotent | Command | Pipeline | Snapshot | Call | Sleep
Operation: TypeAlias = Generator[Request, Any, T]
"""An operation: yields requests, receives each reply, returns its result."""

ScriptErrorWords: TypeAlias = Mapping[str, Callable[[str], DeepAgentsRedisError]]
"""Extra first words a phase's scripts answer with, each mapped to a typed error."""


def _conflict(rest: str, expected: Any) -> DeepAgentsRedisError:
    actual: Any = rest.split(" ", 1)[0]
    if actual.lstrip("-").isdigit():
        actual = int(actual)
    return ConflictError(expected, actual)


def _too_large(rest: str) -> DeepAgentsRedisError:
    size, _, limit = rest.partition(" ")
    return PayloadTooLargeError(int(size), int(limit.split(" ", 1)[0]))


_CORE_WORDS: Final[frozenset[str]] = frozenset({"CONFLICT", "NOTFOUND", "INVALID", "TOOLARGE"})


def script_error(
    exc: BaseException, *, expected: Any = None, words: ScriptErrorWords | None = None
) -> DeepAgentsRedisError | None:
    """Map a script's error reply to a typed error (the one vocabulary of every phase).

    | reply | error |
    |---|---|
    | `CONFLICT <actual>` | `ConflictError(expected, actual)` |
    | `NOTFOUND <what>` | `NotFoundError` |
    | `INVALID <why>` | `InvalidInputError` |
    | `TOOLARGE <size> <limit>` | `PayloadTooLargeError(size, limit)` |
    | a word in `words` | what its factory returns (e.g. todos' `CLAIMED`) |

    Args:
        exc: What the script call raised (its cause chain is searched for the reply).
        expected: The version the caller expected (for `ConflictError.expected`).
        words: Phase-specific words and their factories (they receive the rest of the reply).

    Returns:
        The typed error, or None when `exc` is not one of these replies.
    """
    reply: BaseException | None = exc
    for _ in range(4):
        if reply is None or isinstance(reply, rexc.ResponseError):
            break
        reply = reply.__cause__
    if not isinstance(reply, rexc.ResponseError):
        return None
    word, _, rest = str(reply).partition(" ")
    if words and word in words:
        return words[word](rest)
    if word not in _CORE_WORDS:
        return None
    if word == "CONFLICT":
        return _conflict(rest, expected)
    if word == "NOTFOUND":
        return NotFoundError(rest or "not found")
    if word == "INVALID":
        return InvalidInputError(rest)
    return _too_large(rest)


def _ok(_result: Any) -> str:
    return "ok"


def _translated(
    exc: BaseException, expected: Any, words: ScriptErrorWords | None
) -> DeepAgentsRedisError:
    """A redis-py exception of an operation, as ours.

    A script's error reply goes through the shared vocabulary (`script_error`), anything else
    through `translate_redis_error`.
    """
    if isinstance(exc, rexc.ResponseError):
        mapped = script_error(exc, expected=expected, words=words)
        if mapped is not None:
            return mapped
    return translate_redis_error(exc)


_UNOBSERVED: Final = nullcontext()


def _chained(req: Chain) -> tuple[LuaScript, list[Any], list[Any]]:
    keys, args = chain_args([(step.keys, step.args) for step in req.steps])
    return chain_script(tuple(step.script for step in req.steps)), keys, args


_ASYNC_CLUSTER_MULTI: Final = hasattr(redis.asyncio.cluster, "TransactionStrategy")
"""Whether redis-py's asyncio cluster client runs MULTI/EXEC on one slot (its pipeline has a
transaction strategy; older redis-py refuse a transactional pipeline there, so a `Snapshot`
runs its fallback script)."""


def _lost_script(replies: Sequence[Any]) -> bool:
    """Whether a transaction's replies hold ``NOSCRIPT`` (run the fallback instead).

    Any other error reply is raised as the server sent it: redis-py's `raise_on_error`
    would prefix it with "Command # n ... of pipeline caused error", which hides a script's
    error word (`script_error`).
    """
    lost = False
    for reply in replies:
        if isinstance(reply, rexc.NoScriptError):
            lost = True
        elif isinstance(reply, Exception):
            raise reply
    return lost


def _pause(seconds: float) -> float:
    """A `Sleep`'s pause, cut to the time left before the deadline (and never negative).

    A pause past the deadline kept the operation running after its bound (an operation's
    own backoff of 10 s under a 1 s deadline took 10 s); cut, the next request finds the
    deadline spent and fails at once. A negative pause is none (`time.sleep(-1)` raised
    ValueError where `asyncio.sleep(-1)` returned: the two drivers differed).
    """
    left = remaining()
    if left is not None and not seconds <= left:
        seconds = left
    return seconds if seconds > 0 else 0.0


def execute(client: Any, req: Request) -> Any:
    """Run one request on a sync client and return its reply (no span, no deadline)."""
    if isinstance(req, Script):
        return req.script(client, keys=req.keys, args=req.args)
    if isinstance(req, Chain):
        script, keys, args = _chained(req)
        if one_slot(client, keys):
            return script(client, keys=keys, args=args)
        return [step.script(client, keys=step.keys, args=step.args) for step in req.steps]
    if isinstance(req, Idempotent):
        return run_idempotent(
            client,
            req.script,
            op_key=req.op_key,
            keys=req.keys,
            args=req.args,
            op_ttl_ms=req.op_ttl_ms,
            retries=req.retries,
        )
    if isinstance(req, Command):
        return client.execute_command(*req.args)
    if isinstance(req, Pipeline):
        if isinstance(client, LaneRedis):
            replies = client.lane_commands(req.cmds)
            if replies is not None:
                return replies
        pipe = client.pipeline(transaction=False)
        try:
            for cmd in req.cmds:
                pipe.execute_command(*cmd)
            if isinstance(client, LaneRedis):
                replies = client.lane_pipeline(pipe)
                if replies is not None:
                    return replies
            return pipe.execute()
        finally:
            pipe.reset()
    if isinstance(req, Snapshot):
        pipe = client.pipeline(transaction=True)
        try:
            for cmd in req.cmds:
                pipe.execute_command(*cmd)
            replies = pipe.execute(raise_on_error=False)
        finally:
            pipe.reset()
        if _lost_script(replies):
            return "lua", req.fallback.script(
                client, keys=req.fallback.keys, args=req.fallback.args
            )
        return "multi", replies
    if isinstance(req, Call):
        return req.fn(*req.args)
    time.sleep(_pause(req.seconds))
    return None


async def aexecute(client: Any, req: Request) -> Any:
    """Run one request on an asyncio client and return its reply (see `execute`)."""
    if isinstance(req, Script):
        return await req.script.acall(client, keys=req.keys, args=req.args)
    if isinstance(req, Chain):
        script, keys, args = _chained(req)
        if one_slot(client, keys):
            return await script.acall(client, keys=keys, args=args)
        return [
            await step.script.acall(client, keys=step.keys, args=step.args) for step in req.steps
        ]
    if isinstance(req, Idempotent):
        return await arun_idempotent(
            client,
            req.script,
            op_key=req.op_key,
            keys=req.keys,
            args=req.args,
            op_ttl_ms=req.op_ttl_ms,
            retries=req.retries,
        )
    if isinstance(req, Command):
        return await client.execute_command(*req.args)
    if (
        isinstance(req, Snapshot)
        and isinstance(client, redis.asyncio.RedisCluster)
        and not _ASYNC_CLUSTER_MULTI
    ):
        return "lua", await req.fallback.script.acall(
            client, keys=req.fallback.keys, args=req.fallback.args
        )
    if isinstance(req, Pipeline):
        if isinstance(client, AsyncLaneRedis):
            replies = await client.lane_commands(req.cmds)
            if replies is not None:
                return replies
        pipe = client.pipeline(transaction=False)
        for cmd in req.cmds:
            pipe.execute_command(*cmd)
        if isinstance(client, AsyncLaneRedis):
            replies = await client.lane_pipeline(pipe)
            if replies is not None:
                return replies
        return await pipe.execute()
    if isinstance(req, Snapshot):
        pipe = client.pipeline(transaction=True)
        for cmd in req.cmds:
            pipe.execute_command(*cmd)
        replies = await pipe.execute(raise_on_error=False)
        if _lost_script(replies):
            return "lua", await req.fallback.script.acall(
                client, keys=req.fallback.keys, args=req.fallback.args
            )
        return "multi", replies
    if isinstance(req, Call):
        return await asyncio.to_thread(req.fn, *req.args)
    await asyncio.sleep(_pause(req.seconds))
    return None


async def aexecute_gated(connector: RedisConnector, client: Any, req: Request) -> Any:
    """`aexecute`, holding a slot of the connector's `async_gate` while the request runs.

    Pauses and thread calls take no slot. A request waits for a free connection within the
    deadline instead of redis-py failing at once when the pool is exhausted.
    """
    if isinstance(req, Sleep | Call):
        return await aexecute(client, req)
    gate = connector.async_gate()
    if gate.locked():
        left = remaining()
        wait = connector.settings.socket_timeout if left is None else max(0.0, left)
        # asyncio.timeout, not wait_for: Python 3.11's wait_for runs the acquire as a task of
        # its own and, when the caller is cancelled just as that task gets the slot, returns
        # the slot and drops the cancellation, so the request of a cancelled task was sent
        # (a write applied after the caller's own timeout had fired).
        try:
            async with asyncio.timeout(wait) as scope:
                await gate.acquire()
        except TimeoutError:
            if not scope.expired():
                raise
            raise RedisUnavailableError(
                f"no free connection: {connector.settings.max_connections} requests were in "
                f"flight on this event loop for {wait:.2f}s (raise max_connections, "
                "DEEPAGENTS_REDIS_MAX_CONNECTIONS, or run fewer operations at once)"
            ) from None
    else:
        await gate.acquire()
    try:
        return await aexecute(client, req)
    finally:
        gate.release()


def drive(op: Generator[R, Any, T], step: Callable[[R], Any]) -> T:
    """Run `op`, handing each request to `step` and sending its reply back.

    The one generator loop. `run` uses it with `execute` on the connector's client; a phase
    with its own per-request policy (the cache's fail-open breaker) passes its own `step`, and
    a flow over other calls (todos' `write_todos` over repository methods) its own requests.

    Args:
        op: The operation (closed when this returns or raises).
        step: Executes one request and returns its reply.

    Returns:
        What the operation returned.
    """
    reply: Any = None
    try:
        while True:
            try:
                req = op.send(reply)
            except StopIteration as stop:
                return cast(T, stop.value)
            reply = step(req)
    finally:
        op.close()


async def adrive(op: Generator[R, Any, T], step: Callable[[R], Awaitable[Any]]) -> T:
    """Async twin of `drive`: `step` is awaited.

    Args:
        op: The operation.
        step: Executes one request (awaitable) and returns its reply.

    Returns:
        What the operation returned.
    """
    reply: Any = None
    try:
        while True:
            try:
                req = op.send(reply)
            except StopIteration as stop:
                return cast(T, stop.value)
            reply = await step(req)
    finally:
        op.close()


def run(
    connector: RedisConnector,
    name: str,
    op: Operation[T],
    *,
    deadline_seconds: float | None,
    outcome: Callable[[T], str] | None = None,
    expected: Any = None,
    words: ScriptErrorWords | None = None,
    **attributes: Any,
) -> T:
    """Run an operation on the connector's sync client.

    Args:
        connector: Where to run it.
        name: Span and metric name, `<phase>.<operation>` (e.g. `"fs.write"`).
        op: The operation generator (closed when this returns or raises).
        deadline_seconds: The time bound of the whole operation (None: socket timeouts only).
        outcome: Maps the result to the counted outcome (default `"ok"`); failures count
            as `"conflict"` (a `ConflictError`) or `"error"`.
        expected: The version the caller expected, for `CONFLICT` replies.
        words: Phase-specific script error words (see `script_error`).
        **attributes: Extra span attributes (e.g. `scope=...`).

    Returns:
        What the operation returned.

    Raises:
        DeepAgentsRedisError: Translated Redis errors and mapped script error replies.
    """
    # What `run` and `arun` do around an operation, written out in each (a shared
    # generator-based context manager cost ~3 µs per operation, measured in the performance
    # pass): the span (with the connection's server attributes, `RedisConnector.telemetry`),
    # the deadline, error translation and script-error mapping; then the outcome count and
    # the duration (with its outcome), whatever happened. Without instrumentation installed
    # the span, the clock and the metrics are skipped (`active_instrumentation`).
    inst = active_instrumentation()
    started = 0.0
    seen = "error"
    if inst is None:
        span: AbstractContextManager[Any] = _UNOBSERVED
    else:
        span = inst.span(name, **connector.telemetry, **attributes)
        started = time.perf_counter()
    try:
        with span, deadline(deadline_seconds):
            try:
                client = connector.client()
                result = drive(op, partial(execute, client))
            except REDIS_EXCEPTIONS as exc:
                raise _translated(exc, expected, words) from exc
            seen = (outcome or _ok)(result)
            return result
    except ConflictError:
        seen = "conflict"
        raise
    finally:
        op.close()
        if inst is not None:
            inst.count(name, outcome=seen)
            inst.record_duration(name, time.perf_counter() - started, outcome=seen)


async def arun(
    connector: RedisConnector,
    name: str,
    op: Operation[T],
    *,
    deadline_seconds: float | None,
    outcome: Callable[[T], str] | None = None,
    expected: Any = None,
    words: ScriptErrorWords | None = None,
    **attributes: Any,
) -> T:
    """Run an operation on the connector's asyncio client (see `run`; same arguments).

    Args:
        connector: Where to run it.
        name: Span and metric name.
        op: The operation generator.
        deadline_seconds: The time bound of the whole operation.
        outcome: Maps the result to the counted outcome.
        expected: The version the caller expected, for `CONFLICT` replies.
        words: Phase-specific script error words.
        **attributes: Extra span attributes.

    Returns:
        What the operation returned.
    """
    inst = active_instrumentation()
    started = 0.0
    seen = "error"
    if inst is None:
        span: AbstractContextManager[Any] = _UNOBSERVED
    else:
        span = inst.span(name, **connector.telemetry, **attributes)
        started = time.perf_counter()
    try:
        with span, deadline(deadline_seconds):
            try:
                client = await connector.aclient()
                result = await adrive(op, partial(aexecute_gated, connector, client))
            except REDIS_EXCEPTIONS as exc:
                raise _translated(exc, expected, words) from exc
            seen = (outcome or _ok)(result)
            return result
    except ConflictError:
        seen = "conflict"
        raise
    finally:
        op.close()
        if inst is not None:
            inst.count(name, outcome=seen)
            inst.record_duration(name, time.perf_counter() - started, outcome=seen)
