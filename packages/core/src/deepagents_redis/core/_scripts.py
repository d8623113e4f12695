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

**Where the Lua lives.** A phase keeps each script in a ``.lua`` file of its package's ``lua/``
folder, headed by its contract (the name and purpose, ``-- KEYS``, ``-- ARGV``, what it returns,
its error replies), and builds it with `LuaScript.from_package`. Shared helpers are files of
their own, concatenated whole and in order (`load_lua`); nothing rewrites a script's text, so
what a reader sees in the file is what the server runs. (A driver `Chain` runs several scripts
as one: each text unchanged, wrapped in a function; see `_chain`.)

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
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, Self, TypeAlias

import redis.exceptions as rexc
from deepagents_redis.core._errors import REDIS_EXCEPTIONS, InvalidInputError, translate_redis_error

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = [
    "LuaScript",
    "deny_oom",
    "load_lua",
    "registered_scripts",
]

# The folder, inside a phase's package, that holds its .lua files (package data): one layout
# for every phase, so a reader finds a script's file without being told where.
_LUA_FOLDER: Final = "lua"


def deny_oom(key: str) -> str:
    """A Lua line that makes a full server refuse the script before it writes anything.

    Phase scripts write this line out in their ``.lua`` files (a script reads as it runs);
    the Lua contract test checks that each copy is exactly this line.

    On a server at ``maxmemory`` with ``noeviction``, Redis refuses a script's deny-oom
    commands (SET, HSET, ZADD...) only until the script has written something: a script whose
    first write is a DEL, HDEL or ZREM (a cleanup) then writes past ``maxmemory`` (the chaos
    suite found fs writes and checkpoint puts doing that). An empty ``SETRANGE`` is a deny-oom
    command that never creates or changes a key, so as a script's first write it turns "the
    server is full" into an ``OOM`` error before any change.

    Args:
        key: A Lua expression of a key of the script (its hash tag keeps the probe in the
            script's slot), e.g. ``"KEYS[1]"`` or a local bound to it.

    Returns:
        The line (with its comment), to put before the script's first write.
    """
    return (
        "-- a full server refuses this script here, before it writes (core's deny_oom)\n"
        f"redis.call('SETRANGE', {key} .. ':oom-probe', 0, '')\n"
    )


def load_lua(package: str, *files: str) -> str:
    """The Lua text of files shipped in a package's ``lua/`` folder, joined in order.

    Files are read with `importlib.resources`, so this works from a wheel as from a source
    tree, and joined whole: a shared helper is a file of its own, listed before the script
    that calls it. Each file is given a final newline if it lacks one, so no line of one file
    runs into the next.

    Args:
        package: The importable package that ships the files, e.g. ``"deepagents_redis.fs"``.
        *files: File names inside its ``lua/`` folder, e.g. ``"unlink_dirs.lua"``,
            ``"delete.lua"``.

    Returns:
        The joined text. Files are read in text mode, so CRLF line ends become LF and the
        SHA does not depend on how the file was checked out.

    Raises:
        InvalidInputError: If no file is named.
        FileNotFoundError: If a file is not in the package (a packaging mistake).
    """
    if not files:
        raise InvalidInputError("load_lua needs at least one file")
    folder = resources.files(package).joinpath(_LUA_FOLDER)
    parts = []
    for name in files:
        text = folder.joinpath(name).read_text(encoding="utf-8")
        parts.append(text if text.endswith("\n") else text + "\n")
    return "".join(parts)


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
        register: Whether `registered_scripts` lists it (False only for scripts core builds
            at run time from registered ones: a driver `Chain`).

    Raises:
        InvalidInputError: If the name or source is empty.

    Example:
        >>> INCR_BY = LuaScript("incr_by", "return redis.call('INCRBY', KEYS[1], ARGV[1])")
        >>> INCR_BY(client, keys=["dar:v1:n:{s}"], args=[2])  # doctest: +SKIP
        2
    """

    __slots__ = ("_name", "_origin", "_sha", "_source")

    def __init__(self, name: str, source: str, *, register: bool = True) -> None:
        if not name or not source.strip():
            raise InvalidInputError("a LuaScript needs a name and a non-empty source")
        self._name = name
        self._source = source
        self._sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()
        self._origin: tuple[str, tuple[str, ...]] | None = None
        if register:
            # Every script of every phase, for the one contract test (tests/test_lua_contract.py).
            _REGISTRY[name] = self

    @classmethod
    def from_package(cls, name: str, package: str, *files: str) -> Self:
        """Build a script from ``.lua`` files of a package (see `load_lua`).

        The files are joined in order and passed to the constructor as its Lua text: the
        source of a `LuaScript`, the body of an `IdempotentScript`. `origin` remembers them.

        Args:
            name: Short identifier of the script (``<phase>_<what>`` for a phase's scripts).
            package: The package that ships the files, e.g. ``"deepagents_redis.cache"``.
            *files: File names in its ``lua/`` folder, in the order they run: a shared
                helper before the file that calls it. One of them is the script's own file,
                headed by its contract (``-- <name>: ...``).

        Returns:
            The script, registered under `name` like any other.

        Example:
            >>> READ = LuaScript.from_package("cache_read", "deepagents_redis.cache", "read.lua")
            >>> READ.origin  # doctest: +SKIP
            ('deepagents_redis.cache', ('read.lua',))
        """
        script = cls(name, load_lua(package, *files))
        script._origin = (package, files)
        return script

    @property
    def origin(self) -> tuple[str, tuple[str, ...]] | None:
        """``(package, files)`` the Lua was read from (`from_package`); None if given as text."""
        return self._origin

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
