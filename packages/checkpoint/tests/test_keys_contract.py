"""Keys only in KEYS (BRIEF §3 "Lua"): no checkpoint script touches a key it was not given.

Redis does not enforce it: on a standalone server a script may touch any key, and on a
Cluster any key of its slot (every key of a thread shares one hash tag, so a script that
built keys from data ran fine there too). So two checks of our own:

* **Static, every path**: each script's Lua (as the server runs it, prelude included) binds
  the thread's eight keys to named locals from ``KEYS[1..8]`` exactly once and never rebinds
  them; every ``redis.call``/``redis.pcall`` names its command as a literal, and each of its key
  arguments (positions per command, below) is one of those locals: never ARGV, a concatenation,
  a table element or a function parameter. In Lua a local bound once and never assigned holds
  that value wherever it is in scope, so every key a call can touch, on every branch, is one
  of KEYS. The one exception is core's deny_oom probe (``KEYS[1] .. ':oom-probe'``, an empty
  SETRANGE that never creates a key), matched as core's exact line.
* **Dynamic, what really ran**: every operation, sync and async, on a dedicated server under
  MONITOR, which logs each command a script runs (``[0 lua]``) right after the EVALSHA that ran
  it (a script is atomic, so nothing interleaves). The server itself (``COMMAND GETKEYS``) says
  which arguments of each command are keys, and each must be in that EVALSHA's KEYS. This
  catches what a parser could miss (a key position we got wrong, an ``unpack`` of keys) for
  the paths the run takes; the static check covers the paths it does not.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.checkpoint._scripts import DELETE, HISTORY, PUT, PUT_WRITES, READ
from deepagents_redis.core import LuaScript, RedisSettings, deny_oom
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

SCRIPTS = [PUT, PUT_WRITES, READ, HISTORY, DELETE]

# Where the keys are in each command our scripts may run ("first": the argument after the
# command name; "all": every argument). A command not listed fails the test until added.
KEY_POSITIONS = {
    "HGET": "first",
    "HMGET": "first",
    "HSTRLEN": "first",
    "HEXISTS": "first",
    "HSET": "first",
    "HSETNX": "first",
    "HDEL": "first",
    "ZADD": "first",
    "ZREM": "first",
    "ZRANGE": "first",
    "ZCARD": "first",
    "ZREMRANGEBYRANK": "first",
    "HSCAN": "first",
    "PEXPIRE": "first",
    "SETRANGE": "first",
    "UNLINK": "all",
    "EXISTS": "all",
}
_BINDING = re.compile(r"^local\s+([\w\s,]+?)\s*=\s*(KEYS\[\d+\](?:\s*,\s*KEYS\[\d+\])*)\s*$")
_IDENT = re.compile(r"[A-Za-z_]\w*")


# ------------------------------------------------------------------ a small Lua reader
def _strip(lua: str) -> tuple[str, list[str]]:
    """The code with comments removed and each string literal replaced by ``\\x00<n>\\x00``."""
    out: list[str] = []
    strings: list[str] = []
    i, n = 0, len(lua)
    while i < n:
        ch = lua[i]
        if lua.startswith("--", i):
            assert not lua.startswith("--[[", i), "long comments are not read here"
            i = lua.find("\n", i)
            i = n if i < 0 else i
            continue
        if lua.startswith("[[", i) or lua.startswith("[=", i):
            pytest.fail("long strings are not read here")
        if ch in "'\"":
            j, text = i + 1, []
            while lua[j] != ch:
                if lua[j] == "\\":
                    text.append(lua[j : j + 2])
                    j += 2
                    continue
                text.append(lua[j])
                j += 1
            strings.append("".join(text))
            out.append(f"\x00{len(strings) - 1}\x00")
            i = j + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out), strings


def _calls(code: str) -> Iterator[tuple[str, list[str]]]:
    """(callee, top-level argument texts) of each ``redis.call(`` / ``redis.pcall(``."""
    for match in re.finditer(r"redis\.p?call\b", code):
        i = match.end()
        while code[i].isspace():
            i += 1
        assert code[i] == "(", f"redis.call used other than as a call: {code[match.start() : i]}"
        depth, args, current = 0, [], []
        i += 1
        while True:
            ch = code[i]
            if ch in "({[":
                depth += 1
            elif ch in ")}]":
                if depth == 0:
                    args.append("".join(current).strip())
                    break
                depth -= 1
            elif ch == "," and depth == 0:
                args.append("".join(current).strip())
                current = []
                i += 1
                continue
            current.append(ch)
            i += 1
        yield match.group(), args


def _key_locals(code: str) -> dict[str, int]:
    """The locals bound to ``KEYS[n]`` (name -> n), each bound once and never rebound."""
    bound: dict[str, int] = {}
    lines = [line.strip() for line in code.splitlines()]
    for line in lines:
        found = _BINDING.match(line)
        if found:
            names = [name.strip() for name in found.group(1).split(",")]
            positions = [int(p) for p in re.findall(r"KEYS\[(\d+)\]", found.group(2))]
            assert len(names) == len(positions), line
            for name, position in zip(names, positions, strict=True):
                assert name not in bound, f"{name} bound to KEYS twice"
                bound[name] = position
        else:
            assert "KEYS" not in line, f"KEYS used other than in a binding: {line}"
    for name in bound:
        word = rf"\b{re.escape(name)}\b"
        for line in lines:
            if _BINDING.match(line):
                continue
            assert not re.search(rf"\blocal\b[^=]*{word}", line), f"{name} rebound: {line}"
            assert not re.search(rf"{word}\s*=(?!=)", line), f"{name} assigned: {line}"
            for params in re.findall(r"function\b[^(]*\(([^)]*)\)", line):
                assert not re.search(word, params), f"{name} is a parameter: {line}"
            for names in re.findall(r"\bfor\b(.*?)\b(?:in|=)", line):
                assert not re.search(word, names), f"{name} is a loop variable: {line}"
    return bound


def _check_keys_only_in_keys(source: str) -> dict[str, int]:
    """Assert the rule on one script's Lua; return its KEYS locals (name -> position)."""
    keys = _key_locals(_strip(source)[0])
    first = [name for name, n in keys.items() if n == 1]
    if first:  # core's probe, exactly its line, is the one key built from KEYS[1]
        source = source.replace(deny_oom(first[0]), "")
    code, strings = _strip(source)
    calls = list(_calls(code))
    assert calls, "no redis.call at all"
    for callee, args in calls:
        literal = re.fullmatch(r"\x00(\d+)\x00", args[0])
        assert literal, f"{callee} with a computed command: {args}"
        command = strings[int(literal.group(1))].upper()
        assert command in KEY_POSITIONS, f"{command}: add its key positions to KEY_POSITIONS"
        key_args = args[1:] if KEY_POSITIONS[command] == "all" else args[1:2]
        assert key_args, f"{command} without a key"
        for arg in key_args:
            why = f"{command} key argument {arg!r} is not a local bound to KEYS"
            assert _IDENT.fullmatch(arg), why
            assert arg in keys, why
    return keys


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_every_key_argument_is_a_local_bound_to_keys(script: LuaScript) -> None:
    keys = _check_keys_only_in_keys(script.source)
    assert sorted(keys.values()) == list(range(1, 9)), "the thread's eight keys, each once"


@pytest.mark.parametrize(
    "lua",
    [
        "local a = KEYS[1]\nredis.call('HGET', ARGV[1], 'f')",
        "local a = KEYS[1]\nredis.call('HGET', a .. ':x', 'f')",
        "local a = KEYS[1]\nlocal t = {a}\nredis.call('HGET', t[1], 'f')",
        "local a = KEYS[1]\nlocal function f(a) return redis.call('HGET', a, 'f') end",
        "local a = KEYS[1]\na = ARGV[1]\nredis.call('HGET', a, 'f')",
        "local a = KEYS[1]\nfor _, a in ipairs(ARGV) do redis.call('HGET', a, 'f') end",
        "local a = KEYS[1]\nlocal c = 'HGET'\nredis.call(c, a, 'f')",
        "local a = KEYS[1]\nlocal call = redis.call\ncall('HGET', ARGV[1], 'f')",
        "local a = KEYS[1]\nredis.call('UNLINK', a, ARGV[1])",
        "local a = KEYS[1]\nredis.call('RENAME', a, ARGV[1])",
        "redis.call('HGET', KEYS[1], 'f')",
        "local a = KEYS[1]\nredis.call('SETRANGE', a .. ':oom-probe', 0, 'x')",
    ],
)
def test_the_check_refuses_what_the_rule_forbids(lua: str) -> None:
    with pytest.raises(AssertionError):
        _check_keys_only_in_keys(lua)


def test_the_check_accepts_cores_probe() -> None:
    _check_keys_only_in_keys(
        "local a = KEYS[1]\n" + deny_oom("a") + "\nredis.call('HGET', a, 'f')\n"
    )


# ------------------------------------------------------------------ what really ran
_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b", '"': b'"', "\\": b"\\"}


def _monitor_args(line: bytes) -> tuple[str, list[bytes]]:
    """(source, arguments) of one MONITOR line: ``<time> [<db> <source>] "arg" "arg"...``."""
    close = line.index(b"]")
    source = line[line.index(b"[") + 1 : close].split(b" ", 1)[1].decode()
    args: list[bytes] = []
    i, raw = close + 1, line
    while i < len(raw):
        if raw[i : i + 1] != b'"':
            i += 1
            continue
        i += 1
        out = bytearray()
        while raw[i : i + 1] != b'"':
            if raw[i : i + 1] == b"\\":
                code = chr(raw[i + 1])
                if code == "x":
                    out += bytes([int(raw[i + 2 : i + 4], 16)])
                    i += 4
                    continue
                out += _ESCAPES[code]
                i += 2
                continue
            out += raw[i : i + 1]
            i += 1
        args.append(bytes(out))
        i += 1
    return source, args


class _Monitor:
    """MONITOR of a dedicated server, read on a thread until a marker command shows up."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, protocol=2)
        self._conn = self._client.connection_pool.get_connection()
        self._conn.send_command("MONITOR")
        assert self._conn.read_response() == b"OK"
        self.lines: list[bytes] = []
        self._marker = f"keys-contract-done-{uuid.uuid4().hex}".encode()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = self._conn.read_response()
            if self._marker in line:
                return
            self.lines.append(line)

    def stop(self) -> list[bytes]:
        self._client.echo(self._marker)
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "MONITOR never saw the end marker"
        self._conn.disconnect()
        self._client.close()
        return self.lines


def _cfg(thread: str, ns: str = "", cid: str | None = None) -> Any:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if cid:
        conf["checkpoint_id"] = cid
    return {"configurable": conf}


def _checkpoint(i: int) -> Any:
    cp = empty_checkpoint()
    cp["id"] = str(uuid6(clock_seq=i))
    cp["channel_values"] = {"v": i, "messages": [f"m{i}"]}
    cp["channel_versions"] = {"v": f"{i + 1:032}.0", "messages": f"{i + 1:032}.0"}
    return cp


def _sync_ops(saver: RedisSaver, thread: str) -> None:
    run = str(uuid.uuid4())
    parents: dict[str, str | None] = {"": None, "child:1": None}
    for i in range(4):
        for ns in parents:
            cp = _checkpoint(i)
            md: Any = {"source": "loop", "step": i, "run_id": run if i < 2 else "other"}
            saver.put(_cfg(thread, ns, parents[ns]), cp, md, dict(cp["channel_versions"]))
            parents[ns] = cp["id"]
        root = _cfg(thread, "", parents[""])
        saver.put_writes(root, [("v", i), ("messages", ["w"])], "task")
        saver.put_writes(root, [("__error__", "boom")], "task")
    assert saver.get_tuple(_cfg(thread)) is not None
    assert saver.get_tuple(_cfg(thread, "child:1", parents["child:1"])) is not None
    assert list(saver.list(_cfg(thread), filter={"step": 1}, limit=2))
    assert list(saver.list(_cfg(thread, "child:1"), before=_cfg(thread, "", parents["child:1"])))
    assert list(saver.list(None, limit=3))
    saver.get_delta_channel_history(config=_cfg(thread), channels=["messages", "v"])
    saver.copy_thread(thread, thread + "-copy")
    keys = saver.keys.thread(thread)
    newest = parents[""]
    assert newest is not None
    saver.connector.client().hdel(keys.checkpoints, keys.field("%_", newest))  # as if lost
    tup = saver.get_tuple(_cfg(thread))  # drops the stale index entries
    assert tup is not None
    assert tup.checkpoint["id"] != newest
    saver.delete_for_runs([run])
    saver.prune([thread])
    saver.prune([thread + "-copy"], strategy="delete")
    saver.delete_thread(thread)


async def _async_ops(saver: RedisSaver, thread: str) -> None:
    parent: str | None = None
    for i in range(3):
        cp = _checkpoint(i)
        md: Any = {"source": "loop", "step": i, "run_id": "arun"}
        await saver.aput(_cfg(thread, "", parent), cp, md, dict(cp["channel_versions"]))
        parent = cp["id"]
        await saver.aput_writes(_cfg(thread, "", parent), [("v", i)], "task")
    assert await saver.aget_tuple(_cfg(thread)) is not None
    assert await saver.aget_tuple(_cfg(thread, "", parent)) is not None
    assert [t async for t in saver.alist(_cfg(thread), filter={"step": 2})]
    await saver.aget_delta_channel_history(config=_cfg(thread), channels=["v"])
    await saver.acopy_thread(thread, thread + "-copy")
    await saver.adelete_for_runs(["arun"])
    await saver.aprune([thread])
    await saver.adelete_thread(thread)
    await saver.adelete_thread(thread + "-copy")


@pytest.mark.integration
async def test_every_key_a_script_touches_is_in_its_keys(
    redis_server_factory: Any, key_prefix: str
) -> None:
    server = redis_server_factory()
    settings = RedisSettings(url=server.url, key_prefix=key_prefix)
    names = {script.sha: script.name for script in SCRIPTS}
    monitor = _Monitor(server.url)
    for options in ({}, {"ttl_seconds": 600, "refresh_on_read": True}):  # + TTL paths
        saver = RedisSaver(settings=settings, **options)  # type: ignore[arg-type]
        _sync_ops(saver, f"sync-{uuid.uuid4().hex[:6]}")
        await _async_ops(saver, f"async-{uuid.uuid4().hex[:6]}")
        await saver.aclose()
    lines = monitor.stop()

    checker = redis.Redis.from_url(server.url, protocol=2)
    declared: list[bytes] | None = None
    current = ""
    ran: dict[str, int] = {}
    for line in lines:
        source, args = _monitor_args(line)
        if source != "lua":
            declared = None
            if args and args[0].upper() in (b"EVALSHA", b"EVAL"):
                sha = args[1].decode() if args[0].upper() == b"EVALSHA" else ""
                current = names.get(sha, "")
                declared = args[3 : 3 + int(args[2])] if current else None
            continue
        if declared is None:
            continue  # another script (none run here) or a failed EVALSHA
        ran[current] = ran.get(current, 0) + 1
        touched = checker.command_getkeys(*args)
        for found in touched:
            key = found.encode() if isinstance(found, str) else found
            if key == declared[0] + b":oom-probe" and args[0].upper() == b"SETRANGE":
                continue  # core's deny_oom probe: an empty SETRANGE, never a key
            assert key in declared, (
                f"{current} ran {args[0]!r} on {key!r}, not among its KEYS {declared}"
            )
    checker.close()
    assert set(ran) == {script.name for script in SCRIPTS}, f"scripts that ran: {ran}"
