"""The code on the docs pages runs as written.

``docs/packages/core.md``: every ```python block, top to bottom, in one namespace, against the
plugin's server through ``DEEPAGENTS_REDIS_URL``. ``docs/packages/testing.md``: the blocks form
one test module, run by a nested pytest (which starts its own private servers).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: str) -> list[str]:
    return _BLOCK.findall((ROOT / "docs" / page).read_text())


@pytest.mark.integration
def test_core_page_examples_run(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = python_blocks("packages/core.md")
    assert len(blocks) >= 8
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", redis_url)
    namespace: dict[str, object] = {"__name__": "docs_core_examples"}
    for index, block in enumerate(blocks):
        code = compile(block, f"docs/packages/core.md[block {index}]", "exec")
        exec(code, namespace)
    out = capsys.readouterr().out
    # The printed key shown on the page is the real one.
    assert "docs:v1:todos:{thread%3A 42 %7Bx%7D}:items" in out
    assert "refused:" in out


@pytest.mark.integration
@pytest.mark.cluster
def test_testing_page_examples_pass(tmp_path: Path) -> None:
    blocks = python_blocks("packages/testing.md")
    assert len(blocks) >= 3
    module = tmp_path / "test_docs_testing_examples.py"
    module.write_text("\n\n".join(blocks))
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PYTEST_XDIST_WORKER")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(module),
            "-q",
            "-p",
            "no:cacheprovider",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:xdist",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=115,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(r"\b10 passed\b", proc.stdout), proc.stdout[-2000:]
