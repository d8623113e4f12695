"""Every string literal in the packages' sources is valid Unicode text (UTF-8 encodable).

A docstring that spelled a JSON escape as ``\\ud800`` without doubling the backslash held a
lone surrogate: Python 3.11 and 3.12 compile such a module, but 3.13 refuses it while cleaning
the docstring ("surrogates not allowed"), so `deepagents_redis.cache` and `...todos` did not
import there at all, and only the Python 3.13 run of CI saw it. This checks every module of
every package on whichever Python runs the suite.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "packages").glob("*/src/**/*.py"))


def _bad_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node.value.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {exc.reason}")
    return bad


def test_sources_are_found() -> None:
    assert len(SOURCES) > 50


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT / "packages")))
def test_string_literals_are_valid_unicode(path: Path) -> None:
    assert _bad_literals(path) == []
