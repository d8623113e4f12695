"""One contract for every Lua script of every phase (issue 9 §4).

Every script registers itself with core (`registered_scripts`); this test imports every phase
and checks each one:

- its Lua comes from ``.lua`` files of its phase's package (``lua/`` folder, read through
  `importlib.resources`), joined as they are: what the file says is what the server runs;
- the script's own file (first line ``-- <name>: ...``) is headed by its contract: ``-- KEYS``,
  ``-- ARGV``, ``-- Returns`` and ``-- Errors`` sections, and indexes KEYS/ARGV by a literal
  position only where it binds a named local (``local plan_key = KEYS[1]``);
- every copy of core's deny-oom probe is core's line (`deny_oom`);
- it compiles on the standalone server and on every Cluster primary, and after
  ``SCRIPT FLUSH`` the next call loads it again (EVALSHA, NOSCRIPT, EVAL) instead of failing;
- the keys a phase calls it with share one hash slot, for every call a short run of each
  phase's public operations makes (standalone, where nothing else would notice; on a Cluster
  redis-py refuses such a call itself, so every phase suite's Cluster run checks it too).
"""

from __future__ import annotations

import contextlib
import importlib
import re
import threading
import uuid
from importlib import resources
from typing import Any

import pytest
import redis
from deepagents_redis.core import (
    IdempotentScript,
    InvalidInputError,
    LuaScript,
    RedisConnector,
    deny_oom,
    load_lua,
    registered_scripts,
)
from redis.crc import key_slot

PHASES = [
    "deepagents_redis.cache._scripts",
    "deepagents_redis.todos._repository",
    "deepagents_redis.fs._backend",
    "deepagents_redis.coord._scripts",
    "deepagents_redis.checkpoint._scripts",
]
for module in PHASES:
    importlib.import_module(module)

# Phase scripts are named <phase>_<what>; tests register scripts of their own (the registry
# is process-wide), which this contract does not cover.
PACKAGES = {
    "cache_": "deepagents_redis.cache",
    "todos_": "deepagents_redis.todos",
    "fs_": "deepagents_redis.fs",
    "coord_": "deepagents_redis.coord",
    "ckpt_": "deepagents_redis.checkpoint",
}
PHASE_PREFIXES = tuple(PACKAGES)
SCRIPTS = sorted(
    (name, script)
    for name, script in registered_scripts().items()
    if name.startswith(PHASE_PREFIXES)
)
IDS = [n for n, _ in SCRIPTS]
EXPECTED = {"cache_read", "cache_acquire", "cache_write", "cache_write_many", "todos_mutate"}
# Scripts whose first write may be a cleanup (DEL, HDEL): they must probe before it.
DENY_OOM = {"ckpt_put", "ckpt_put_writes", "fs_write", "fs_edit"}

_LITERAL_INDEX = re.compile(r"\b(?:KEYS|ARGV|keys|argv)\[\d+\]")
_PROBE = re.compile(r"^redis\.call\('SETRANGE', (.+) \.\. ':oom-probe', 0, ''\)$", re.MULTILINE)


def _package(name: str) -> str:
    return next(package for prefix, package in PACKAGES.items() if name.startswith(prefix))


def _files(script: LuaScript) -> list[tuple[str, str]]:
    """(file name, text) of each file the script was built from, read here independently."""
    assert script.origin is not None, f"{script.name}: not built from .lua files"
    package, names = script.origin
    folder = resources.files(package).joinpath("lua")
    return [(name, folder.joinpath(name).read_text(encoding="utf-8")) for name in names]


