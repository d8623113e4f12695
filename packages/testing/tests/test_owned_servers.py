"""Whole-server changes (SCRIPT FLUSH, ACL SETUSER) happen only on servers the session started.

With `REDIS_URL` the session's standalone server is someone else's: tests that flush its
scripts ran them there, and flushed the scripts of a server the suite did not start. Such
tests use `owned_redis_url` / `owned_redis_target`, which stay on servers the session
started. Each case starts the "someone else's" server itself (outer), runs an inner session
against it in a subprocess, and checks from outside that outer's scripts and users are intact.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import redis

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
addopts = --strict-markers -p no:cacheprovider -p no:randomly
    -p no:langsmith_plugin -p no:hypothesispytest -p no:codspeed -p no:benchmark
    -p no:recording -p no:syrupy -p no:anyio -p no:socket
"""

_ENV_OF_THIS_SESSION = ("REDIS_URL", "REDIS_CLUSTER_URL", "CI", "PYTEST_XDIST_WORKER")
_OUTER_SCRIPT = "return 'outer'"


class Outer(NamedTuple):
    url: str
    sha: str


@pytest.fixture
def outer(redis_server_factory: Callable[..., Any]) -> Outer:
    """Someone else's server (as far as the inner session knows), holding a script."""
    server = redis_server_factory()
    with redis.Redis.from_url(server.url, protocol=2) as client:
        return Outer(server.url, client.script_load(_OUTER_SCRIPT))


def _intact(url: str, sha: str) -> None:
    with redis.Redis.from_url(url, protocol=2) as client:
        assert client.script_exists(sha) == [True]
        assert client.acl_users() == ["default"]


def _no_inherited_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV_OF_THIS_SESSION:
        monkeypatch.delenv(name, raising=False)


def test_owned_fixtures_never_use_the_redis_url_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, outer: Outer
) -> None:
    _no_inherited_env(monkeypatch)
    monkeypatch.setenv("REDIS_URL", outer.url)
    pytester.makeini(INI)
    pytester.makepyfile(
        f"""
        import redis

        def test_url(owned_redis_url, redis_url):
            assert redis_url == {outer.url!r}
            assert owned_redis_url != redis_url
            with redis.Redis.from_url(owned_redis_url) as client:
                client.script_flush()
                client.acl_setuser("someone", enabled=True, nopass=True)

        async def test_target(owned_redis_target, owned_redis_url):
            assert owned_redis_target.url == owned_redis_url
            owned_redis_target.client.script_flush()
            await owned_redis_target.async_client.script_flush()
        """
    )
    result = pytester.runpytest_subprocess("-m", "not cluster", "-rA")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*own standalone for whole-server changes (REDIS_URL is set)*"])
    _intact(outer.url, outer.sha)


def test_without_redis_url_the_owned_server_is_the_session_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_inherited_env(monkeypatch)
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        def test_same(owned_redis_url, redis_url, owned_redis_target):
            assert owned_redis_url == redis_url == owned_redis_target.url
        """
    )
    result = pytester.runpytest_subprocess("-m", "not cluster")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*own standalone*")  # no second server started


_REPO = Path(__file__).resolve().parents[3]
# The repository's tests that flush scripts or add ACL users (`script_flush` or checkpoint's
# `acl_user` fixture is in each).
_FLUSHING = {
    "core": [
        "packages/core/tests/test_scripts.py",
        "packages/core/tests/test_driver.py",
        "packages/core/tests/test_chain.py",
    ],
    "checkpoint": [
        "packages/checkpoint/tests/test_blobs_around_scripts.py",
        "packages/checkpoint/tests/test_index_atomicity.py",
        "packages/checkpoint/tests/test_put_writes_failures.py",
        "packages/checkpoint/tests/test_sweep.py",
    ],
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("package", sorted(_FLUSHING))
def test_the_suites_script_flushes_leave_the_redis_url_server_alone(
    outer: Outer, package: str
) -> None:
    files = [_REPO / path for path in _FLUSHING[package]]
    if not all(path.is_file() for path in files):
        pytest.skip("the repository's test files are not here (an installed package)")
    if importlib.util.find_spec(f"deepagents_redis.{package}") is None:
        pytest.skip(f"deepagents-redis-{package} is not installed in this environment")
    for path in files:
        text = path.read_text()
        assert "script_flush" in text or "acl_user" in text, f"{path}: update the list"
    env = {k: v for k, v in os.environ.items() if k not in _ENV_OF_THIS_SESSION}
    env["REDIS_URL"] = outer.url
    env.pop("PYTEST_ADDOPTS", None)
    options = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-m", "not cluster"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *map(str, files), *options],
        cwd=_REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    _intact(outer.url, outer.sha)
    assert "own standalone for whole-server changes (REDIS_URL is set)" in done.stdout


@pytest.mark.cluster
@pytest.mark.timeout(600)
def test_cluster_script_flushes_leave_the_redis_cluster_url_cluster_alone(
    outer: Outer,
) -> None:
    from deepagents_redis.testing._cluster import LocalCluster

    path = _REPO / "packages/core/tests/test_scripts.py"
    if not path.is_file():
        pytest.skip("the repository's test files are not here (an installed package)")
    with LocalCluster() as cluster:
        for port in cluster.ports:
            with redis.Redis(port=port, protocol=2) as node:
                assert node.script_load(_OUTER_SCRIPT) == outer.sha
        env = {k: v for k, v in os.environ.items() if k not in _ENV_OF_THIS_SESSION}
        env.pop("PYTEST_ADDOPTS", None)
        env["REDIS_URL"] = outer.url
        env["REDIS_CLUSTER_URL"] = cluster.url
        options = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-m", "cluster"]
        done = subprocess.run(
            [sys.executable, "-m", "pytest", str(path), *options],
            cwd=_REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        for port in cluster.ports:
            with redis.Redis(port=port, protocol=2) as node:
                assert node.script_exists(outer.sha) == [True], port
        assert "own cluster for whole-server changes" in done.stdout
    _intact(outer.url, outer.sha)
