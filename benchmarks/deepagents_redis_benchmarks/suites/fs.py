"""Suite ``fs``: ``RedisBackend`` side by side with deepagents' other backends and raw redis-py.

Baselines: ``StoreBackend(InMemoryStore)``, ``StoreBackend(PostgresStore)`` (PostgreSQL on
127.0.0.1:5432, a throwaway database created and dropped here; rows are skipped with a note
when it is unreachable), ``FilesystemBackend`` on a temp dir, and raw redis-py GET/SET.

Rows: read / write / edit of a 4 KB file; ``ls`` of a 1,000-file directory; ``glob`` and
``grep`` over 1,000 files; 10 MB write + read; and the bytes an ``ls`` moves for a directory
of 1 MB files (Redis: ``INFO stats`` output-byte delta on our private server; a
``StoreBackend``: the bytes of the items its store hands back, counted by a proxy).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis

from deepagents_redis_benchmarks._harness import BenchContext, Result, drop_prefix
from deepagents_redis_benchmarks._postgres import throwaway_database

_LINE = "def handler(event):  # process one event and return the result\n"
_4KB = (_LINE * (4096 // len(_LINE) + 1))[:4096]


def _source_file(i: int) -> str:
    body = f"# module {i}\n" + _LINE * 12
    return body + ("# NEEDLE: fix me\n" if i % 100 == 7 else "")


@contextlib.contextmanager
def _postgres_store() -> Iterator[Any]:
    """A PostgresStore on a database created for this run (dropped afterwards), or None."""
    try:
        from langgraph.store.postgres import PostgresStore
    except ImportError:
        yield None
        return
    with throwaway_database("fs") as url:
        if url is None:
            yield None
            return
        with PostgresStore.from_conn_string(url) as store:
            store.setup()
            yield store


class _CountingStore:
    """Wraps a BaseStore and counts the bytes of the items its searches return."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.bytes = 0

    def search(self, *args: Any, **kwargs: Any) -> Any:
        items = self.inner.search(*args, **kwargs)
        self.bytes += sum(len(json.dumps(item.value)) for item in items)
        return items

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _store_backend(store: Any) -> Any:
    from deepagents.backends import StoreBackend

    return StoreBackend(store=store, namespace=lambda _rt: ("bench", "fs"))


def _net_out(client: redis.Redis) -> int:
    return int(client.info("stats")["total_net_output_bytes"])


