"""`fs copy` with a directory spec it cannot use: one line, exit 64, nothing copied."""

from __future__ import annotations

from pathlib import Path

import pytest
from deepagents_redis.cli import main
from deepagents_redis.cli._exit import EXIT_USAGE
from deepagents_redis.core import RedisSettings
from deepagents_redis.fs import RedisBackend

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    monkeypatch.delenv("DEEPAGENTS_REDIS_KEY_PREFIX", raising=False)


@pytest.mark.parametrize("empty", ["", "dir:"])
def test_an_empty_directory_spec_is_refused_not_read_as_the_working_directory(
    empty: str,
    redis_settings: RedisSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before: Path("") is ".", so `fs copy "$SRC" redis://...` with SRC unset uploaded the
    # whole working directory (and an empty DST wrote into it), exit 0.
    (tmp_path / "secret.txt").write_text("not for redis")
    monkeypatch.chdir(tmp_path)
    spec = f"{redis_settings.url}#cwd-leak"
    prefix = ["--prefix", redis_settings.key_prefix]
    assert main(["fs", "copy", empty, spec, *prefix]) == EXIT_USAGE
    assert "empty directory spec" in capsys.readouterr().err
    with RedisBackend(settings=redis_settings, namespace="cwd-leak") as backend:
        assert backend.ls("/").entries in ([], None)


def test_a_destination_directory_that_cannot_be_created_is_a_usage_error(
    redis_settings: RedisSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: FileNotFoundError / NotADirectoryError traceback, exit 1.
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    target = blocker / "sub"
    spec = f"{redis_settings.url}#src"
    status = main(["fs", "copy", spec, str(target), "--prefix", redis_settings.key_prefix])
    err = capsys.readouterr().err
    assert status == EXIT_USAGE, err
    assert f"cannot create the directory {target}" in err