def _header(text: str) -> list[str]:
    """The leading comment lines of a file."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line)
    return lines


def _own_file(name: str, script: LuaScript) -> tuple[str, str]:
    own = [(f, text) for f, text in _files(script) if text.startswith(f"-- {name}:")]
    assert len(own) == 1, f"{name}: no single file is headed '-- {name}: ...'"
    return own[0]


def test_every_phase_registers_its_scripts() -> None:
    names = {name for name, _ in SCRIPTS}
    assert names >= EXPECTED
    assert {n for n in names if n.startswith("fs_")} >= {"fs_write", "fs_edit", "fs_delete"}
    assert {n for n in names if n.startswith("coord_")} >= {"coord_claim", "coord_finish"}
    assert {n for n in names if n.startswith("ckpt_")} >= {"ckpt_put", "ckpt_read"}


@pytest.mark.parametrize(("name", "script"), SCRIPTS, ids=IDS)
def test_lua_comes_from_the_phase_package_files_as_written(name: str, script: LuaScript) -> None:
    assert script.origin is not None, f"{name}: Lua given as a Python string"
    package, names = script.origin
    assert package == _package(name)
    files = _files(script)
    for file, text in files:
        assert file.endswith(".lua")
        assert text.endswith("\n"), f"{file}: no final newline"
        assert text.startswith("--"), f"{file}: not headed by a comment"
    joined = "".join(text for _, text in files)
    # An IdempotentScript's files are its body; core's wrapper goes around them unchanged.
    lua = script.body if isinstance(script, IdempotentScript) else script.source
    assert lua == joined == load_lua(package, *names)
    if isinstance(script, IdempotentScript):
        assert joined in script.source


@pytest.mark.parametrize(("name", "script"), SCRIPTS, ids=IDS)
def test_header_names_keys_argv_returns_and_errors(name: str, script: LuaScript) -> None:
    file, text = _own_file(name, script)
    header = _header(text)
    for section in ("KEYS", "ARGV", "Returns", "Errors"):
        assert any(line.startswith(f"-- {section}") for line in header), (
            f"{file}: the header has no '-- {section}' section"
        )


@pytest.mark.parametrize(("name", "script"), SCRIPTS, ids=IDS)
def test_keys_and_argv_by_position_only_in_named_locals(name: str, script: LuaScript) -> None:
    for file, text in _files(script):
        for number, line in enumerate(text.splitlines(), 1):
            code = line.split("--", 1)[0].strip()
            if _LITERAL_INDEX.search(code) and not code.startswith("local "):
                pytest.fail(f"{file}:{number}: bind KEYS/ARGV to a named local: {line.strip()}")


@pytest.mark.parametrize(("name", "script"), SCRIPTS, ids=IDS)
def test_deny_oom_probes_are_cores_line(name: str, script: LuaScript) -> None:
    lua = script.body if isinstance(script, IdempotentScript) else script.source
    probes = _PROBE.findall(lua)
    for key in probes:
        assert deny_oom(key) in lua, f"{name}: a probe that is not core's deny_oom({key!r})"
    if name in DENY_OOM:
        assert probes, f"{name}: its first write may be a cleanup, so it must probe first"


def test_loader_contract() -> None:
    with pytest.raises(InvalidInputError):
        load_lua("deepagents_redis.cache")
    with pytest.raises(FileNotFoundError):
        load_lua("deepagents_redis.cache", "no-such-script.lua")
    assert LuaScript("contract_inline", "return 1").origin is None


def _primaries(target: Any) -> list[Any]:
    client = target.client
    if isinstance(client, redis.RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


@pytest.mark.integration
@pytest.mark.parametrize(("name", "script"), SCRIPTS, ids=IDS)
def test_compiles_everywhere_and_reloads_after_flush(
    redis_target: Any, name: str, script: LuaScript
) -> None:
    for node in _primaries(redis_target):
        assert node.script_load(script.source) == script.sha
    for node in _primaries(redis_target):
        node.script_flush()
    # Keys in one slot, numeric arguments: the script may refuse them (its error reply),
    # but the call must have loaded it again on the node that owns the slot.
    keys = [f"{redis_target.key_prefix}:contract:{{{name}}}:{i}" for i in range(8)]
    client = redis_target.client
    with contextlib.suppress(Exception):  # any reply or script error is fine here
        script(client, keys=keys, args=["0"] * 8)
    owner = client
    if isinstance(client, redis.RedisCluster):
        owner = client.get_redis_connection(client.get_node_from_key(keys[0]))
    assert owner.script_exists(script.sha) == [True]


# What the run below must reach at least; the other scripts (rare paths: a full backlog, a
# lost lease, expired files, reads that renew a TTL...) are checked for one slot by the
# phases' Cluster runs.
EXERCISED = {
    "cache_read",
    "cache_lookup",
    "cache_write",
    "cache_write_many",
    "todos_mutate",
    "fs_write",
    "fs_edit",
    "fs_ls",
    "fs_list",
    "fs_grep",
    "fs_delete",
    "ckpt_put",
    "ckpt_put_writes",
    "ckpt_read",
    "ckpt_delete",
    "coord_create",
    "coord_enqueue",
    "coord_claim",
    "coord_finish",
    "coord_send",
    "coord_cancel",
    "coord_publish",
}


@pytest.fixture
def script_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Any]]]:
    """Every script call (name, keys) made while the test runs, sync or async."""
    calls: list[tuple[str, list[Any]]] = []
    lock = threading.Lock()  # the coord worker calls from its own thread
    run_raw, arun_raw = LuaScript.run_raw, LuaScript.arun_raw

    def record(script: LuaScript, keys: Any, args: Any) -> None:
        with lock:
            if not script.name.startswith("chain("):
                calls.append((script.name, list(keys)))
                return
            # A driver Chain (one script made of its steps): record each step with its own
            # keys, split by the counts that head ARGV (core's _chain layout).
            steps = script.name[len("chain(") : -1].split(",")
            at = 0
            for index, step in enumerate(steps):
                count = int(args[2 * index])
                calls.append((step, list(keys[at : at + count])))
                at += count

    def spy(self: LuaScript, client: Any, keys: Any = (), args: Any = ()) -> Any:
        record(self, keys, args)
        return run_raw(self, client, keys, args)

    async def aspy(self: LuaScript, client: Any, keys: Any = (), args: Any = ()) -> Any:
        record(self, keys, args)
        return await arun_raw(self, client, keys, args)

    monkeypatch.setattr(LuaScript, "run_raw", spy)
    monkeypatch.setattr(LuaScript, "arun_raw", aspy)
    return calls


def _run_every_phase(connector: RedisConnector, settings: Any) -> None:
    from deepagents_redis.cache import RedisLLMCache, RedisNodeCache
    from deepagents_redis.checkpoint import RedisSaver
    from deepagents_redis.coord import Event, EventBus, TaskClient, Worker
    from deepagents_redis.fs import RedisBackend
    from deepagents_redis.todos import RedisTodoRepository
    from langchain_core.outputs import Generation
    from langgraph.checkpoint.base import empty_checkpoint

    scope = f"slots-{uuid.uuid4().hex[:8]}"
    llm = RedisLLMCache(connector=connector, namespace=scope, single_flight=True)
    assert llm.lookup("prompt", "llm") is None
    llm.update("prompt", "llm", [Generation(text="answer")])
    assert llm.lookup("prompt", "llm") is not None
    plain = RedisLLMCache(connector=connector, namespace=scope, single_flight=False)
    assert plain.lookup("prompt", "llm") is not None
    node: RedisNodeCache[Any] = RedisNodeCache(connector=connector)
    node.set({(("graph", scope), "k"): ({"v": 1}, 60)})

    todos = RedisTodoRepository(connector=connector)
    item = todos.add(scope, "write the report").items[0]
    todos.complete(scope, item.id)

    fs = RedisBackend(connector=connector, namespace=scope)
    assert fs.write("/docs/a.txt", "hello\nworld").error is None
    assert fs.edit("/docs/a.txt", "world", "there").error is None
    read = fs.read("/docs/a.txt").file_data
    assert read is not None
    assert "there" in read["content"]
    fs.ls("/docs")
    fs.glob("*.txt", "/docs")
    fs.grep("there", "/docs")
    fs.delete("/docs/a.txt")

    saver = RedisSaver(connector=connector)
    config: Any = {"configurable": {"thread_id": scope, "checkpoint_ns": ""}}
    stored = saver.put(config, empty_checkpoint(), {"source": "input", "step": -1}, {})
    saver.put_writes(stored, [("channel", "value")], "task-1")
    assert saver.get_tuple(stored) is not None
    assert list(saver.list(config))
    saver.delete_thread(scope)

    # (a keyed event goes through coord_publish; an unkeyed one is a plain XADD)
    event = Event(source=f"dar://{scope}/contract", type="dev.example.noted", idempotencykey="k1")
    EventBus(connector=connector, namespace=scope).publish("topic", event)
    tasks = TaskClient(connector=connector, namespace=scope, check_agents=False)
    # A keyed submit runs coord_create and coord_enqueue one by one; an unkeyed one (below)
    # runs them as a driver Chain, which the spy records step by step.
    waiting = tasks.submit("echo", {"n": 1}, idempotency_key=f"{scope}-waiting")
    tasks.send(waiting, {"hint": 1})
    tasks.cancel(waiting)
    worker = Worker(
        settings=settings,
        namespace=scope,
        agents={"echo": lambda x: x},
        lease_seconds=1.5,
        heartbeat_seconds=0.25,
        block_seconds=0.2,  # a short blocking read: the worker stops quickly
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert tasks.result(tasks.submit("echo", {"n": 2}), timeout=30) == {"n": 2}
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive(), "the worker did not stop"


_LOGGED_ON_ONE_SERVER = frozenset({"coord_claim", "coord_finish", "coord_handback", "coord_take"})
"""Scripts that take the namespace log's key as a last, extra key on a single server only."""

