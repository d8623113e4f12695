"""Every settings class follows core's one convention (issue 9 §4).

Before: `CacheSettings(ttl_seconds=-1)` or a bad `DEEPAGENTS_REDIS_TODOS_MAX_ITEMS` raised
pydantic's `ValidationError` (a traceback in the CLI), and unknown keywords were ignored.
"""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.agent import AgentRedisSettings
from deepagents_redis.cache import CacheSettings
from deepagents_redis.checkpoint import CheckpointOptions, CheckpointSettings
from deepagents_redis.coord import CoordOptions, CoordSettings
from deepagents_redis.core import ConfigurationError, Connection, PhaseSettings, RedisSettings
from deepagents_redis.fs import FsSettings
from deepagents_redis.todos import TodosSettings

CLASSES: list[tuple[type[PhaseSettings], str, dict[str, Any], str]] = [
    (RedisSettings, "DEEPAGENTS_REDIS_SOCKET_TIMEOUT", {"socket_timeout": -1}, "-1"),
    (CacheSettings, "DEEPAGENTS_REDIS_CACHE_TTL_SECONDS", {"ttl_seconds": -1}, "-1"),
    (TodosSettings, "DEEPAGENTS_REDIS_TODOS_MAX_ITEMS", {"max_items": 0}, "lots"),
    (FsSettings, "DEEPAGENTS_REDIS_FS_CHUNK_SIZE", {"chunk_size": "big"}, "big"),
    (CoordSettings, "DEEPAGENTS_REDIS_COORD_LEASE_SECONDS", {"lease_seconds": 0}, "soon"),
    (CheckpointSettings, "DEEPAGENTS_REDIS_CHECKPOINT_TTL_SECONDS", {"ttl_seconds": 0}, "x"),
    (AgentRedisSettings, "DEEPAGENTS_REDIS_CACHE_ENABLED", {"cache_enabled": "maybe"}, "maybe"),
]


@pytest.mark.parametrize(
    ("cls", "env", "bad", "bad_env"), CLASSES, ids=[c[0].__name__ for c in CLASSES]
)
def test_bad_values_are_configuration_errors(
    cls: type[PhaseSettings],
    env: str,
    bad: dict[str, Any],
    bad_env: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert issubclass(cls, PhaseSettings)
    field = next(iter(bad))
    with pytest.raises(ConfigurationError, match=f"invalid {cls.__name__}: {field}"):
        cls(**bad)
    monkeypatch.setenv(env, bad_env)
    with pytest.raises(ConfigurationError, match=f"invalid {cls.__name__}"):
        cls()


@pytest.mark.parametrize("cls", [c[0] for c in CLASSES], ids=[c[0].__name__ for c in CLASSES])
def test_unknown_keywords_are_refused(cls: type[PhaseSettings]) -> None:
    with pytest.raises(ConfigurationError, match="no_such_option"):
        cls(no_such_option=1)


@pytest.mark.parametrize("cls", [c[0] for c in CLASSES], ids=[c[0].__name__ for c in CLASSES])
def test_fields_are_documented_and_durations_are_seconds(cls: type[PhaseSettings]) -> None:
    # redis-py's own names (seconds, as in redis-py) are kept so users recognise them.
    redis_py_names = {"socket_timeout", "socket_connect_timeout"}
    for name, info in cls.model_fields.items():
        assert info.description, f"{cls.__name__}.{name} has no docstring"
        if name not in redis_py_names:
            assert not name.endswith(("_ms", "_millis", "_timeout")), name


def test_with_overrides_validates() -> None:
    settings = TodosSettings(max_items=10)
    assert settings.with_overrides(max_items=20).max_items == 20
    with pytest.raises(ConfigurationError, match="max_items"):
        settings.with_overrides(max_items=-5)


@pytest.mark.parametrize("prefix", ["app:", ":x", "a{b}", "a*", ""])
def test_a_bad_key_prefix_is_refused_at_settings_time(prefix: str) -> None:
    # Before: RedisSettings(key_prefix="app:") was accepted and failed at first use.
    with pytest.raises(ConfigurationError, match="key_prefix"):
        RedisSettings(url="redis://h:1/0", key_prefix=prefix)


@pytest.mark.parametrize(
    ("options", "settings", "extra"),
    [
        (CheckpointOptions, CheckpointSettings, set()),
        (CoordOptions, CoordSettings, {"coord_settings"}),
    ],
    ids=["checkpoint", "coord"],
)
def test_keyword_options_list_every_settings_field(
    options: type, settings: type[PhaseSettings], extra: set[str]
) -> None:
    # The TypedDict that types `RedisSaver(**options)` / `Worker(**kwargs)` must name the
    # connection keywords and exactly the settings fields: a field added to the settings
    # and not here would type-check as an error at every caller that uses it.
    expected = set(Connection.__annotations__) | set(settings.model_fields) | extra
    assert set(options.__annotations__) | set(Connection.__annotations__) == expected
    assert set(options.__annotations__) - set(Connection.__annotations__) <= expected


def _complex_fields(cls: type[PhaseSettings]) -> list[str]:
    """Fields pydantic-settings reads from the environment as JSON (dicts, lists, models)."""
    from pydantic_settings import EnvSettingsSource

    env = EnvSettingsSource(cls)
    return [name for name, info in cls.model_fields.items() if env.field_is_complex(info)]


COMPLEX = [(c[0], name) for c in CLASSES for name in _complex_fields(c[0])]


def test_there_are_complex_fields_to_check() -> None:
    assert (FsSettings, "ttl_rules") in COMPLEX


@pytest.mark.parametrize(("cls", "name"), COMPLEX, ids=[f"{c.__name__}.{n}" for c, n in COMPLEX])
def test_a_complex_field_whose_variable_is_not_json_is_a_configuration_error(
    cls: type[PhaseSettings], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pydantic-settings parses such a variable as JSON before validation: text that is not
    # JSON raised its bare SettingsError (a ValueError) out of the constructor.
    prefix = cls.model_config.get("env_prefix", "")
    monkeypatch.setenv(f"{prefix}{name}".upper(), "not json: s3cret")
    with pytest.raises(ConfigurationError, match=f"invalid {cls.__name__}") as caught:
        cls()
    assert "s3cret" not in str(caught.value)
    assert name in str(caught.value)
