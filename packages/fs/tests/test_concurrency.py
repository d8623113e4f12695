"""Four processes x 200 edits on one file: no update is ever lost.

The workers are forked from the test process (already-imported modules; a fresh interpreter
importing deepagents takes seconds on a loaded machine) and open their own connections.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
from deepagents_redis.fs import RedisBackend

pytestmark = pytest.mark.integration

PROCS = 4


def _worker(
    settings: Any, ns: str, wid: int, edits: int, chunk_size: int, go: Any, out: Any
) -> None:
    backend = RedisBackend(
        settings=settings, namespace=ns, chunk_size=chunk_size, edit_retries=1000
    )
    errors: list[str] = []
    try:
        go.wait(60)
        for i in range(edits):
            res = backend.edit("/shared.md", "<END>", f"[w{wid}-{i}]\n<END>")
            if res.error is not None:
                errors.append(res.error)
    except Exception as exc:
        errors.append(repr(exc))
    finally:
        backend.close()
        out.put((wid, errors))


@pytest.mark.parametrize(
    ("layout", "edits", "chunk_size"),
    [
        # inline file: each edit runs as one script in Redis
        pytest.param("inline", 200, 256 * 1024, id="inline-4x200"),
        # chunked from the start: read, replace, conditional write, retry on conflict
        pytest.param("chunked", 50, 1024, id="chunked-4x50"),
    ],
)
def test_concurrent_edits_from_four_processes_lose_nothing(
    make_backend: Any, redis_target: Any, layout: str, edits: int, chunk_size: int
) -> None:
    backend = make_backend(chunk_size=chunk_size)
    ns = backend.resolve_namespace()
    header = "# log\n" + ("padding line\n" * 100 if layout == "chunked" else "")
    assert backend.write("/shared.md", header + "<END>").error is None
    assert (backend.stat("/shared.md").chunks > 1) == (layout == "chunked")
    ctx = multiprocessing.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(redis_target.settings, ns, w, edits, chunk_size, go, out))
        for w in range(PROCS)
    ]
    for p in procs:
        p.start()
    try:
        go.set()
        results = dict(out.get(timeout=100) for _ in procs)
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
        out.close()
        out.join_thread()
    assert results == {w: [] for w in range(PROCS)}
    content = backend.read("/shared.md", 0, 100_000).file_data["content"]
    lines = content.split("\n")
    markers = [f"[w{w}-{i}]" for w in range(PROCS) for i in range(edits)]
    assert sorted(line for line in lines if line.startswith("[w")) == sorted(markers)
    assert lines[0] == "# log"
    assert lines[-1] == "<END>"
    # each worker's markers appear in the order it made them
    for w in range(PROCS):
        mine = [line for line in lines if line.startswith(f"[w{w}-")]
        assert mine == [f"[w{w}-{i}]" for i in range(edits)]
