"""The ```python blocks of docs/packages/coord.md run as written, and print what it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[3] / "docs" / "packages" / "coord.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_TEXT = re.compile(r"^```text\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.integration
def test_coord_page_examples_run(
    redis_url: str,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not PAGE.exists():
        pytest.skip("docs/ is not shipped with the package; runs in the repository")
    text = PAGE.read_text()
    blocks = _BLOCK.findall(text)
    assert len(blocks) >= 5
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", redis_url)
    monkeypatch.setenv("DEEPAGENTS_REDIS_KEY_PREFIX", key_prefix)
    namespace: dict[str, object] = {"__name__": "docs_coord_examples"}
    for index, block in enumerate(blocks):
        exec(compile(block, f"docs/packages/coord.md[block {index}]", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    shown = [line for block in _TEXT.findall(text) for line in block.splitlines()]
    expected = [line for line in shown if line.startswith(("{", "True", "["))]
    assert printed == expected