def run(ctx: BenchContext) -> list[Result]:
    """Measure RedisBackend against every baseline."""
    from deepagents.backends import FilesystemBackend
    from deepagents_redis.core import RedisSettings
    from deepagents_redis.fs import RedisBackend
    from langgraph.store.memory import InMemoryStore

    results: list[Result] = []
    prefix = f"bench:fs:{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-fs-"))
    raw = redis.Redis.from_url(ctx.url)
    ours = RedisBackend(
        settings=RedisSettings(url=ctx.url, key_prefix=prefix),
        namespace="bench",
        blob_dir=str(tmp / "blobs"),
    )
    try:
        with _postgres_store() as pg:
            baselines: dict[str, Any] = {
                "StoreBackend(InMemoryStore)": _store_backend(InMemoryStore()),
                "FilesystemBackend(tmp dir)": FilesystemBackend(
                    root_dir=tmp / "fsb", virtual_mode=True
                ),
            }
            (tmp / "fsb").mkdir()
            if pg is not None:
                baselines["StoreBackend(PostgresStore)"] = _store_backend(pg)
            _run_rows(ctx, results, ours, baselines, raw, prefix, pg is not None)
    finally:
        with contextlib.suppress(Exception):
            ours.delete("/")
        ours.close()
        raw.close()
        drop_prefix(ctx.url, prefix)
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def _row(
    ctx: BenchContext,
    results: list[Result],
    name: str,
    ours: Callable[[], object],
    baseline_name: str,
    baseline: Callable[[], object],
    *,
    iterations: int,
    notes: str = "",
) -> None:
    mine, theirs = ctx.compare(
        ours, baseline, iterations=iterations, warmup=max(1, iterations // 10)
    )
    results.append(
        Result(name=name, ours=mine, baseline=baseline_name, baseline_timing=theirs, notes=notes)
    )


def _run_rows(
    ctx: BenchContext,
    results: list[Result],
    ours: Any,
    baselines: dict[str, Any],
    raw: redis.Redis,
    prefix: str,
    have_pg: bool,
) -> None:
    small = ctx.n(2000)
    heavy = ctx.n(200)
    everyone = {"RedisBackend": ours, **baselines}

    # --- 4 KB read / write / edit
    for b in everyone.values():
        b.write("/doc/4k.txt", _4KB)
    raw.set(f"{prefix}:raw4k", _4KB)

    for label, b in baselines.items():
        _row(
            ctx,
            results,
            "RedisBackend read 4 KB",
            lambda: ours.read("/doc/4k.txt"),
            f"{label} read 4 KB",
            lambda b=b: b.read("/doc/4k.txt"),
            iterations=small,
        )
    _row(
        ctx,
        results,
        "RedisBackend read 4 KB",
        lambda: ours.read("/doc/4k.txt"),
        "redis-py GET 4 KB",
        lambda: raw.get(f"{prefix}:raw4k"),
        iterations=small,
        notes="read also slices lines and builds a ReadResult",
    )
    for label, b in baselines.items():
        _row(
            ctx,
            results,
            "RedisBackend write 4 KB",
            lambda: ours.write("/doc/4k.txt", _4KB),
            f"{label} write 4 KB",
            lambda b=b: b.write("/doc/4k.txt", _4KB),
            iterations=small,
        )
    _row(
        ctx,
        results,
        "RedisBackend write 4 KB",
        lambda: ours.write("/doc/4k.txt", _4KB),
        "redis-py SET 4 KB",
        lambda: raw.set(f"{prefix}:raw4k", _4KB),
        iterations=small,
        notes="write updates index, directory and metadata in one script",
    )

    def edit_of(b: Any) -> Callable[[], None]:
        # toggles between two spellings so the file keeps its size whatever the call count
        state = {"n": 0}

        def go() -> None:
            old, new = (
                ("def handler(", "def handlr(")
                if state["n"] % 2 == 0
                else ("def handlr(", "def handler(")
            )
            state["n"] += 1
            b.edit("/doc/4k.txt", old, new, replace_all=True)

        return go

    ours_edit = edit_of(ours)

    for b in everyone.values():
        b.write("/doc/4k.txt", _4KB)
    for label, b in baselines.items():
        _row(
            ctx,
            results,
            "RedisBackend edit 4 KB",
            ours_edit,
            f"{label} edit 4 KB",
            edit_of(b),
            iterations=small,
            notes="~64 replacements per edit",
        )

    raw_state = {"n": 0}

    def raw_edit() -> None:
        old, new = (b"def handler(", b"def handlr(")
        if raw_state["n"] % 2:
            old, new = new, old
        raw_state["n"] += 1
        value = raw.get(f"{prefix}:raw4k")
        assert value is not None
        raw.set(f"{prefix}:raw4k", value.replace(old, new))

    _row(
        ctx,
        results,
        "RedisBackend edit 4 KB",
        ours_edit,
        "redis-py GET+SET 4 KB",
        raw_edit,
        iterations=small,
        notes="ours is atomic (no lost updates); GET+SET is not",
    )

    # --- 1,000 files: ls, glob, grep
    files = ctx.n(1000)
    payload = [(f"/proj/src/mod_{i:04d}.py", _source_file(i).encode()) for i in range(files)]
    for b in everyone.values():
        b.upload_files(payload)
    for label, b in baselines.items():
        _row(
            ctx,
            results,
            f"RedisBackend ls ({files} files)",
            lambda: ours.ls("/proj/src"),
            f"{label} ls",
            lambda b=b: b.ls("/proj/src"),
            iterations=heavy,
        )
    for label, b in baselines.items():
        _row(
            ctx,
            results,
            f"RedisBackend glob **/*.py ({files} files)",
            lambda: ours.glob("**/*.py", "/proj"),
            f"{label} glob",
            lambda b=b: b.glob("**/*.py", "/proj"),
            iterations=heavy,
        )
    for label, b in baselines.items():
        _row(
            ctx,
            results,
            f"RedisBackend grep NEEDLE ({files} files)",
            lambda: ours.grep("NEEDLE", "/proj"),
            f"{label} grep",
            lambda b=b: b.grep("NEEDLE", "/proj"),
            iterations=heavy,
        )
    for b in everyone.values():
        b.delete("/proj")

    # --- 10 MB write + read
    big = ctx.n(10 * 1024 * 1024 // 1000) * 1000  # 10 MB (smoke: ~250 KB)
    text = (_LINE * (big // len(_LINE) + 1))[:big]
    reps = ctx.n(40)

    def wr(b: Any) -> Callable[[], None]:
        def go() -> None:
            b.write("/big/10mb.txt", text)
            b.read("/big/10mb.txt", 0, 10)

        return go

    size = f"{len(text) / 1e6:.1f} MB"
    for label, b in baselines.items():
        if "Postgres" in label:
            continue  # one 10 MB jsonb value per call: measured once below, not in the loop
        _row(
            ctx,
            results,
            f"RedisBackend write+read {size}",
            wr(ours),
            f"{label} write+read {size}",
            wr(b),
            iterations=reps,
        )

    def raw_wr() -> None:
        raw.set(f"{prefix}:big", text)
        raw.get(f"{prefix}:big")

    _row(
        ctx,
        results,
        f"RedisBackend write+read {size}",
        wr(ours),
        f"redis-py SET+GET {size} (one value)",
        raw_wr,
        iterations=reps,
        notes=(
            "ours: 256 KiB chunks staged in one MULTI per 2 MiB, then committed by one script "
            "call; "
            "read: HMGET metadata, HMGET chunks"
        ),
    )
    if have_pg:
        _row(
            ctx,
            results,
            f"RedisBackend write+read {size}",
            wr(ours),
            f"StoreBackend(PostgresStore) write+read {size}",
            wr(baselines["StoreBackend(PostgresStore)"]),
            iterations=ctx.n(5) if ctx.smoke else 5,
        )
    for b in everyone.values():
        b.delete("/big")

    # --- bytes moved by ls of a directory of 1 MB files
    count = 3 if ctx.smoke else 20
    mb = (_LINE * (1024 * 1024 // len(_LINE) + 1))[: 1024 * 1024]
    for i in range(count):
        ours.write(f"/blobs/f{i}.txt", mb)
    # INFO's own reply is counted too: measure one INFO round alone and subtract it
    before = _net_out(raw)
    info_cost = _net_out(raw) - before
    ours.ls("/blobs")
    before = _net_out(raw)
    ours.ls("/blobs")
    ours_bytes = max(0, _net_out(raw) - before - info_cost)
    store = InMemoryStoreCounting()
    sb = _store_backend(store)
    for i in range(count):
        sb.write(f"/blobs/f{i}.txt", mb)
    store.bytes = 0
    sb.ls("/blobs")
    _row(
        ctx,
        results,
        f"RedisBackend ls of {count} x 1 MB files",
        lambda: ours.ls("/blobs"),
        "StoreBackend(InMemoryStore) ls",
        lambda: sb.ls("/blobs"),
        iterations=ctx.n(100),
        notes=f"bytes moved per ls: ours ~{ours_bytes} B (server output); "
        f"StoreBackend's store returned {store.bytes} B of items",
    )
    ours.delete("/blobs")


def InMemoryStoreCounting() -> Any:
    """An InMemoryStore whose searches are byte-counted."""
    from langgraph.store.memory import InMemoryStore

    return _CountingStore(InMemoryStore())
