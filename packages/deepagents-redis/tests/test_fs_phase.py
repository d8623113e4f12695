"""The fs phase in the umbrella: ``fs copy`` / ``fs gc``, the demo section, the agent hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from deepagents.backends import StateBackend
from deepagents_redis.agent import AgentBuild, AgentRedisSettings
from deepagents_redis.agent._phases import wire_fs
from deepagents_redis.cli import main
from deepagents_redis.cli._demo import DemoContext, run_sections
from deepagents_redis.cli._exit import EXIT_OK, EXIT_USAGE
from deepagents_redis.core import RedisConnector
from deepagents_redis.fs import RedisBackend

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, key_prefix: str) -> None:
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    monkeypatch.setenv("DEEPAGENTS_REDIS_KEY_PREFIX", key_prefix)
    monkeypatch.delenv("DEEPAGENTS_REDIS_FS_ENABLED", raising=False)


def test_fs_copy_dir_to_redis_to_redis_to_dir(
    tmp_path: Path, redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "c.txt").write_text("deep\n")
    (src / "top.md").write_text("# top\n")
    (src / "bin.dat").write_bytes(b"\x00\xff\x10")
    assert main(["fs", "copy", str(src), f"{redis_url}#team-a"]) == EXIT_OK
    assert "copied 3 files" in capsys.readouterr().out
    assert main(["fs", "copy", "--json", f"{redis_url}#team-a", f"{redis_url}#team-b"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert (report["copied"], report["failed"]) == (3, [])
    out_dir = tmp_path / "out"
    assert main(["fs", "copy", f"{redis_url}#team-b", f"dir:{out_dir}", "--path", "/a"]) == 0
    assert (out_dir / "a" / "b" / "c.txt").read_text() == "deep\n"
    assert not (out_dir / "top.md").exists()
    with RedisBackend(url=redis_url, namespace="team-b") as b:
        assert b.download_files(["/bin.dat"])[0].content == b"\x00\xff\x10"
        assert b.stat("/top.md") is not None
    assert main(["fs", "copy", str(tmp_path / "missing"), f"{redis_url}#x"]) == EXIT_USAGE


def test_fs_gc_command(tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    blobs = tmp_path / "blobs"
    with RedisBackend(url=redis_url, namespace="gc", blob_dir=str(blobs), spill_threshold=10) as b:
        b.write("/big.txt", "x" * 100)
        b.write("/big.txt", "y" * 100)  # the first blob is deleted by the overwrite
        prefix = b._blob_prefix("gc")
        b.blob_store.put(prefix + "0/orphan", b"left")
    code = main(["fs", "gc", f"{redis_url}#gc", "--blob-dir", str(blobs), "--orphan-grace", "0"])
    assert code == EXIT_OK
    assert "removed 1 blobs" in capsys.readouterr().out
    with RedisBackend(url=redis_url, namespace="gc", blob_dir=str(blobs)) as b:
        assert b.read("/big.txt").file_data["content"] == "y" * 100


def test_demo_fs_section(redis_url: str, key_prefix: str) -> None:
    lines: list[str] = []
    with RedisConnector(url=redis_url) as connector:
        ctx = DemoContext(connector=connector, url=redis_url, source="test", out=lines.append)
        assert run_sections(ctx, only=["fs"]) == ["fs"]
    assert ctx.facts["fs_edit_seen"] is True
    before, after = ctx.facts["fs_versions"]
    assert after > before
    text = "\n".join(lines)
    assert "process B" in text
    assert "sees the edit: True" in text
    # the demo cleaned up its namespace's files
    with redis.Redis.from_url(redis_url) as raw:
        leftover = [k for k in raw.scan_iter(match=f"{key_prefix}:*:fs:*:m:*", count=1000)]
    assert leftover == []


def _build(redis_url: str, **kwargs: Any) -> AgentBuild:
    return AgentBuild(
        kwargs={"backend": None, **kwargs},
        flags=AgentRedisSettings(fs_enabled=True),
        connector=RedisConnector(url=redis_url),
    )


def test_agent_wiring_sets_a_redis_backend(redis_url: str) -> None:
    build = _build(redis_url)
    build.notes.extend(wire_fs(build))
    backend = build.kwargs["backend"]
    try:
        assert isinstance(backend, RedisBackend)
        assert backend.resolve_namespace() == "default"
        assert backend.connector is build.connector
        assert build.components == [backend]
        assert any("RedisBackend" in n for n in build.notes)
    finally:
        build.shared().close()
    # an explicit backend is never replaced
    mine = StateBackend()
    build = _build(redis_url, backend=mine)
    wire_fs(build)
    assert build.kwargs["backend"] is mine


@pytest.mark.parametrize("path", ["../../etc", "/a/../../..", "~/secrets", "a/..\\..\\x"])
def test_fs_copy_refuses_a_path_outside_the_tree(
    tmp_path: Path, redis_url: str, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: a directory source raised deepagents' "Path traversal not allowed" as a
    # traceback (exit 1). Now a usage error before anything is opened.
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    with pytest.raises(SystemExit) as exited:
        main(["fs", "copy", str(src), f"{redis_url}#trav", "--path", path])
    assert exited.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "leaves the file tree" in err
    assert "Traceback" not in err
    with RedisBackend(url=redis_url, namespace="trav") as b:
        assert b.ls("/").entries == []


@pytest.mark.parametrize("grace", ["-60", "nan", "inf", "soon"])
def test_fs_gc_refuses_a_grace_that_is_not_a_finite_non_negative_number(
    tmp_path: Path, redis_url: str, grace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: -60 moved the cutoff a minute into the future, so a blob whose mtime is a
    # little ahead (a shared blob directory on another host's clock) was deleted before its
    # writer committed it; nan deleted nothing and said "removed 0 blobs", exit 0.
    import os
    import time

    blobs = tmp_path / "blobs"
    with RedisBackend(url=redis_url, namespace="gc2", blob_dir=str(blobs)) as b:
        ref = b._blob_prefix("gc2") + "0/in-flight"
        b.blob_store.put(ref, b"uploaded, not yet committed")
    (written,) = [p for p in blobs.rglob("*") if p.is_file()]
    ahead = time.time() + 30
    os.utime(written, (ahead, ahead))
    with pytest.raises(SystemExit) as exited:
        main(["fs", "gc", f"{redis_url}#gc2", "--blob-dir", str(blobs), "--orphan-grace", grace])
    assert exited.value.code == EXIT_USAGE
    assert "--orphan-grace" in capsys.readouterr().err
    assert written.read_bytes() == b"uploaded, not yet committed"


def test_a_hash_in_a_password_is_never_printed(
    tmp_path: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before: the spec was cut at its first '#', inside the password, and the URL's parse
    # error printed "invalid Redis URL 'redis://:hunter2': missing host name".
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    host = redis_url.split("://", 1)[1]
    for spec in (f"redis://:hunter2#xyz@{host}#ns", f"redis://app:12#34@{host}#ns"):
        for argv in (["fs", "copy", str(src), spec], ["fs", "gc", spec, "--json"]):
            assert main(argv) == EXIT_USAGE
            out, err = capsys.readouterr()
            assert "hunter2" not in out + err
            assert "12#34" not in out + err
            assert "%23" in err
    # An '@' in a namespace still works through DEEPAGENTS_REDIS_URL and redis:#namespace.
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", redis_url)
    assert main(["fs", "copy", str(src), "redis:#alice@corp"]) == EXIT_OK
    with RedisBackend(url=redis_url, namespace="alice@corp") as b:
        assert b.read("/a.txt").file_data["content"] == "a\n"
    with RedisBackend(url=redis_url, namespace="ns") as b:
        assert b.ls("/").entries == []


@pytest.mark.parametrize("path", ["/missing", "/a.txt"])
def test_fs_copy_from_a_path_the_source_does_not_have_is_exit_64(
    tmp_path: Path, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "copied 0 files ... (0 failed)", exit 0, and the destination was created.
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    dst = tmp_path / "dst"
    assert main(["fs", "copy", str(src), f"dir:{dst}", "--path", path]) == EXIT_USAGE
    assert "--path" in capsys.readouterr().err
    assert not dst.exists()
