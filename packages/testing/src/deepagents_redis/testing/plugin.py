"""pytest plugin for deepagents-redis: private Redis servers, a local cluster, fault injection.

Loaded automatically through the `pytest11` entry point once `deepagents-redis-testing` is
installed. Every server it starts binds 127.0.0.1 on a free port, has its own temporary data
directory and is stopped by its own PID at teardown; it never touches a server it did not start
and never flushes anything. A server (or Sentinel) is used only once ``INFO server`` says its
``process_id`` is the started child's: when another process took the picked port first (two
sessions starting at once), the plugin starts again on another port instead of adopting that
server. SIGTERM ends the session as Ctrl-C does, with every teardown (exit status 2); on Linux a
watchdog process stops the servers and removes their temp dirs even when the session is
SIGKILLed. A server older than Redis 7.0 is refused with a message saying so.

Fixtures (the types they hand out are importable from `deepagents_redis.testing`, so a test
can annotate its parameters precisely):

- `redis_url` (session) -> `str`: URL of a private `redis-server` started for this session
  (one per xdist worker, since each worker is its own session). `REDIS_URL` in the environment
  overrides it: then tests isolate their keys by prefix and nothing is flushed. Without a
  `redis-server` binary the plugin falls back to fakeredis's TCP server and says so in the
  header and summary; under `CI=true` that fallback is a hard failure. `REDIS_SERVER_BIN`
  names another server binary for every server the plugin starts (standalone, factory,
  cluster nodes, Sentinels), e.g. `REDIS_SERVER_BIN=valkey-server` runs the suite on Valkey;
  when it names no executable, every test that needs a server fails (no fakeredis stand-in
  for the server asked for).
- `redis_server_name` (session) -> `str`: which server `redis_url` answers from, `"redis"`
  or `"valkey"`: what the started binary's `--version` says, or the `REDIS_URL` server's
  `INFO` (`server_name`; Redis has none).
- `key_prefix` (function) -> `str`: a prefix unique to the test.
- `redis_settings` (function) -> `RedisSettings`: `RedisSettings(url=redis_url,
  key_prefix=key_prefix)`.
- `redis_client` / `async_redis_client` (function) -> core's `SyncClient` / `AsyncClient`:
  clients from core's factory, closed after.
- `redis_cluster` (session, started lazily on first use) -> `ClusterHandle`: 3 primaries
  (`.url`, `.nodes`, `.version`); `REDIS_CLUSTER_URL` overrides it. `cluster_settings`,
  `cluster_client`, `async_cluster_client` (function).
- `redis_target` (function, parametrized `standalone` / `cluster`, the latter marked
  `cluster`) -> `RedisTarget`: `.mode`, `.settings`, `.client`, `.async_client`. It is an
  async fixture (pytest-asyncio), so it runs in the test's function-scoped event loop:
  `.async_client` is created there (no I/O until first use) and closed by the fixture's async
  teardown in that same loop. `.client` (sync) is created on first access. Sync tests may use
  the fixture too; they just should not use `.async_client`.
- `owned_redis_url` (session) -> `str` and `owned_redis_target` (function, parametrized as
  `redis_target`) -> `RedisTarget`: the same on servers this session started even when
  `REDIS_URL` / `REDIS_CLUSTER_URL` name others (then a private server, or cluster, is started
  for them on first use). For tests that change a whole server (`SCRIPT FLUSH`, `ACL
  SETUSER`): without the overrides they are `redis_url` / `redis_target`'s own servers.
- `closer` (function) -> `Closer`: `closer(obj)` returns `obj` and closes it after the test;
  `closer.factory(build, **defaults)` is a factory whose products are closed after the test
  (the way to write a `make_<thing>` fixture). Newest first, with `aclose()` in the test's
  loop after an async test and `close()` after a sync one.
- `redis_server_factory` (function) -> `ServerFactory`: `factory(*, aof=False, debug=False,
  config=None) -> ServerHandle` starts a dedicated `redis-server` (AOF with `appendfsync
  always`; `--enable-debug-command local`) with `.kill()` (SIGKILL), `.restart()` (same port
  and data dir), `.stop()`.
- `redis_sentinel_factory` (function) -> `SentinelFactory`: `factory(*, replicas=0,
  sentinels=1, quorum=None, ...) -> SentinelTopology` starts a master, its replicas and
  Sentinels and waits until every Sentinel sees all of them; `.url` is a
  `redis+sentinel://` URL for core's client factory, `.failed_over()` says whether a
  failover has completed.
- `fault_proxy` (function) -> `ProxyFactory`: `fault_proxy(target_url) -> FaultProxy` with
  modes pass, delay, blackhole and reset.
- `postgres_url` (function) -> `str`: the URL of a throwaway PostgreSQL database, created on
  the server of `TEST_POSTGRES_URL` (default `postgresql://postgres@127.0.0.1:5432/test`) and
  dropped after the test. Needs psycopg; an unreachable server skips locally and fails under
  `CI=true`. For migration tests against LangGraph's `PostgresSaver` or `PostgresStore`.

Beyond the fixtures, two modules of the test kit need more than the plugin does and are not
imported by it: `deepagents_redis.testing.chat` (extra `chat`: a scripted chat model) and
`deepagents_redis.testing.backends` (extra `backends`: differential checks of any
`BackendProtocol` against deepagents' `StoreBackend`).

Markers: `integration`, `cluster`, `fault`, `benchmark`, and `redis_version(min="7.2")`, which
skips a test (naming both versions) when the session's server is older.
"""

