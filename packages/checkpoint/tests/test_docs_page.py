"""The ```python blocks of docs/packages/checkpoint.md run as written and print what it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[3] / "docs" / "packages" / "checkpoint.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_TEXT = re.compile(r"^```text\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.integration
def test_checkpoint_page_examples_run(
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
    namespace: dict[str, object] = {"__name__": "docs_checkpoint_examples"}
    for index, block in enumerate(blocks):
        exec(compile(block, f"docs/packages/checkpoint.md[block {index}]", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    # every text block but the demo transcript is the output of the blocks above it
    shown = [
        line
        for block in _TEXT.findall(text)
        if not block.startswith("== handoff ==")
        for line in block.splitlines()
    ]
    assert printed == shown
