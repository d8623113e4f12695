"""Dependencies point one way (BRIEF §2): every phase depends on core, none on a sibling."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {p.parent.name: p.parent for p in ROOT.glob("packages/*/pyproject.toml")}
UMBRELLA = "deepagents-redis"
_NAME = re.compile(r"^[A-Za-z0-9._-]+")


def _project(package: str) -> dict[str, object]:
    data = tomllib.loads((PACKAGES[package] / "pyproject.toml").read_text())
    return data["project"]


def _workspace_deps(package: str) -> set[str]:
    deps = _project(package).get("dependencies", [])
    assert isinstance(deps, list)
    names = {_NAME.match(d).group(0).lower() for d in deps}  # type: ignore[union-attr]
    return {n for n in names if n.startswith("deepagents-redis")}


def _import_name(package: str) -> str:
    return "deepagents_redis.cli" if package == UMBRELLA else f"deepagents_redis.{package}"


@pytest.mark.parametrize("package", sorted(set(PACKAGES) - {UMBRELLA, "core"}))
def test_phase_depends_on_core_only(package: str) -> None:
    assert _workspace_deps(package) == {"deepagents-redis-core"}


def test_core_depends_on_no_sibling() -> None:
    assert _workspace_deps("core") == set()


@pytest.mark.parametrize("package", sorted(set(PACKAGES) - {UMBRELLA}))
def test_sources_import_no_sibling_phase(package: str) -> None:
    allowed = {"core", package}
    if package == "testing":
        allowed.add("testing")
    siblings = {p for p in PACKAGES if p not in allowed and p != UMBRELLA}
    pattern = re.compile(
        r"^\s*(?:from|import)\s+deepagents_redis\.(" + "|".join(map(re.escape, siblings)) + r")\b",
        re.MULTILINE,
    )
    offenders = [
        str(path.relative_to(ROOT))
        for path in (PACKAGES[package] / "src").rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert offenders == []


def test_umbrella_reaches_phases_only_through_extras() -> None:
    project = _project(UMBRELLA)
    assert _workspace_deps(UMBRELLA) == {"deepagents-redis-core"}
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)

    def names(requirements: list[str]) -> set[str]:
        return {_NAME.match(r).group(0).lower() for r in requirements}  # type: ignore[union-attr]

    for phase in ("cache", "todos", "fs"):
        if phase in PACKAGES:
            assert f"deepagents-redis-{phase}" in names(extras[phase])
            assert f"deepagents-redis-{phase}" in names(extras["all"])
    # Extras are real: each one installs something (no empty placeholders).
    assert all(extras.values())