from __future__ import annotations

import inspect
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from . import _reaper
from ._closing import Closer
from ._proxy import FaultProxy
from ._sentinel import SentinelTopology
from ._servers import (
    SessionReport,
    in_ci,
    parse_version,
    redact_url,
    redis_server_version,
    served_by,
    server_binary,
    start_owned,
)
from ._targets import RedisTarget, unique_key_prefix
from ._types import ClusterHandle, ProxyFactory, SentinelFactory, ServerFactory

if TYPE_CHECKING:
    from deepagents_redis.core import AsyncClient, RedisSettings, SyncClient
    from deepagents_redis.core.embedded import EmbeddedRedis

    from ._cluster import LocalCluster

# Core is imported lazily (inside fixtures): this module is loaded by every pytest run in the
# environment, and an import error here would break test collection for everyone.

_REPORT = pytest.StashKey[SessionReport]()
_WORKER_REPORTS = pytest.StashKey[list[dict[str, Any]]]()
_SIGTERM_BEFORE = pytest.StashKey[Any]()

MARKERS = (
    "integration: needs a real Redis server (the plugin starts a private one)",
    "cluster: runs against the local 3-primary Redis Cluster (started on demand)",
    "fault: injects faults (fault proxy, killed or restarted servers)",
    "benchmark: benchmark-style test (measured, never asserted against wall-clock limits)",
    "redis_version(min): skip unless the test server is at least this Redis version",
)


