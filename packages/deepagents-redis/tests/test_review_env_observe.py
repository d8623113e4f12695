"""Review of 38ab6c7 / b52f923: settings read before the build, and observe's undo.

* Two agents built at once in threads, the one that instrumented failing: its undo took
  back the instrumentation the other (built meanwhile, "kept" it) relies on.
* A variable's value (a password in a URL, ``DEEPAGENTS_REDIS_PASSWORD``) is never in the
  error; a valid variable set next to a bad one is not blamed; a phase that is off is not
  read at all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import deepagents
import pytest
from deepagents_redis.agent import close_redis, create_deep_agent
from deepagents_redis.core import ConfigurationError, get_instrumentation
from deepagents_redis.testing.chat import ScriptedChatModel
from langchain_core.messages import AIMessage

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-pw-7781"


def _model() -> ScriptedChatModel:
    return ScriptedChatModel(script=[AIMessage("done")])


@pytest.fixture
def no_instrumentation() -> Iterator[None]:
    observe = pytest.importorskip("deepagents_redis.observe")
    observe.uninstrument()
    yield
    observe.uninstrument()


class _Blocked:
    """A tool marker: deepagents is made to wait on it, then refuse the build."""


@pytest.mark.usefixtures("no_instrumentation")
def test_a_failed_build_keeps_the_instrumentation_a_concurrent_build_kept(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deepagents_redis.observe import is_instrumented

    upstream = deepagents.create_deep_agent
    inside, go = threading.Event(), threading.Event()

    def gated(*args: Any, **kwargs: Any) -> Any:
        if any(isinstance(t, _Blocked) for t in kwargs.get("tools") or ()):
            inside.set()
            assert go.wait(60)
            raise ValueError("tool refused")
        return upstream(*args, **kwargs)

    monkeypatch.setattr(deepagents, "create_deep_agent", gated)
    failed: list[BaseException] = []

    def build_a() -> None:
        try:
            create_deep_agent(_model(), tools=[_Blocked()], redis_url=redis_url, redis_observe=True)
        except BaseException as exc:  # the thread's outcome, asserted below
            failed.append(exc)

    a = threading.Thread(target=build_a)
    a.start()
    try:
        assert inside.wait(60)  # A instrumented and is inside deepagents
        theirs = get_instrumentation()
        b = create_deep_agent(_model(), redis_url=redis_url, redis_observe=True)
    finally:
        go.set()
        a.join(60)
    try:
        assert [type(e) for e in failed] == [ValueError]
        # Before: A's undo uninstrumented, and B (built, running) reported nothing.
        assert is_instrumented()
        assert get_instrumentation() is theirs
    finally:
        close_redis(b)


@pytest.mark.usefixtures("no_instrumentation")
def test_a_failed_build_that_kept_instrumentation_leaves_it(redis_url: str) -> None:
    from deepagents_redis.observe import is_instrumented

    first = create_deep_agent(_model(), redis_url=redis_url, redis_observe=True)
    mine = get_instrumentation()
    with pytest.raises(ValueError, match="tool"):
        create_deep_agent(_model(), tools=[object()], redis_url=redis_url, redis_observe=True)
    close_redis(first)
    assert is_instrumented()
    assert get_instrumentation() is mine


@pytest.mark.usefixtures("no_instrumentation")
def test_two_failed_builds_take_everything_back(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first instruments and waits; the second keeps it and fails; then the first fails:
    # nothing relies on the instrumentation any more, so it goes.
    from deepagents_redis.observe import is_instrumented

    upstream = deepagents.create_deep_agent
    inside, go = threading.Event(), threading.Event()

    def gated(*args: Any, **kwargs: Any) -> Any:
        if any(isinstance(t, _Blocked) for t in kwargs.get("tools") or ()):
            inside.set()
            assert go.wait(60)
            raise ValueError("tool refused")
        return upstream(*args, **kwargs)

    monkeypatch.setattr(deepagents, "create_deep_agent", gated)
    failed: list[BaseException] = []

    def build_a() -> None:
        try:
            create_deep_agent(_model(), tools=[_Blocked()], redis_observe=True)
        except BaseException as exc:  # asserted below
            failed.append(exc)

    a = threading.Thread(target=build_a)
    a.start()
    try:
        assert inside.wait(60)
        with pytest.raises(ValueError, match="tool"):
            create_deep_agent(_model(), tools=[object()], redis_observe=True)
        assert is_instrumented()  # A is still building
    finally:
        go.set()
        a.join(60)
    assert [type(e) for e in failed] == [ValueError]
    assert not is_instrumented()


# -- environment naming ---------------------------------------------------------------------


def test_a_url_password_in_a_bad_variable_is_never_repeated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", f"redis://user:{SECRET}@127.0.0.1:notaport/0")
    with pytest.raises(ConfigurationError) as info:
        create_deep_agent(_model(), redis_todos=True)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.__cause__) or info.value.__cause__ is None


def test_the_password_variable_is_never_repeated(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Set next to a bad variable: the error names the bad one, and neither value.
    monkeypatch.setenv("DEEPAGENTS_REDIS_PASSWORD", SECRET)
    monkeypatch.setenv("DEEPAGENTS_REDIS_SOCKET_TIMEOUT", "not-a-number")
    with pytest.raises(
        ConfigurationError, match=r"DEEPAGENTS_REDIS_SOCKET_TIMEOUT \(environment variable\)"
    ) as info:
        create_deep_agent(_model(), redis_url=redis_url, redis_todos=True)
    assert SECRET not in str(info.value)
    assert "not-a-number" not in str(info.value)
    assert "PASSWORD" not in str(info.value)


def test_a_valid_variable_next_to_a_bad_one_is_not_blamed(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_CACHE_NAMESPACE", "fine")
    monkeypatch.setenv("DEEPAGENTS_REDIS_CACHE_TTL_SECONDS", "nope")
    with pytest.raises(ConfigurationError) as info:
        create_deep_agent(_model(), redis_url=redis_url, redis_cache=True)
    text = str(info.value)
    assert "DEEPAGENTS_REDIS_CACHE_TTL_SECONDS (environment variable)" in text
    assert "NAMESPACE" not in text
    assert "nope" not in text


@pytest.mark.parametrize(
    ("variable", "value", "switches"),
    [
        ("DEEPAGENTS_REDIS_CACHE_TTL_SECONDS", "nope", {"redis_todos": True}),
        ("DEEPAGENTS_REDIS_FS_CHUNK_SIZE", "-1", {"redis_todos": True}),
        ("DEEPAGENTS_REDIS_FS_TTL_RULES", "{not json", {"redis_cache": True}),
        ("DEEPAGENTS_REDIS_COORD_NAMESPACE", "", {"redis_todos": True}),
        ("DEEPAGENTS_REDIS_CHECKPOINT_TTL_SECONDS", "-5", {"redis_todos": True}),
        ("DEEPAGENTS_REDIS_TODOS_MAX_ITEMS", "nope", {"redis_fs": True}),
    ],
)
def test_a_phase_that_is_off_is_not_read(
    variable: str,
    value: str,
    switches: dict[str, bool],
    redis_url: str,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from deepagents_redis.core import RedisSettings

    for flag in ("CACHE", "TODOS", "FS", "COORD", "CHECKPOINT", "OBSERVE"):
        monkeypatch.delenv(f"DEEPAGENTS_REDIS_{flag}", raising=False)
    monkeypatch.setenv(variable, value)
    settings = RedisSettings(url=redis_url, key_prefix=key_prefix)
    off = {
        name: False
        for name in ("redis_cache", "redis_todos", "redis_fs", "redis_coord", "redis_checkpointer")
    }
    agent = create_deep_agent(_model(), redis_settings=settings, **{**off, **switches})
    close_redis(agent)


@pytest.mark.parametrize(
    ("variable", "value", "switch", "keyword"),
    [
        ("DEEPAGENTS_REDIS_FS_CHUNK_SIZE", "-1", "redis_fs", "backend"),
        ("DEEPAGENTS_REDIS_FS_TTL_RULES", "{not json", "redis_fs", "backend"),
        ("DEEPAGENTS_REDIS_CHECKPOINT_TTL_SECONDS", "-5", "redis_checkpointer", "checkpointer"),
    ],
)
def test_a_phase_keeping_the_callers_object_does_not_read_its_settings(
    variable: str,
    value: str,
    switch: str,
    keyword: str,
    redis_url: str,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The phase keeps the caller's backend / checkpointer and never uses its settings: before
    # 38ab6c7 a stale variable next to it built fine; read early, it refused the build.
    from deepagents.backends import StateBackend
    from deepagents_redis.core import RedisSettings
    from langgraph.checkpoint.memory import InMemorySaver

    mine: Any = StateBackend() if keyword == "backend" else InMemorySaver()
    monkeypatch.setenv(variable, value)
    settings = RedisSettings(url=redis_url, key_prefix=key_prefix)
    agent = create_deep_agent(_model(), redis_settings=settings, **{switch: True, keyword: mine})
    close_redis(agent)
    # Without the caller's object the phase builds its own, and the variable is refused.
    with pytest.raises(ConfigurationError, match=rf"{variable} \(environment variable\)"):
        create_deep_agent(_model(), redis_settings=settings, **{switch: True})


def test_a_mapping_variable_that_is_not_json_is_named_by_the_cli_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Core's settings turn pydantic-settings' SettingsError into a ConfigurationError under
    # the field name (f92f9ed): the variable must still be named, the value never repeated.
    from deepagents_redis.agent._env import env_named_any
    from deepagents_redis.fs import FsSettings

    monkeypatch.setenv("DEEPAGENTS_REDIS_FS_TTL_RULES", "{" + SECRET)
    with pytest.raises(ConfigurationError) as info:
        FsSettings()
    said = str(env_named_any(info.value))
    assert "DEEPAGENTS_REDIS_FS_TTL_RULES (environment variable): not valid JSON" in said
    assert SECRET not in said
