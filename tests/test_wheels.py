"""Every distribution ships as a user gets it: build, install alone, run its README example.

For each ``packages/*``: the wheel (built with ``uv build``) carries ``py.typed`` in each of its
modules, the LICENSE, and full metadata (MIT license expression, sibling bounds); the sdist
carries the LICENSE. Then a fresh venv gets *only* what the README's install line names (our
wheels from the build directory as find-links, everything else from the package index), the
installed set of our distributions is exactly the package and what it declares, and the
README's first ```python block runs as written against the plugin's private server through
``DEEPAGENTS_REDIS_URL``, leaving no key behind; mypy (when installed) type-checks an import of
each module from that venv. The testing plugin's example is a test module, so it runs under
pytest (with ``REDIS_URL`` pointing at the same server).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(p.parent for p in ROOT.glob("packages/*/pyproject.toml"))
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)
_NAME = re.compile(r"^[A-Za-z0-9._-]+")
# The environment of a child process: nothing of this workspace's venv or pytest run leaks in.
_DROP_ENV = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT", "PYTEST_ADDOPTS")
_DROP_PREFIX = ("PYTEST_XDIST", "PYTEST_CURRENT")


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is needed to build and install the wheels (python3 -m pip install uv)"
    return uv


def _project(package_dir: Path) -> dict[str, object]:
    project = tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]
    assert isinstance(project, dict)
    return project


def _modules(package_dir: Path) -> list[str]:
    config = tomllib.loads((package_dir / "pyproject.toml").read_text())
    names = config["tool"]["uv"]["build-backend"]["module-name"]
    return [names] if isinstance(names, str) else list(names)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _workspace_names() -> dict[str, str]:
    """Distribution name -> version, for every published package."""
    return {str(_project(p)["name"]): str(_project(p)["version"]) for p in PACKAGES}


def _child_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in _DROP_ENV and not k.startswith(_DROP_PREFIX)
    }
    env.update(extra)
    return env


def _run(args: list[str], *, cwd: Path, timeout: float, **env: str) -> str:
    proc = subprocess.run(
        args,
        cwd=cwd,
        env=_child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, (
        f"{shlex.join(args)} exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc.stdout


def readme_install(package_dir: Path) -> list[str]:
    """The requirements of the README's install line (the first ``pip install`` in bash)."""
    for block in _BASH_BLOCK.findall((package_dir / "README.md").read_text()):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("pip install "):
                return shlex.split(line)[2:]
    raise AssertionError(f"{package_dir.name}/README.md has no `pip install` line")


def readme_example(package_dir: Path) -> str:
    blocks = _PYTHON_BLOCK.findall((package_dir / "README.md").read_text())
    assert blocks, f"{package_dir.name}/README.md has no ```python block"
    return str(blocks[0])


@pytest.fixture(scope="module")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([_uv(), "build", "--all-packages", "--out-dir", str(out)], cwd=ROOT, timeout=180)
    return out


@pytest.mark.parametrize("package_dir", PACKAGES, ids=lambda p: p.name)
def test_wheel_and_sdist_contents(package_dir: Path, dist_dir: Path) -> None:
    project = _project(package_dir)
    name, version = str(project["name"]), str(project["version"])
    stem = f"{_norm(name)}-{version}"
    with zipfile.ZipFile(dist_dir / f"{stem}-py3-none-any.whl") as wheel:
        files = set(wheel.namelist())
        metadata = Parser().parsestr(wheel.read(f"{stem}.dist-info/METADATA").decode())
    for module in _modules(package_dir):
        assert f"{module.replace('.', '/')}/py.typed" in files, f"{module}: no py.typed"
    assert "deepagents_redis/__init__.py" not in files  # PEP 420 namespace, shared
    assert f"{stem}.dist-info/licenses/LICENSE" in files

    assert metadata["License-Expression"] == "MIT"
    assert metadata["Author"] == "deepagents-redis developers"
    assert metadata["Summary"]
    assert metadata["Keywords"]
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "pip install" in str(metadata.get_payload())  # the README is the long description
    classifiers = set(metadata.get_all("Classifier") or [])
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in (11, 12, 13)} <= classifiers
    assert "Typing :: Typed" in classifiers
    urls = {u.split(",", 1)[0] for u in metadata.get_all("Project-URL") or []}
    assert {"Homepage", "Documentation", "Repository", "Changelog"} <= urls
    # Siblings carry a bound that moves with our version (docs/releasing.md).
    for requirement in metadata.get_all("Requires-Dist") or []:
        if _NAME.match(requirement).group(0).startswith("deepagents-redis"):  # type: ignore[union-attr]
            assert ">=" in requirement, requirement
            assert "<" in requirement.replace("<=", ""), requirement

    with tarfile.open(dist_dir / f"{stem}.tar.gz") as sdist:
        assert f"{stem}/LICENSE" in sdist.getnames()