# ---------------------------------------------------------------------------- hooks
def pytest_configure(config: pytest.Config) -> None:
    """Register the markers and the per-session report."""
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    config.stash[_REPORT] = SessionReport()
    config.stash[_WORKER_REPORTS] = []


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give SIGTERM back to whoever had it before the plugin started a server."""
    _reaper.deactivate(config)
    before = config.stash.get(_SIGTERM_BEFORE, None)
    if before is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, before)
        del config.stash[_SIGTERM_BEFORE]


def _teardown_on_sigterm(config: pytest.Config) -> None:
    """Make SIGTERM end the session the way Ctrl-C does: with teardown.

    And SIGKILL, which runs no teardown: a watchdog process stops the servers (`_reaper`).

    Python's default SIGTERM kills the interpreter on the spot: no fixture teardown, no
    atexit, so every private `redis-server` (and its temp dir) outlived the session. That is
    how CI stops a job that timed out or was cancelled. Installed once, when the plugin
    starts its first server, and only over the default handler (a handler of the user's
    stays theirs); further SIGTERMs are ignored while the teardown runs.
    """
    _reaper.activate(config)
    if _SIGTERM_BEFORE in config.stash:
        return
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt("SIGTERM: stopping, with the private Redis servers' teardown")

    config.stash[_SIGTERM_BEFORE] = signal.signal(signal.SIGTERM, stop)


def _named_binary_missing() -> str | None:
    """`REDIS_SERVER_BIN` names a binary that does not exist: never a silent substitute."""
    from deepagents_redis.core.embedded import SERVER_BINARY_ENV, find_redis_server

    named = os.environ.get(SERVER_BINARY_ENV)
    if named and find_redis_server() is None:
        return f"{SERVER_BINARY_ENV}={named!r} names no executable server binary"
    return None


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say up front which Redis the session will use."""
    if os.environ.get("REDIS_URL"):
        standalone = f"REDIS_URL override {redact_url(os.environ['REDIS_URL'])}"
    elif missing := _named_binary_missing():
        standalone = f"{missing}: tests that need a server fail"
    else:
        path, name, version = server_binary()
        if path is None:
            standalone = "no redis-server binary: fakeredis fallback" + (
                " (fails under CI=true)" if in_ci() else ""
            )
        else:
            standalone = f"private {name or 'redis'}-server {version or '?'} ({path})"
    if os.environ.get("REDIS_CLUSTER_URL"):
        cluster = f"cluster from REDIS_CLUSTER_URL {redact_url(os.environ['REDIS_CLUSTER_URL'])}"
    else:
        cluster = "cluster starts on demand"
    return [f"deepagents-redis: {standalone}; {cluster}"]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Hand an xdist worker's report to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["deepagents_redis_report"] = session.config.stash[_REPORT].to_dict()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """Collect a finished xdist worker's report (controller side)."""
    report = getattr(node, "workeroutput", {}).get("deepagents_redis_report")
    if report is not None:
        worker = getattr(getattr(node, "gateway", None), "id", "worker")
        node.config.stash[_WORKER_REPORTS].append({**report, "worker": str(worker)})


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """One short section: which server kind was used and whether the cluster ran."""
    worker_reports = config.stash.get(_WORKER_REPORTS, [])
    lines: list[str] = []
    if worker_reports:
        for report in sorted(worker_reports, key=lambda r: str(r.get("worker"))):
            worker = report.get("worker", "worker")
            lines += [f"{worker}: {line}" for line in _report_from(report).lines()]
    else:
        lines = config.stash[_REPORT].lines()
    terminalreporter.write_sep("-", "deepagents-redis servers")
    for line in lines:
        terminalreporter.write_line(line)


def _report_from(data: Mapping[str, Any]) -> SessionReport:
    return SessionReport(
        standalone=data.get("standalone"),
        cluster=data.get("cluster"),
        factory_servers=int(data.get("factory_servers", 0)),
        proxies=int(data.get("proxies", 0)),
        notes=list(data.get("notes", [])),
    )


def _fail_or_skip(reason: str) -> None:
    """Skip locally when the environment lacks something; under CI that is a hard failure."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: refusing to skip)", pytrace=False)
    pytest.skip(reason)


