"""The demo's failure modes end with an error that says what went wrong."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis
from deepagents_redis.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    monkeypatch.delenv("DEEPAGENTS_REDIS_KEY_PREFIX", raising=False)


def test_demo_coord_says_why_its_workers_did_not_start(
    redis_server_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The section starts its workers with sys.executable: stand in one that cannot start.
    # Before: the section waited the whole 60 s for two workers, then raised "cannot join
    # thread before it is started" (its listener was never started), hiding both the
    # timeout and the workers' own error, which went to /dev/null.
    broken = tmp_path / "python-that-fails"
    broken.write_text("#!/bin/sh\necho 'error: no module named deepagents_redis' >&2\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(broken))
    server = redis_server_factory()
    with pytest.raises(RuntimeError, match=r"status 3 .*: error: no module named deepagents_redis"):
        main(["-q", "demo", "--url", server.url, "coord"])
    with redis.Redis.from_url(server.url) as raw:
        assert raw.dbsize() == 0, sorted(raw.scan_iter(count=1000))