@pytest.mark.integration
@pytest.mark.timeout(900)
@pytest.mark.parametrize("package_dir", PACKAGES, ids=lambda p: p.name)
def test_readme_example_runs_from_the_wheel(
    package_dir: Path, dist_dir: Path, redis_url: str, tmp_path: Path
) -> None:
    import redis

    uv = _uv()
    name = str(_project(package_dir)["name"])
    requirements = readme_install(package_dir)
    assert any(_NAME.match(r).group(0) == name for r in requirements), requirements  # type: ignore[union-attr]

    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=tmp_path, timeout=60)
    # Our names resolve to the wheels just built, never to anything on an index.
    pins = tmp_path / "pins.txt"
    pins.write_text("".join(f"{n}=={v}\n" for n, v in _workspace_names().items()))
    _run(
        [
            *(uv, "pip", "install", "--quiet", "--python", str(python)),
            *("--find-links", str(dist_dir), "--constraint", str(pins), *requirements),
        ],
        cwd=tmp_path,
        timeout=240,
    )

    # Exactly the package and the siblings it declares: nothing of the workspace leaked in.
    frozen = _run([uv, "pip", "freeze", "--python", str(python)], cwd=tmp_path, timeout=60)
    ours = {
        line.split("==")[0] for line in frozen.splitlines() if line.startswith("deepagents-redis")
    }
    expected = {name, "deepagents-redis-core"}
    if name == "deepagents-redis":
        expected |= {
            "deepagents-redis-cache",
            "deepagents-redis-todos",
            "deepagents-redis-fs",
            "deepagents-redis-coord",
            "deepagents-redis-checkpoint",
            "deepagents-redis-observe",
        }
    assert ours == expected, frozen

    # A user's type checker sees the installed package as typed (py.typed), not import-untyped.
    if importlib.util.find_spec("mypy") is not None:
        check = tmp_path / "typed_check.py"
        check.write_text("".join(f"import {module}\n" for module in _modules(package_dir)))
        mypy = [sys.executable, "-m", "mypy", "--strict", "--no-incremental"]
        # mypy --strict over the installed stack: 120 s was not enough once at load ~10
        _run([*mypy, "--python-executable", str(python), str(check)], cwd=tmp_path, timeout=300)

    example = readme_example(package_dir)
    client = redis.Redis.from_url(redis_url)
    try:
        before = set(client.scan_iter(count=1000))
        if name == "deepagents-redis-testing":
            (tmp_path / "test_example.py").write_text(example)
            args = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"]
            out = _run(args, cwd=tmp_path, timeout=120, REDIS_URL=redis_url)
            assert re.search(r"\b2 passed\b", out), out
        else:
            (tmp_path / "example.py").write_text(example)
            _run(
                [str(python), "example.py"],
                cwd=tmp_path,
                timeout=120,
                DEEPAGENTS_REDIS_URL=redis_url,
            )
        if "REDIS_URL" not in os.environ:  # a shared server: other sessions write there too
            left = set(client.scan_iter(count=1000)) - before
            assert not left, f"the README example left keys behind: {sorted(left)[:10]}"
    finally:
        client.close()
