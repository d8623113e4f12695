"""Cross-package checks: the ``deepagents_redis`` namespace is shared, never owned."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(p.parent for p in ROOT.glob("packages/*/pyproject.toml"))


def _module_names(package_dir: Path) -> list[str]:
    config = tomllib.loads((package_dir / "pyproject.toml").read_text())
    names = config["tool"]["uv"]["build-backend"]["module-name"]
    return [names] if isinstance(names, str) else list(names)


def test_every_package_found() -> None:
    names = {p.name for p in PACKAGES}
    assert {"core", "testing", "deepagents-redis"} <= names


@pytest.mark.parametrize("package_dir", PACKAGES, ids=lambda p: p.name)
def test_no_init_at_namespace_level(package_dir: Path) -> None:
    # PEP 420: an __init__.py here would make one distribution own `deepagents_redis` and
    # hide every sibling installed next to it.
    assert not (package_dir / "src" / "deepagents_redis" / "__init__.py").exists()


@pytest.mark.parametrize("package_dir", PACKAGES, ids=lambda p: p.name)
def test_each_module_imports_from_its_own_src(package_dir: Path) -> None:
    for name in _module_names(package_dir):
        module = importlib.import_module(name)
        assert module.__file__ is not None
        expected = package_dir / "src" / Path(*name.split(".")) / "__init__.py"
        assert Path(module.__file__).resolve() == expected.resolve()


def test_namespace_spans_every_package() -> None:
    import deepagents_redis

    assert getattr(deepagents_redis, "__file__", None) is None
    paths = {Path(p).resolve() for p in deepagents_redis.__path__}
    for package_dir in PACKAGES:
        assert (package_dir / "src" / "deepagents_redis").resolve() in paths
