"""The code on the docs pages runs as written, and prints what the pages show.

Every page with ```python blocks runs in its own interpreter through
`deepagents_redis.testing.markdown` (blocks top to bottom in one namespace; a ```text block
right after a python block is its exact output), against the plugin's server through
`DEEPAGENTS_REDIS_URL`. ``docs/packages/testing.md`` is a test module of its own: its blocks
run as one module under a nested pytest (which starts its own private servers).
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
# Pages whose python blocks are not a script (the testing page is a pytest module).
NOT_SCRIPTS = {"packages/testing.md"}
PAGES = sorted(
    str(page.relative_to(ROOT / "docs"))
    for page in (ROOT / "docs").rglob("*.md")
    if "```python" in page.read_text(encoding="utf-8")
)


def python_blocks(page: str) -> list[str]:
    return _BLOCK.findall((ROOT / "docs" / page).read_text())


def test_every_page_with_examples_is_run() -> None:
    # A new page with examples is picked up by the glob; this pins that the glob sees the
    # pages it must (a moved docs folder would otherwise make the test below run nothing).
    assert {"packages/core.md", "packages/cache.md", "getting-started.md"} <= set(PAGES)


@pytest.mark.integration
@pytest.mark.parametrize("page", [p for p in PAGES if p not in NOT_SCRIPTS])
def test_page_examples_run_and_print_what_the_page_shows(
    page: str, redis_url: str, key_prefix: str
) -> None:
    env = {
        **os.environ,
        "DEEPAGENTS_REDIS_URL": redis_url,
        # one prefix per page: pages that use the same names never see each other's data
        "DEEPAGENTS_REDIS_KEY_PREFIX": f"{key_prefix}-{re.sub(r'[^A-Za-z0-9]', '-', page)}",
    }
    for name in list(env):
        if name.startswith("DEEPAGENTS_REDIS_") and name not in (
            "DEEPAGENTS_REDIS_URL",
            "DEEPAGENTS_REDIS_KEY_PREFIX",
        ):
            del env[name]  # the pages document the defaults
    proc = subprocess.run(
        [sys.executable, "-m", "deepagents_redis.testing.markdown", str(ROOT / "docs" / page)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "examples passed" in proc.stderr


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
    assert re.search(r"\b14 passed\b", proc.stdout), proc.stdout[-2000:]