# ---------------------------------------------------------------------------- standalone
@pytest.fixture(scope="session")
def _dar_standalone(request: pytest.FixtureRequest) -> Iterator[EmbeddedRedis | None]:
    """The session's private server; None when `REDIS_URL` points elsewhere."""
    report = request.config.stash[_REPORT]
    external = os.environ.get("REDIS_URL")
    if external:
        report.standalone = f"external server from REDIS_URL {redact_url(external)}"
        yield None
        return
    from deepagents_redis.core import ConfigurationError, RedisUnavailableError
    from deepagents_redis.core.embedded import EmbeddedRedis

    missing = _named_binary_missing()
    if missing is not None:
        # The user asked for that server (e.g. Valkey): fakeredis passing instead would
        # report a green run that never touched it.
        report.notes.append(f"FAILED: {missing}")
        pytest.fail(missing, pytrace=False)
    _teardown_on_sigterm(request.config)
    problem: str | None = None
    try:
        server = start_owned(lambda: EmbeddedRedis(allow_fallback=not in_ci()))
    except ConfigurationError as exc:
        problem = f"CI=true requires a real redis-server: {exc}"
    except (RedisUnavailableError, RuntimeError) as exc:
        problem = f"could not start the session's private redis-server: {exc}"
    if problem is not None:
        report.notes.append(f"FAILED: {problem}")
        pytest.fail(problem, pytrace=False)
    try:
        if server.kind == "fakeredis":
            report.standalone = (
                f"fakeredis TCP server on 127.0.0.1:{server.port} ({server.fallback_reason}); "
                "integration coverage is reduced"
            )
        else:
            report.standalone = f"{served_by(server)} on 127.0.0.1:{server.port}"
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_url(_dar_standalone: EmbeddedRedis | None) -> str:
    """URL of the session's standalone server (or the `REDIS_URL` override)."""
    if _dar_standalone is None:
        return os.environ["REDIS_URL"]
    return _dar_standalone.url


