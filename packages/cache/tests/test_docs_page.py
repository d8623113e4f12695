"""The ```python blocks of docs/packages/cache.md run as written (```py blocks need API keys)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[3] / "docs" / "packages" / "cache.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.integration
def test_cache_page_examples_run(
    redis_url: str,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not PAGE.exists():
        pytest.skip("docs/ is not shipped with the package; runs in the repository")
    blocks = _BLOCK.findall(PAGE.read_text())
    assert len(blocks) >= 7
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", redis_url)
    monkeypatch.setenv("DEEPAGENTS_REDIS_KEY_PREFIX", key_prefix)
    for name in ("NAMESPACE", "TTL_SECONDS", "SINGLE_FLIGHT", "ENABLED"):
        monkeypatch.delenv(f"DEEPAGENTS_REDIS_CACHE_{name}", raising=False)
    namespace: dict[str, object] = {"__name__": "docs_cache_examples"}
    for index, block in enumerate(blocks):
        exec(compile(block, f"docs/packages/cache.md[block {index}]", "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["Paris", "Paris"]
    assert out[-1] == "1"