_TASK_KEYS_ON_ONE_SERVER = frozenset({"coord_enqueue"})
"""Scripts that take a task's record, events and inbox keys (another slot) as three last,
extra keys on a single server only, to drop the TTL a new record lives with until it is
queued in the same call; on a Cluster the submit sends `coord_confirm` instead."""


def _text(key: Any) -> str:
    return key.decode() if isinstance(key, bytes) else str(key)


@pytest.mark.integration
def test_every_call_keeps_its_keys_in_one_slot(
    redis_settings: Any, script_calls: list[tuple[str, list[Any]]]
) -> None:
    connector = RedisConnector(settings=redis_settings)
    try:
        _run_every_phase(connector, redis_settings)
    finally:
        connector.close()
    for name, keys in script_calls:
        if name in _LOGGED_ON_ONE_SERVER and keys and _text(keys[-1]).endswith("/log}:events"):
            # On a single server (this test's) coord's claim, finish, take and handback also
            # write the namespace log, another slot; on a Cluster the worker leaves that key
            # out (the coord tests run these scripts on a real Cluster, which refuses
            # CROSSSLOT).
            keys = keys[:-1]
        if name in _TASK_KEYS_ON_ONE_SERVER and len(keys) == 7:
            keys = keys[:4]
        slots = {key_slot(k.encode() if isinstance(k, str) else k) for k in keys}
        assert len(slots) <= 1, f"{name} was called with keys in {len(slots)} slots: {keys}"
    seen = {name for name, _ in script_calls}
    assert seen >= EXERCISED, f"not reached: {sorted(EXERCISED - seen)}"
