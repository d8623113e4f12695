"""Lua scripts run by SHA, re-loaded when the server forgot them.

A `LuaScript` computes its SHA1 locally and runs with ``EVALSHA``. When the server
answers ``NOSCRIPT`` (first use on a node, a restart, a failover, or another tenant's
``SCRIPT FLUSH``) it re-sends the script once with ``EVAL``, which runs it and caches it on
that node.

Why ``EVAL`` and not ``SCRIPT LOAD`` + ``EVALSHA`` (what redis-py's ``Script`` does): redis-py
8 sends ``SCRIPT LOAD`` on a ``RedisCluster`` to *every* primary, so one unreachable primary
fails a script that only touches a healthy one, and it costs a second round trip. ``EVAL`` is
routed by its keys exactly like ``EVALSHA``, reaches the node that owns them, and needs one
round trip. ``NOSCRIPT`` means the script did not run, so re-sending it cannot apply it twice.

Errors: transport failures (connection, timeout, cluster down...) are re-raised through
`translate_redis_error` (``RedisUnavailableError``...). Error
replies produced *by the script* (``redis.error_reply('CONFLICT 3')``, a failing
``redis.call``) are re-raised unchanged as ``redis.exceptions.ResponseError`` so that the
phase that owns the script maps its own error vocabulary (``CONFLICT``, ``NOTFOUND``...) to
our error tree. A timed-out write may or may not have been applied: non-idempotent writes
should go through `run_idempotent`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import redis.exceptions as rexc
from deepagents_redis.core._errors import REDIS_EXCEPTIONS, InvalidInputError, translate_redis_error

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = [
    "LuaScript",
    "deny_oom",
    "registered_scripts",
]


def deny_oom(key: str) -> str:
    """A Lua line that makes a full server refuse the script before it writes anything.

    On a server at ``maxmemory`` with ``noeviction``, Redis refuses a script's deny-oom
    commands (SET, HSET, ZADD...) only until the script has written something: a script whose
    first write is a DEL, HDEL or ZREM (a cleanup) then writes past ``maxmemory`` (the chaos
    suite found fs writes and checkpoint puts doing that). An empty ``SETRANGE`` is a deny-oom
    command that never creates or changes a key, so as a script's first write it turns "the
    server is full" into an ``OOM`` error before any change.

    Args:
        key: A Lua expression of a key of the script (its hash tag keeps the probe in the
            script's slot), e.g. ``"KEYS[1]"``.

    Returns:
        The line (with its comment), to put before the script's first write.
    """
    return (
        "-- a full server refuses this script here, before it writes (core's deny_oom)\n"
        f"redis.call('SETRANGE', {key} .. ':oom-probe', 0, '')\n"
    )


KeyArg: TypeAlias = "str | bytes"
ScriptArg: TypeAlias = "str | bytes | int | float"


def _is_script_error(exc: BaseException) -> bool:
    # A reply from the script itself (not a transport problem, not a missing command).
    if not isinstance(exc, rexc.ResponseError):
        return False
    if isinstance(exc, rexc.NoPermissionError | rexc.ModuleError | rexc.ReadOnlyError):
        return False
    lowered = str(exc).lower()
    return "unknown command" not in lowered and "unknown subcommand" not in lowered


_REGISTRY: dict[str, LuaScript] = {}


def registered_scripts() -> dict[str, LuaScript]:
    """Every `LuaScript` created so far, by name (a phase's scripts register on import).

    Returns:
        A copy of the registry.
    """
    return dict(_REGISTRY)


class LuaScript:
    """A Lua script run by SHA (``EVALSHA``), re-sent with ``EVAL`` after ``NOSCRIPT``.

    Args:
        name: Short identifier used in logs, metrics and error messages.
        source: The Lua source, headed by its contract (KEYS, ARGV, returns, errors).

    Raises:
        InvalidInputError: If the name or source is empty.

    Example:
        >>> INCR_BY = LuaScript("incr_by", "return redis.call('INCRBY', KEYS[1], ARGV[1])")
        >>> INCR_BY(client, keys=["dar:v1:n:{s}"], args=[2])  # doctest: +SKIP
        2
    """

    __slots__ = ("_name", "_sha", "_source")

    def __init__(self, name: str, source: str) -> None:
        if not name or not source.strip():
            raise InvalidInputError("a LuaScript needs a name and a non-empty source")
        self._name = name
        self._source = source
        self._sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()
        # Every script of every phase, for the one contract test (tests/test_lua_contract.py).
        _REGISTRY[name] = self

    @property
    def name(self) -> str:
        """Short identifier of the script."""
        return self._name

    @property
    def source(self) -> str:
        """The Lua source as sent to the server."""
        return self._source

    @property
    def sha(self) -> str:
        """Hex SHA1 of the UTF-8 source (the server computes the same digest)."""
        return self._sha

    def __repr__(self) -> str:
        return f"LuaScript({self._name!r}, sha={self._sha[:12]}...)"

    def run_raw(
        self,
        client: redis.Redis | redis.RedisCluster,
        keys: Sequence[KeyArg] = (),
        args: Sequence[ScriptArg] = (),
    ) -> Any:
        """Run the script and let redis-py exceptions through untranslated.

        For helpers that classify transport errors themselves (``run_idempotent``).

        Args:
            client: A sync ``redis.Redis`` or ``redis.RedisCluster``.
            keys: The script's KEYS (all in one hash slot on a cluster).
            args: The script's ARGV.

        Returns:
            The script's reply, as decoded by the client.
        """
        numkeys = len(keys)
        try:
            return client.evalsha(self._sha, numkeys, *keys, *args)
        except rexc.NoScriptError:
            # The script did not run; EVAL runs it and caches it on the node owning the keys.
            return client.eval(self._source, numkeys, *keys, *args)

    async def arun_raw(
        self,
        client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
        keys: Sequence[KeyArg] = (),
        args: Sequence[ScriptArg] = (),
    ) -> Any:
        """Async twin of `run_raw`.

        Args:
            client: A ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster``.
            keys: The script's KEYS (all in one hash slot on a cluster).
            args: The script's ARGV.

        Returns:
            The script's reply, as decoded by the client.
        """
        numkeys = len(keys)
        try:
            return await client.evalsha(self._sha, numkeys, *keys, *args)
        except rexc.NoScriptError:
            return await client.eval(self._source, numkeys, *keys, *args)

    def __call__(
        self,
        client: redis.Redis | redis.RedisCluster,
        keys: Sequence[KeyArg] = (),
        args: Sequence[ScriptArg] = (),
    ) -> Any:
        """Run the script (sync).

        Args:
            client: A sync ``redis.Redis`` or ``redis.RedisCluster``.
            keys: The script's KEYS (all in one hash slot on a cluster).
            args: The script's ARGV.

        Returns:
            The script's reply, as decoded by the client.

        Raises:
            redis.exceptions.ResponseError: An error reply produced by the script itself.
            RedisUnavailableError: The server could not be reached or timed out.
            DeepAgentsRedisError: Any other Redis failure, translated.
        """
        try:
            return self.run_raw(client, keys, args)
        except REDIS_EXCEPTIONS as exc:
            if _is_script_error(exc):
                raise
            raise translate_redis_error(exc) from exc

    async def acall(
        self,
        client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
        keys: Sequence[KeyArg] = (),
        args: Sequence[ScriptArg] = (),
    ) -> Any:
        """Run the script (async): the same contract as `__call__`.

        Args:
            client: A ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster``.
            keys: The script's KEYS (all in one hash slot on a cluster).
            args: The script's ARGV.

        Returns:
            The script's reply, as decoded by the client.

        Raises:
            redis.exceptions.ResponseError: An error reply produced by the script itself.
            RedisUnavailableError: The server could not be reached or timed out.
            DeepAgentsRedisError: Any other Redis failure, translated.
        """
        try:
            return await self.arun_raw(client, keys, args)
        except REDIS_EXCEPTIONS as exc:
            if _is_script_error(exc):
                raise
            raise translate_redis_error(exc) from exc
