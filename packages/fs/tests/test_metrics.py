"""Bytes of file content moved, counted for the metrics (issue 11: fs bytes read and written)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deepagents_redis.core import RecordingInstrumentation, set_instrumentation
from deepagents_redis.fs import RedisBackend

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
