"""Bytes of file content moved, counted for the metrics (issue 11: fs bytes read and written)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deepagents.backends.protocol import EditResult
from deepagents_redis.core import RecordingInstrumentation, set_instrumentation
from deepagents_redis.fs import RedisBackend
from deepagents_redis.fs._common import _outcome

pytestmark = pytest.mark.integration


@pytest.fixture
def recorder() -> Any:
    recording = RecordingInstrumentation()
    previous = set_instrumentation(recording)
    yield recording
    set_instrumentation(previous)


async def test_reads_and_writes_count_the_bytes_they_move(
    redis_settings: Any, tmp_path: Path, recorder: RecordingInstrumentation
) -> None:
    text = "héllo\n" * 3  # 21 bytes of UTF-8 for 18 characters
    with RedisBackend(settings=redis_settings, namespace="m", blob_dir=str(tmp_path)) as fs:
        assert fs.write("/a.txt", text).error is None
        assert fs.read("/a.txt").error is None
        await fs.aupload_files([("/b.bin", b"\x00\xff")])  # stored as base64: 4 bytes
        [got] = await fs.adownload_files(["/b.bin"])
        assert got.content == b"\x00\xff"
        assert fs.write("/a.txt", "x", expected_version=99).error  # refused: nothing moved
        assert fs.read("/missing.txt").error  # nothing read
        fs.edit("/a.txt", "héllo", "hi", replace_all=True)  # runs inside Redis: not counted
        await fs.aclose()
    assert recorder.total("fs.bytes_written") == 21 + 4
    assert recorder.total("fs.bytes_read") == 21 + 4


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_only_conflicts_count_as_conflicts(
    make_backend: Any, recorder: RecordingInstrumentation, mode: str
) -> None:
    # Any error whose text held "changed" counted as a conflict: a read of a missing
    # '/changed.md', an edit whose old_string 'changed' is not in the file.
    fs: RedisBackend = make_backend()

    async def run(name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(fs, name if mode == "sync" else "a" + name)
        result = method(*args, **kwargs)
        return result if mode == "sync" else await result

    assert (await run("write", "/a.txt", "text\n")).error is None
    assert (await run("read", "/changed.md")).error == "File '/changed.md' not found"
    assert (await run("edit", "/a.txt", "changed", "x")).error
    assert (await run("edit", "/kept changing.md", "a", "b")).error
    assert (await run("write", "/changed.md", "x", expected_version=99)).error
    assert recorder.total("fs.read", outcome="miss") == 1
    assert recorder.total("fs.edit", outcome="miss") == 2
    assert recorder.total("fs.write", outcome="conflict") == 1
    assert recorder.total("fs.read", outcome="conflict") == 0
    assert recorder.total("fs.edit", outcome="conflict") == 0
    gave_up = EditResult(
        error="Error: File '/a.txt' kept changing under concurrent edits; gave up after 64 "
        "attempts. Read it again and retry."
    )
    assert _outcome(gave_up) == "conflict"