@pytest.fixture(scope="session")
def _dar_owned_standalone(request: pytest.FixtureRequest) -> Iterator[EmbeddedRedis]:
    """A standalone server this session started: the session's own, else a private one.

    With `REDIS_URL` the session server is someone else's: a test that flushes its scripts
    or adds ACL users there changes a server the suite did not start. Such tests get a
    private server, started once per session on first use.
    """
    own: EmbeddedRedis | None = request.getfixturevalue("_dar_standalone")
    if own is not None:
        yield own
        return
    if missing := _named_binary_missing():
        pytest.fail(missing, pytrace=False)
    if redis_server_version()[0] is None:
        _fail_or_skip("a server of the session's own needs the redis-server binary")
    from deepagents_redis.core.embedded import EmbeddedRedis

    _teardown_on_sigterm(request.config)
    server = start_owned(lambda: EmbeddedRedis(allow_fallback=False))
    report = request.config.stash[_REPORT]
    served = f"{served_by(server)} on 127.0.0.1:{server.port}"
    report.notes.append(f"own standalone for whole-server changes (REDIS_URL is set): {served}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def owned_redis_url(_dar_owned_standalone: EmbeddedRedis) -> str:
    """URL of a standalone server this session started (`redis_url` unless `REDIS_URL` is set)."""
    return _dar_owned_standalone.url


@pytest.fixture(scope="session")
def _dar_standalone_version(redis_url: str) -> str:
    import redis

    with redis.Redis.from_url(redis_url, socket_timeout=5, protocol=2) as client:
        info: dict[str, Any] = client.info("server")
    return str(info.get("redis_version", "0"))


@pytest.fixture(scope="session")
def redis_server_name(_dar_standalone: EmbeddedRedis | None, redis_url: str) -> str:
    """Which server the session's standalone URL answers from: ``"redis"`` or ``"valkey"``."""
    if _dar_standalone is not None and _dar_standalone.kind == "redis-server":
        _path, name, _version = server_binary()
        if name is not None:
            return name
    import redis

    with redis.Redis.from_url(redis_url, socket_timeout=5, protocol=2) as client:
        info: dict[str, Any] = client.info("server")
    return str(info.get("server_name") or "redis")


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to this test."""
    return unique_key_prefix(request.node.nodeid)


@pytest.fixture
def redis_settings(redis_url: str, key_prefix: str) -> RedisSettings:
    """Core settings for the standalone server with the test's key prefix."""
    from deepagents_redis.core import RedisSettings

    # With an external REDIS_URL the server might be anything: let core detect a cluster.
    if os.environ.get("REDIS_URL"):
        return RedisSettings(url=redis_url, key_prefix=key_prefix, cluster="auto")
    return RedisSettings(url=redis_url, key_prefix=key_prefix, cluster="off")


@pytest.fixture
def redis_client(redis_settings: RedisSettings) -> Iterator[SyncClient]:
    """A sync client from core's `create_client`, closed after the test."""
    from deepagents_redis.core import create_client

    client = create_client(redis_settings)
    try:
        yield client
    finally:
        client.close()


@pytest_asyncio.fixture
async def async_redis_client(redis_settings: RedisSettings) -> AsyncIterator[AsyncClient]:
    """An asyncio client from core's `create_async_client`, closed after the test."""
    from deepagents_redis.core import create_async_client

    client = await create_async_client(redis_settings)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(autouse=True)
def _dar_redis_version_gate(request: pytest.FixtureRequest) -> None:
    """Apply `@pytest.mark.redis_version(min=...)`: skip, naming both versions, when older."""
    marker = request.node.get_closest_marker("redis_version")
    if marker is None:
        return
    minimum = marker.kwargs.get("min", marker.args[0] if marker.args else None)
    if not minimum or not parse_version(str(minimum)):
        pytest.fail('redis_version marker needs a version: redis_version(min="7.2")')
    if _target_mode(request) == "cluster":
        cluster: ClusterHandle = request.getfixturevalue("redis_cluster")
        actual = cluster.version or "0"
    else:
        actual = request.getfixturevalue("_dar_standalone_version")
    if parse_version(actual) < parse_version(str(minimum)):
        pytest.skip(f"needs Redis >= {minimum}; the test server runs Redis {actual}")


def _target_mode(request: pytest.FixtureRequest) -> str:
    """Which server a version gate should ask: the cluster only for cluster-only tests."""
    callspec = getattr(request.node, "callspec", None)
    for name in ("redis_target", "owned_redis_target"):
        if callspec is not None and name in callspec.params:
            return str(callspec.params[name])
    names = request.fixturenames
    if "redis_cluster" in names and "redis_url" not in names:
        return "cluster"
    return "standalone"


# ---------------------------------------------------------------------------- postgres
POSTGRES_ENV = "TEST_POSTGRES_URL"
_POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database (created here, dropped after the test)."""
    import uuid

    try:
        import psycopg
    except ImportError:
        _fail_or_skip("postgres_url needs psycopg (pip install 'psycopg[binary]')")
    admin_url = os.environ.get(POSTGRES_ENV, _POSTGRES_DEFAULT)
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _fail_or_skip(f"no PostgreSQL at {redact_url(admin_url)}: {type(exc).__name__}")
    name = f"dar_test_{uuid.uuid4().hex[:12]}"
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# ---------------------------------------------------------------------------- cluster
class _ExternalCluster:
    """`REDIS_CLUSTER_URL`: a cluster someone else runs (no nodes to control)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.nodes: list[EmbeddedRedis] = []
        self.version: str | None = None


@pytest.fixture(scope="session")
def redis_cluster(request: pytest.FixtureRequest) -> Iterator[ClusterHandle]:
    """A local 3-primary Redis Cluster, started on first use and ready (`cluster_state:ok`)."""
    report = request.config.stash[_REPORT]
    external = os.environ.get("REDIS_CLUSTER_URL")
    if external:
        report.cluster = f"external cluster from REDIS_CLUSTER_URL {redact_url(external)}"
        cluster = _ExternalCluster(external)
        import redis

        with redis.RedisCluster.from_url(external, socket_timeout=5) as client:
            info: dict[str, Any] = client.info("server", target_nodes=client.get_random_node())
        cluster.version = str(info.get("redis_version", "0"))
        yield cluster
        return
    local = _start_local_cluster(request)
    try:
        report.cluster = f"3 primaries, {local.served_by}, ports {', '.join(map(str, local.ports))}"
        yield local
    finally:
        local.close()


def _start_local_cluster(request: pytest.FixtureRequest) -> LocalCluster:
    path, _ = redis_server_version()
    if missing := _named_binary_missing():
        pytest.fail(missing, pytrace=False)
    if path is None:
        _fail_or_skip("the cluster tier needs the redis-server binary (fakeredis has no cluster)")
    from ._cluster import LocalCluster

    _teardown_on_sigterm(request.config)
    local = LocalCluster()
    local.start()
    return local


@pytest.fixture(scope="session")
def _dar_owned_cluster(request: pytest.FixtureRequest) -> Iterator[ClusterHandle]:
    """A cluster this session started: `redis_cluster`, else (`REDIS_CLUSTER_URL`) a private one."""
    if not os.environ.get("REDIS_CLUSTER_URL"):
        yield request.getfixturevalue("redis_cluster")
        return
    local = _start_local_cluster(request)
    try:
        ports = ", ".join(map(str, local.ports))
        report = request.config.stash[_REPORT]
        report.notes.append(
            f"own cluster for whole-server changes (REDIS_CLUSTER_URL is set): ports {ports}"
        )
        yield local
    finally:
        local.close()


@pytest.fixture
def cluster_settings(redis_cluster: ClusterHandle, key_prefix: str) -> RedisSettings:
    """Core settings for the cluster (`cluster="on"`) with the test's key prefix."""
    from deepagents_redis.core import RedisSettings

    return RedisSettings(url=redis_cluster.url, key_prefix=key_prefix, cluster="on")


@pytest.fixture
def cluster_client(cluster_settings: RedisSettings) -> Iterator[SyncClient]:
    """A sync cluster client from core's `create_client`, closed after the test."""
    from deepagents_redis.core import create_client

    client = create_client(cluster_settings)
    try:
        yield client
    finally:
        client.close()


@pytest_asyncio.fixture
async def async_cluster_client(cluster_settings: RedisSettings) -> AsyncIterator[AsyncClient]:
    """An asyncio cluster client from core's `create_async_client`, closed after the test."""
    from deepagents_redis.core import create_async_client

    client = await create_async_client(cluster_settings)
    try:
        yield client
    finally:
        await client.aclose()


# The two modes `redis_target` and `owned_redis_target` run a test in.
_TARGET_MODES = [
    pytest.param("standalone", id="standalone"),
    pytest.param("cluster", id="cluster", marks=pytest.mark.cluster),
]


@pytest_asyncio.fixture(params=_TARGET_MODES)
async def redis_target(
    request: pytest.FixtureRequest, key_prefix: str
) -> AsyncIterator[RedisTarget]:
    """The test once on the standalone server and once on the cluster (marked `cluster`)."""
    mode = request.param
    if mode == "cluster":
        settings: RedisSettings = request.getfixturevalue("cluster_settings")
    else:
        settings = request.getfixturevalue("redis_settings")
    target = RedisTarget(mode=mode, settings=settings)
    try:
        await target.aopen()
        yield target
    finally:
        await target.aclose()


@pytest_asyncio.fixture(params=_TARGET_MODES)
async def owned_redis_target(
    request: pytest.FixtureRequest, key_prefix: str
) -> AsyncIterator[RedisTarget]:
    """`redis_target` on servers this session started, whatever `REDIS_URL` names.

    For tests that change a whole server (`SCRIPT FLUSH`, `ACL SETUSER`): the suite never
    does that to a server it did not start. Without `REDIS_URL` / `REDIS_CLUSTER_URL` these
    are `redis_target`'s own servers, so it costs nothing more.
    """
    from deepagents_redis.core import RedisSettings

    mode = request.param
    if mode == "cluster":
        url = request.getfixturevalue("_dar_owned_cluster").url
        settings = RedisSettings(url=url, key_prefix=key_prefix, cluster="on")
    else:
        url = request.getfixturevalue("owned_redis_url")
        settings = RedisSettings(url=url, key_prefix=key_prefix, cluster="off")
    target = RedisTarget(mode=mode, settings=settings)
    try:
        await target.aopen()
        yield target
    finally:
        await target.aclose()


# ---------------------------------------------------------------------------- factory, proxy
@pytest.fixture
def redis_server_factory(request: pytest.FixtureRequest) -> Iterator[ServerFactory]:
    """Start dedicated `redis-server`s with custom config; all are stopped after the test.

    `factory(*, aof=False, debug=False, config=None)`: `aof=True` turns on the append-only file
    with `appendfsync always` (acknowledged writes survive `kill()`); `debug=True` enables
    `DEBUG` (`--enable-debug-command local`, e.g. for `DEBUG SLEEP`); `config` adds any other
    `redis-server` options. The handle has `.url`, `.port`, `.data_dir`, `.kill()`,
    `.restart()` and `.stop()`.
    """
    report = request.config.stash[_REPORT]
    path, _ = redis_server_version()
    started: list[EmbeddedRedis] = []

    def factory(
        *, aof: bool = False, debug: bool = False, config: Mapping[str, str] | None = None
    ) -> EmbeddedRedis:
        if missing := _named_binary_missing():
            pytest.fail(missing, pytrace=False)
        if path is None:
            _fail_or_skip("redis_server_factory needs the redis-server binary")
        from deepagents_redis.core.embedded import EmbeddedRedis

        _teardown_on_sigterm(request.config)
        options: dict[str, str] = {}
        if aof:
            options.update({"appendonly": "yes", "appendfsync": "always"})
        if debug:
            options["enable-debug-command"] = "local"
        options.update(config or {})
        server = start_owned(lambda: EmbeddedRedis(config=options, allow_fallback=False))
        started.append(server)
        report.factory_servers += 1
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.close()


@pytest.fixture
def redis_sentinel_factory(
    redis_server_factory: ServerFactory, tmp_path: Path
) -> Iterator[SentinelFactory]:
    """Start Sentinel topologies (master, replicas, Sentinels); all are stopped after the test.

    `factory(*, replicas=0, sentinels=1, quorum=None, service="mymaster", ...)` (see
    `SentinelTopology.start`) returns a running `SentinelTopology` whose `.url` is a
    ``redis+sentinel://`` URL for core's client factory.
    """
    from deepagents_redis.testing._sentinel import SentinelTopology

    started: list[SentinelTopology] = []

    def factory(**options: Any) -> SentinelTopology:
        from deepagents_redis.core.embedded import find_redis_server

        if missing := _named_binary_missing():
            pytest.fail(missing, pytrace=False)
        if find_redis_server() is None:
            _fail_or_skip("a Sentinel topology needs the redis-server binary")
        workdir = tmp_path / f"sentinels-{len(started)}"
        # Anything else that goes wrong (a Sentinel that exits, a port taken) is a failure:
        # it was skipped with the missing binary, hiding a broken topology as "skipped".
        topo = SentinelTopology.start(redis_server_factory, workdir, **options)
        started.append(topo)
        return topo

    try:
        yield factory
    finally:
        for topo in started:
            topo.stop()


@pytest.fixture
def fault_proxy(request: pytest.FixtureRequest) -> Iterator[ProxyFactory]:
    """`fault_proxy(target_url) -> FaultProxy` on a free loopback port; closed after the test."""
    report = request.config.stash[_REPORT]
    proxies: list[FaultProxy] = []

    def factory(target_url: str) -> FaultProxy:
        proxy = FaultProxy(target_url)
        proxies.append(proxy)
        report.proxies += 1
        return proxy

    try:
        yield factory
    finally:
        for proxy in proxies:
            proxy.close()


# ---------------------------------------------------------------------------- closer
@pytest_asyncio.fixture
async def closer(request: pytest.FixtureRequest) -> AsyncIterator[Closer]:
    """`closer(obj)` or `closer.factory(build, **defaults)`: what it gets is closed after the test.

    Newest first; with `aclose()` in the test's event loop after an async test, `close()`
    after a sync one. An async fixture, like `redis_target`, so that its teardown runs in the
    loop where the test's asyncio clients live.
    """
    closing = Closer(use_aclose=inspect.iscoroutinefunction(request.function))
    try:
        yield closing
    finally:
        await closing.aclose_all()
