"""`fs copy`/`fs gc` backend specs: what is not a directory is never made one."""

from __future__ import annotations

from pathlib import Path

import pytest
from deepagents_redis.cli import main
from deepagents_redis.cli._exit import EXIT_UNREACHABLE, EXIT_USAGE


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # where a spec read as a relative directory would be created
    return src


def _created(source: Path) -> list[str]:
    return sorted(str(p.relative_to(source.parent)) for p in (source.parent / "cwd").rglob("*"))


@pytest.mark.parametrize(
    "spec",
    [
        "redis:team-a",  # the '#' forgotten (redis:#team-a)
        "redis:",
        "Redis://:pw@127.0.0.1:1/0#ns",  # a scheme in capitals
        "rediss:#ns",
        "s3://bucket/tree",  # a URL of a kind fs does not read
        "http://:pw@example.invalid/x",
    ],
)
def test_a_spec_that_looks_like_a_url_is_a_usage_error(
    spec: str, source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It was read as a relative directory: 'fs copy ./ws redis:team-a' created
    # ./redis:team-a, copied the files there and exited 0.
    assert main(["fs", "copy", str(source), spec]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert "is not a backend" in captured.err
    assert "pw" not in captured.out + captured.err
    assert _created(source) == []


def test_a_sentinel_url_is_a_redis_spec(source: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Sentinel is first-class, but 'redis+sentinel://...#ns' was a directory named
    # 'redis+sentinel:/host:port/service#ns' (created, files copied there, exit 0, and its
    # password printed in the summary line).
    spec = "redis+sentinel://:pw@127.0.0.1:1/mymaster#ns"
    assert main(["fs", "copy", str(source), spec]) == EXIT_UNREACHABLE
    captured = capsys.readouterr()
    assert "pw" not in captured.out + captured.err
    assert _created(source) == []


def test_dir_prefix_and_relative_paths_still_name_directories(
    source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fs", "copy", f"dir:{source}", "dir:out"]) == 0
    assert main(["fs", "copy", str(source), "./notes:2024"]) == 0
    assert _created(source) == [
        "cwd/notes:2024",
        "cwd/notes:2024/a.txt",
        "cwd/out",
        "cwd/out/a.txt",
    ]
