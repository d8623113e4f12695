"""One contract for every Lua script of every phase (issue 9 §4).

Every script registers itself with core (`registered_scripts`); this test imports every phase
and checks each one: its header says what KEYS and ARGV are, it compiles on the standalone
server and on every Cluster primary, and after `SCRIPT FLUSH` the next call loads it again
(EVALSHA, NOSCRIPT, EVAL) instead of failing.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

import pytest
import redis
from deepagents_redis.core import LuaScript, registered_scripts

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
PHASE_PREFIXES = ("cache_", "todos_", "fs_", "coord_", "ckpt_")
SCRIPTS = sorted(
    (name, script)
    for name, script in registered_scripts().items()
    if name.startswith(PHASE_PREFIXES)
)
EXPECTED = {"cache_read", "cache_acquire", "cache_write", "cache_write_many", "todos_mutate"}


def test_every_phase_registers_its_scripts() -> None:
    names = {name for name, _ in SCRIPTS}
    assert names >= EXPECTED
    assert {n for n in names if n.startswith("fs_")} >= {"fs_write", "fs_edit", "fs_delete"}
    assert {n for n in names if n.startswith("coord_")} >= {"coord_claim", "coord_finish"}
    assert {n for n in names if n.startswith("ckpt_")} >= {"ckpt_put", "ckpt_read"}


@pytest.mark.parametrize(("name", "script"), SCRIPTS, ids=[n for n, _ in SCRIPTS])
def test_header_names_keys_and_argv(name: str, script: LuaScript) -> None:
    head = [line for line in script.source.strip().splitlines()[:6] if line.strip()]
    assert head
    assert head[0].lstrip().startswith("--"), f"{name}: no header comment"
    header = "\n".join(line for line in head if line.lstrip().startswith("--"))
    assert "KEYS" in header, f"{name}: the header does not say what KEYS are"


def _primaries(target: Any) -> list[Any]:
    client = target.client
    if isinstance(client, redis.RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


@pytest.mark.integration
@pytest.mark.parametrize(("name", "script"), SCRIPTS, ids=[n for n, _ in SCRIPTS])
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
