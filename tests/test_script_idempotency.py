"""Every mutating Lua script of every phase is retry-safe (issue 8 defect 3).

A script re-sent after a lost reply runs twice. fs's delete did: a retry deleted a file another
worker had written in between. The rule: a script that writes goes through core's op-id
wrapper (`IdempotentScript`), unless each of its writes is idempotent by construction, and
then it is listed below with the reason. A new mutating script fails this test until it is
one or the other.
"""

from __future__ import annotations

import importlib
import re

import pytest
from deepagents_redis.core import IdempotentScript, LuaScript, registered_scripts

PHASE_MODULES = [
    "deepagents_redis.cache._scripts",
    "deepagents_redis.cache._llm",
    "deepagents_redis.cache._node",
    "deepagents_redis.todos._repository",
    "deepagents_redis.fs._backend",
    "deepagents_redis.checkpoint._scripts",
]

_WRITES = re.compile(
    r"redis\.call\(\s*['\"](SET|SETEX|PSETEX|SETNX|GETSET|GETDEL|DEL|UNLINK|HSET|HSETNX|HDEL|"
    r"HINCRBY|INCR|INCRBY|DECR|DECRBY|APPEND|EXPIRE|PEXPIRE|EXPIREAT|PEXPIREAT|PERSIST|"
    r"ZADD|ZREM|ZINCRBY|ZPOPMIN|ZPOPMAX|SADD|SREM|SPOP|LPUSH|RPUSH|LPOP|RPOP|LREM|LTRIM|"
    r"XADD|XTRIM|XDEL|XACK|XGROUP|RENAME|COPY|RESTORE)['\"]",
    re.IGNORECASE,
)

# Scripts that write but need no op id, each with the reason a re-run changes nothing more.
IDEMPOTENT_BY_CONSTRUCTION = {
    # PEXPIRE of a fresh hit to the same TTL: a re-run sets the same lifetime.
    "cache_read",
    # SET NX of the caller's own random token; a re-run finds its own token (answers 2).
    "cache_acquire",
    # cache_read's PEXPIRE of a fresh hit, or cache_acquire's SET NX of the caller's token:
    # a re-run sets the same lifetime or finds its own token.
    "cache_lookup",
    # SET of the same bytes under the same key (and DEL of the caller's own lease, compared
    # by token): a re-run writes the same entry again; an entry is a pure function of its
    # key, so no one else's is lost.
    "cache_write",
    # ... and cache_write_many's SET NX of '0' to an absent generation counter: a re-run
    # finds it there.
    "cache_write_many",
    # Bumps generation counters (INCR; an empty one SET to the server clock): a re-run bumps
    # once more, which drops nothing a clear at the re-run's time would keep (entries stored
    # in the moment between the two runs). clear() was a plain INCR, retried the same way.
    "cache_clear",
    # Drops index entries whose expiry has passed and whose path was not rewritten since; a
    # re-run finds nothing left to drop (a rewritten path is left alone both times).
    "fs_purge",
    # Pushes a file's expiry to now + its TTL on read: a re-run sets about the same time.
    "fs_read",
    # HSET of a big write's chunks into its own stage hash ('<generation>:<i>' fields, the same
    # bytes on a re-run) and PEXPIRE to the same TTL: a re-run stages the same chunks again.
    "fs_stage",
    # Claims blob refs whose grace passed (ZREM). A lost reply loses only the list of claimed
    # refs; their blobs are then orphans, which gc()'s sweep deletes after orphan_grace.
    "fs_gc_claim",
    # SET of a fixed fence record under a failed write's own op-id key, only while that key
    # is empty and nothing names the write's blob, or PEXPIRE of the write's own CONFLICT
    # record to the same lifetime; a re-run finds its fence (or the record) and answers the
    # same (the fence keeps the commit from applying in between).
    "fs_fence",
    # A checkpoint is a pure function of its id: a re-run of a put rewrites the same fields,
    # blobs (keyed by channel version) and index members; TTLs are set to the same lifetime.
    "ckpt_put",
    # A write listed first for (task, index) stays, as LangGraph requires (values no list
    # names, left by a call whose script never ran, are replaced); special writes (error,
    # interrupt) are HSET to the same bytes. A re-run stores nothing new.
    "ckpt_put_writes",
    # Drops index entries whose checkpoint is gone and renews TTLs: a re-run finds nothing
    # left to drop and sets the same lifetimes.
    "ckpt_read",
    # Selects what to delete by the caller's request at run time (the thread, one run's
    # checkpoints, all but each namespace's newest): a re-run finds those already gone and
    # deletes only what the same request names (e.g. a checkpoint the doomed run wrote since).
    "ckpt_delete",
}


def _phase_scripts() -> list[LuaScript]:
    # Importing a phase registers its scripts with core (registered_scripts); the registry,
    # not a scan of module globals, is the list.
    for name in PHASE_MODULES:
        importlib.import_module(name)
    # Phase scripts are named <phase>_<what>; tests register scripts of their own.
    phase = ("cache_", "todos_", "fs_", "ckpt_")
    return sorted(
        (s for s in registered_scripts().values() if s.name.startswith(phase)),
        key=lambda s: s.name,
    )


def _body(script: LuaScript) -> str:
    return script.body if isinstance(script, IdempotentScript) else script.source


def test_the_list_sees_every_phase() -> None:
    names = {s.name for s in _phase_scripts()}
    # Guards the collector itself: if it found nothing the test below would pass vacuously.
    assert {"fs_write", "fs_delete", "todos_mutate", "cache_write"} <= names, names


@pytest.mark.parametrize("script", _phase_scripts(), ids=lambda s: s.name)
def test_mutating_scripts_are_idempotent(script: LuaScript) -> None:
    if not _WRITES.search(_body(script)):
        return  # read-only
    assert isinstance(script, IdempotentScript) or script.name in IDEMPOTENT_BY_CONSTRUCTION, (
        f"{script.name} writes but has no op id: wrap it in IdempotentScript (run through "
        "run_idempotent) or justify it in IDEMPOTENT_BY_CONSTRUCTION"
    )


def test_allowlist_has_no_stale_entries() -> None:
    scripts = {s.name: s for s in _phase_scripts()}
    for name in IDEMPOTENT_BY_CONSTRUCTION:
        assert name in scripts, f"{name} no longer exists"
        assert not isinstance(scripts[name], IdempotentScript), f"{name} has an op id now"
        assert _WRITES.search(_body(scripts[name])), f"{name} no longer writes"
