"""pytest plugin: run LangGraph's own graph tests with RedisSaver as their checkpointer.

`scripts/langgraph-upstream-tests` loads it (`-p redis_for_langgraph`) into a pytest run of the
`tests/` folder of LangGraph's sdist. Our own suite never collects it: the name does not start
with ``test_``.

LangGraph's `tests/conftest.py` builds its `sync_checkpointer` / `async_checkpointer` fixtures,
parametrized over saver names, by calling module globals imported from
`tests/conftest_checkpointer.py` (`_checkpointer_memory()` for ``"memory"``; the async fixture
uses that same sync context manager for ``"memory"``, there is no async twin). The fixture
bodies look the name up when they run, so replacing the conftest module's global when pytest
registers the conftest swaps the saver for every test. This plugin then:

- starts a private `redis-server` for the session (`EmbeddedRedis`, a free port on 127.0.0.1,
  no fakeredis fallback) and stops it at the end;
- replaces `_checkpointer_memory` with a context manager that yields a fresh `RedisSaver` on a
  key prefix unique to the test, and deletes that prefix's keys afterwards;
- keeps only the tests whose checkpointer parameter is ``"memory"`` (the others are reported
  as deselected), so every selected test runs on RedisSaver;
- fails the session at start if the conftest was not patched, and fails any test whose
  checkpointer argument is not a RedisSaver: a run can never silently test InMemorySaver.

``NO_DOCKER=true`` is forced before LangGraph's conftest is imported: otherwise its `cache`
fixture is parametrized over a Redis on localhost:6379 and its savers over PostgreSQL on
localhost:5442, servers this run must not touch.

``DEEPAGENTS_REDIS_UPSTREAM_BASELINE=1`` leaves LangGraph's in-memory saver in place (same
selection, no server): the script's ``--baseline`` run, which tells upstream and environment
failures apart from ours.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
import redis
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.core import RedisSettings
from deepagents_redis.core.embedded import EmbeddedRedis
from deepagents_redis.testing import unique_key_prefix

CONFTEST = "tests.conftest"
FACTORY = "_checkpointer_memory"
PARAM = "memory"
FIXTURES = ("sync_checkpointer", "async_checkpointer")
BASELINE = os.environ.get("DEEPAGENTS_REDIS_UPSTREAM_BASELINE", "") == "1"


class _State:
    """What the session shares: the server, a client for cleanup, the running test's id."""

    server: EmbeddedRedis | None = None
    cleaner: redis.Redis | None = None
    nodeid: str = ""
    savers_built: int = 0
    not_memory: int = 0  # tests deselected for running on another saver (or none)
    deselected: int = 0  # every deselected test (ours above plus --deselect / -k)
    patched: list[str] = []  # noqa: RUF012 - one session per process, mutated in place


def _server_url() -> str:
    if _State.server is None:
        raise RuntimeError("redis_for_langgraph: the private redis-server is not running")
    return _State.server.url


def _closing_after(
    test: Callable[..., Awaitable[Any]], savers: list[RedisSaver]
) -> Callable[..., Awaitable[Any]]:
    """`test`, then the savers' asyncio clients closed in the test's own loop.

    LangGraph's async fixture enters the sync `_checkpointer_memory()` context manager, whose
    exit cannot await; and a task handed to the loop from there is cancelled when anyio's
    runner closes the loop. The test body is the last place the loop is ours.
    """

    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return await test(*args, **kwargs)
        finally:
            for saver in savers:
                await saver.aclose()

    return run


def _delete_prefix(prefix: str) -> None:
    cleaner = _State.cleaner
    if cleaner is None:
        return
    batch = list(cleaner.scan_iter(match=f"{prefix}:*", count=1000))
    while batch:
        cleaner.unlink(*batch[:500])
        batch = batch[500:]


@contextmanager
def checkpointer_redis() -> Iterator[RedisSaver]:
    """What LangGraph's ``"memory"`` checkpointer becomes: a RedisSaver on the private server."""
    prefix = unique_key_prefix(_State.nodeid)
    saver = RedisSaver(settings=RedisSettings(url=_server_url(), key_prefix=prefix))
    _State.savers_built += 1
    try:
        yield saver
    finally:
        try:
            saver.close()  # the sync client; an async test closed its asyncio one already
        finally:
            _delete_prefix(prefix)


def _patch(module: ModuleType) -> None:
    if not hasattr(module, FACTORY):
        raise pytest.UsageError(
            f"redis_for_langgraph: {module.__name__} has no {FACTORY}; LangGraph's test "
            "layout changed, update the plugin"
        )
    module.__dict__[FACTORY] = checkpointer_redis
    _State.patched.append(module.__name__)


