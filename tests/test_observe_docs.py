"""The ```python blocks of docs/packages/observe.md run as written and print what it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "packages" / "observe.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_TEXT = re.compile(r"^```text\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.integration
def test_observe_page_examples_run(
    redis_url: str,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = PAGE.read_text()
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", redis_url)
    monkeypatch.setenv("DEEPAGENTS_REDIS_KEY_PREFIX", key_prefix)
    namespace: dict[str, object] = {"__name__": "docs_observe_examples"}
    for index, block in enumerate(_BLOCK.findall(text)):
        exec(compile(block, f"docs/packages/observe.md[block {index}]", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed == _TEXT.findall(text)[0].splitlines()
