"""The plugin as a whole, run in inner pytest sessions (pytester)."""

from __future__ import annotations

import pytest
from deepagents_redis.testing._servers import server_binary

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
addopts = --strict-markers -p no:cacheprovider
    -p no:langsmith_plugin -p no:hypothesispytest -p no:codspeed -p no:benchmark
    -p no:recording -p no:syrupy -p no:anyio -p no:socket
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for name in ("REDIS_URL", "REDIS_CLUSTER_URL", "CI"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeini(INI)
    return pytester


def test_markers_registered(inner: pytest.Pytester) -> None:
    result = inner.runpytest_inprocess("--markers")
    for marker in ("integration:", "cluster:", "fault:", "benchmark:", "redis_version(min):"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{marker}*"])


def _served() -> str:
    """How the summary names the server REDIS_SERVER_BIN starts (redis-server by default;
    Valkey in CI's Valkey tier): its product and version, and INFO's Redis version."""
    _path, name, version = server_binary()
    assert name in ("redis", "valkey")
    return "redis-server 7.*" if name == "redis" else f"{name} {version} (redis_version 7.*)"


def test_header_and_summary_name_the_server(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import pytest

        @pytest.mark.integration
        def test_uses_server(redis_client, key_prefix):
            redis_client.set(key_prefix + ":k", "v")
            assert redis_client.get(key_prefix + ":k") == b"v"
        """
    )
    result = inner.runpytest_inprocess()
    result.assert_outcomes(passed=1)
    # The server is the one REDIS_SERVER_BIN names (redis-server by default; Valkey in CI's
    # Valkey tier): its --version names it and its own version, INFO its Redis version.
    path, name, version = server_binary()
    assert path is not None
    result.stdout.fnmatch_lines(
        [
            f"deepagents-redis: private {name}-server {version} ({path}); cluster starts on demand",
            "*deepagents-redis servers*",
            f"standalone: {_served()} on 127.0.0.1:*",
            "cluster: not started (no cluster test ran)",
        ]
    )


def test_redis_target_params_and_cluster_marker(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        async def test_both(redis_target):
            await redis_target.async_client.set(redis_target.key_prefix + ":k", "1")
            assert redis_target.client.get(redis_target.key_prefix + ":k") == b"1"
        """
    )
    result = inner.runpytest_inprocess("-v", "-m", "not cluster")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*test_both[[]standalone[]] PASSED*"])
    result.stdout.fnmatch_lines(["cluster: not started*"])

    result = inner.runpytest_inprocess("-v", "-m", "cluster")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(
        ["*test_both[[]cluster[]] PASSED*", f"cluster: 3 primaries, {_served()}, ports *"]
    )


def test_redis_version_gate(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import pytest

        @pytest.mark.redis_version(min="99.1")
        def test_future(redis_url):
            raise AssertionError("must not run")

        @pytest.mark.redis_version(min="6.2")
        def test_old_enough(redis_url):
            pass

        @pytest.mark.redis_version("6.2")
        def test_positional(redis_url):
            pass

        @pytest.mark.redis_version
        def test_no_version():
            pass
        """
    )
    result = inner.runpytest_inprocess("-rs")
    result.assert_outcomes(passed=2, skipped=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*redis_version marker needs a version*",
            "*SKIPPED*needs Redis >= 99.1; the test server runs Redis 7.*",
        ]
    )


def test_redis_url_override_uses_external_server(
    inner: pytest.Pytester, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    inner.makepyfile(
        f"""
        def test_url(redis_url, redis_settings):
            assert redis_url == {redis_url!r}
            assert redis_settings.cluster == "auto"
        """
    )
    result = inner.runpytest_inprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "deepagents-redis: REDIS_URL override redis://127.0.0.1:*",
            "standalone: external server from REDIS_URL redis://127.0.0.1:*",
        ]
    )


def test_redis_url_override_hides_password(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://user:hunter2@127.0.0.1:1/0")
    result = inner.runpytest_inprocess("--co")
    assert "hunter2" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*REDIS_URL override redis://user:***@127.0.0.1:1/0*"])


def test_fakeredis_fallback_without_binary(
    inner: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("empty-path")))
    # No server anywhere and none named: a REDIS_SERVER_BIN the run was given (CI's Valkey
    # tier) that is not found is a failure of its own, not this fallback.
    monkeypatch.delenv("REDIS_SERVER_BIN", raising=False)
    inner.makepyfile(
        """
        import pytest

        def test_fake(redis_client, key_prefix):
            redis_client.set(key_prefix + ":k", "v")
            assert redis_client.get(key_prefix + ":k") == b"v"

        @pytest.mark.cluster
        def test_cluster(redis_cluster):
            raise AssertionError("must not run without redis-server")

        def test_factory(redis_server_factory):
            redis_server_factory()
            raise AssertionError("must not run without redis-server")
        """
    )
    result = inner.runpytest_inprocess("-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "deepagents-redis: no redis-server binary: fakeredis fallback; *",
            "standalone: fakeredis TCP server on 127.0.0.1:* (no redis-server binary on PATH)*",
            "*SKIPPED*the cluster tier needs the redis-server binary*",
            "*SKIPPED*redis_server_factory needs the redis-server binary*",
        ]
    )


def test_ci_refuses_fakeredis_fallback(
    inner: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("empty-path")))
    # No server anywhere and none named: a REDIS_SERVER_BIN the run was given (CI's Valkey
    # tier) that is not found is a failure of its own, not this fallback.
    monkeypatch.delenv("REDIS_SERVER_BIN", raising=False)
    monkeypatch.setenv("CI", "true")
    inner.makepyfile(
        """
        import pytest

        def test_fake(redis_url):
            pass

        @pytest.mark.cluster
        def test_cluster(redis_cluster):
            pass
        """
    )
    result = inner.runpytest_inprocess()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "deepagents-redis: no redis-server binary: fakeredis fallback (fails under CI=true)*",
            "*CI=true requires a real redis-server*",
            "*the cluster tier needs the redis-server binary*(CI=true: refusing to skip)",
        ]
    )


def test_each_xdist_worker_gets_its_own_server(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_server(redis_url, i):
            assert redis_url.startswith("redis://127.0.0.1:")
        """
    )
    result = inner.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    ports = {
        line.split("127.0.0.1:")[1]
        for line in out.splitlines()
        if line.startswith("gw") and "standalone: " in line and "127.0.0.1:" in line
    }
    assert len(ports) == 2


def test_summary_when_no_server_was_needed(inner: pytest.Pytester) -> None:
    inner.makepyfile("def test_plain():\n    pass\n")
    result = inner.runpytest_inprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*deepagents-redis servers*", "no Redis server started"])
    assert "127.0.0.1:" not in result.stdout.str()


@pytest.mark.cluster
def test_redis_cluster_url_override(
    inner: pytest.Pytester, redis_cluster: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = redis_cluster.url  # type: ignore[attr-defined]
    monkeypatch.setenv("REDIS_CLUSTER_URL", url)
    inner.makepyfile(
        f"""
        import pytest

        @pytest.mark.redis_version(min="6.0")
        def test_cluster(redis_cluster, cluster_client, key_prefix):
            assert redis_cluster.url == {url!r}
            assert redis_cluster.nodes == []
            cluster_client.set(key_prefix + ":k", "v")
            assert cluster_client.get(key_prefix + ":k") == b"v"
        """
    )
    result = inner.runpytest_inprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "deepagents-redis: *; cluster from REDIS_CLUSTER_URL redis://127.0.0.1:*",
            "standalone: not used",
            "cluster: external cluster from REDIS_CLUSTER_URL redis://127.0.0.1:*",
        ]
    )


def test_closer_closes_after_the_test_the_way_the_test_ran(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import pytest

        CLOSED = []

        class Thing:
            def __init__(self, name):
                self.name = name

            def close(self):
                CLOSED.append(("close", self.name))

            async def aclose(self):
                CLOSED.append(("aclose", self.name))

        class SyncOnly:
            def close(self):
                CLOSED.append(("close", "sync-only"))

        def test_sync(closer):
            make = closer.factory(Thing, name="default")
            assert make().name == "default"
            assert make(name="b").name == "b"
            closer(SyncOnly())
            assert CLOSED == []

        async def test_async(closer):
            closer(Thing("async"))
            closer(SyncOnly())

        def test_not_closable(closer):
            with pytest.raises(TypeError, match="no close"):
                closer(object())

        def test_closed_newest_first_and_by_test_kind():
            assert CLOSED == [
                ("close", "sync-only"),
                ("close", "b"),
                ("close", "default"),
                ("close", "sync-only"),
                ("aclose", "async"),
            ]
        """
    )
    result = inner.runpytest_inprocess("-p", "no:randomly")
    result.assert_outcomes(passed=4)