# ----------------------------------------------------------------------------- hooks
@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Force NO_DOCKER before LangGraph's conftest reads it (see the module docstring)."""
    os.environ["NO_DOCKER"] = "true"


def pytest_plugin_registered(plugin: object, manager: pytest.PytestPluginManager) -> None:
    """Swap the in-memory saver factory as soon as LangGraph's conftest is registered."""
    if BASELINE or not isinstance(plugin, ModuleType):
        return
    if plugin.__name__ == CONFTEST:
        _patch(plugin)
        # Where the factory is defined, for any test module that imports it from there.
        source = sys.modules.get("tests.conftest_checkpointer")
        if source is not None:
            _patch(source)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Check that the substitution took, start the private server and say so (even with -q)."""
    if BASELINE:
        _announce(
            session.config,
            f"BASELINE: LangGraph's own {FACTORY} (InMemorySaver), '{PARAM}' checkpointer "
            "tests only",
        )
        return
    conftest = sys.modules.get(CONFTEST)
    if conftest is None or getattr(conftest, FACTORY, None) is not checkpointer_redis:
        raise pytest.UsageError(
            f"redis_for_langgraph: {CONFTEST}.{FACTORY} was not replaced (conftest "
            f"{'not loaded' if conftest is None else 'loaded, patch missing'}); run pytest from "
            "the extracted sdist with the tests/ paths as arguments"
        )
    server = EmbeddedRedis(allow_fallback=False)
    server.start()
    _State.server = server
    _State.cleaner = redis.Redis.from_url(server.url)
    _announce(
        session.config,
        f"substitution active: {' and '.join(_State.patched)}.{FACTORY} -> RedisSaver on a "
        f"private redis-server {server.version} at {server.url}; '{PARAM}' checkpointer "
        "tests only",
    )


def _announce(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"redis_for_langgraph: {line}")


def _checkpointer_param(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    for name in FIXTURES:
        if name in callspec.params:
            return str(callspec.params[name])
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tests that take a checkpointer fixture with the ``"memory"`` parameter."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if _checkpointer_param(item) == PARAM else drop).append(item)
    if drop:
        _State.not_memory += len(drop)
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Count every deselection (the summary splits ours from the script's list)."""
    _State.deselected += len(items)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember the running test: its id seeds the saver's key prefix."""
    _State.nodeid = item.nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Fail a test that did not get a RedisSaver (the substitution must not leak)."""
    if BASELINE:
        return
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    for name in FIXTURES:
        if name in funcargs and not isinstance(funcargs[name], RedisSaver):
            raise AssertionError(
                f"redis_for_langgraph: {name} is a {type(funcargs[name]).__name__}, "
                "not RedisSaver: the substitution did not take"
            )


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    """Run an async test so that its savers' asyncio clients are closed in its loop."""
    savers = [
        value
        for name, value in pyfuncitem.funcargs.items()
        if name in FIXTURES and isinstance(value, RedisSaver)
    ]
    original = pyfuncitem.obj
    if not savers or not inspect.iscoroutinefunction(original):
        return (yield)
    pyfuncitem.obj = _closing_after(original, savers)
    try:
        return (yield)
    finally:
        pyfuncitem.obj = original


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One line of counts the script's caller can read, and the number of savers built."""
    stats = terminalreporter.stats
    counts = {
        key: len(stats.get(key, []))
        for key in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
    }
    saver = "InMemorySaver (baseline)" if BASELINE else "RedisSaver"
    terminalreporter.write_sep("-", "redis_for_langgraph")
    terminalreporter.write_line(
        f"on {saver}: "
        + ", ".join(f"{n} {key}" for key, n in counts.items())
        + f"; deselected: {_State.not_memory} not on the '{PARAM}' checkpointer, "
        f"{_State.deselected - _State.not_memory} by --deselect/-k"
    )
    if not BASELINE:
        terminalreporter.write_line(f"RedisSavers built: {_State.savers_built}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the private server (by its own PID, through EmbeddedRedis); no saver is a failure."""
    ran = session.testscollected and not session.config.option.collectonly
    if not BASELINE and ran and _State.savers_built == 0:
        # Tests ran but none built a RedisSaver: whatever they tested, it was not ours.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if _State.cleaner is not None:
        _State.cleaner.close()
        _State.cleaner = None
    if _State.server is not None:
        _State.server.close()
        _State.server = None
