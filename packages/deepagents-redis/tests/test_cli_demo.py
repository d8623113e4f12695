"""``deepagents-redis demo SECTION --url``: every section leaves an empty server empty."""

from __future__ import annotations

import pytest
import redis
from deepagents_redis.cli import _demo, main
from deepagents_redis.cli._exit import EXIT_OK

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The demo's default prefix ('demo') is part of what is checked: no override.
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    monkeypatch.delenv("DEEPAGENTS_REDIS_KEY_PREFIX", raising=False)


@pytest.mark.parametrize("section", [s.name for s in _demo.SECTIONS])
def test_a_demo_section_leaves_an_empty_server_empty(
    section: str, redis_server_factory, capsys: pytest.CaptureFixture[str]
) -> None:
    # A server of its own, so every key counts: not only the demo's prefix (a stray
    # counter or ':seq' key under another name would show here).
    server = redis_server_factory()
    assert main(["-q", "demo", "--url", server.url, section]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"demo finished: {section}" in out, out
    with redis.Redis.from_url(server.url) as raw:
        assert raw.dbsize() == 0, sorted(raw.scan_iter(count=1000))
