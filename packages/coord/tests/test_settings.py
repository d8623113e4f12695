"""CoordSettings: keyword arguments, then DEEPAGENTS_REDIS_COORD_*; bad values are one line."""

from __future__ import annotations

import pytest
from deepagents_redis.coord import CoordSettings, TaskClient
from deepagents_redis.core import ConfigurationError


def test_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CoordSettings().lease_seconds == 30.0
    monkeypatch.setenv("DEEPAGENTS_REDIS_COORD_MAX_BACKLOG", "7")
    monkeypatch.setenv("DEEPAGENTS_REDIS_COORD_NAMESPACE", "team-a")
    settings = CoordSettings()
    assert (settings.max_backlog, settings.namespace) == (7, "team-a")
    assert CoordSettings(max_backlog=9).max_backlog == 9  # keyword beats env


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"lease_seconds": 1, "heartbeat_seconds": 2}, "heartbeat_seconds"),
        # just under the lease: one late renewal lets another worker run a live task again
        ({"lease_seconds": 10, "heartbeat_seconds": 9.5}, "heartbeat_seconds"),
        ({"lease_seconds": 10, "heartbeat_seconds": 5.01}, "heartbeat_seconds"),
        ({"backoff_base_seconds": 5, "backoff_cap_seconds": 1}, "backoff_cap_seconds"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"namespace": ""}, "namespace"),
        ({"no_such_field": 1}, "no_such_field"),
    ],
)
def test_bad_values_are_configuration_errors(values: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        CoordSettings(**values)  # type: ignore[arg-type]


def test_a_heartbeat_of_half_the_lease_is_accepted() -> None:
    assert CoordSettings(lease_seconds=10, heartbeat_seconds=5).heartbeat_seconds == 5


def test_bad_env_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_COORD_LEASE_SECONDS", "soon")
    with pytest.raises(ConfigurationError, match="lease_seconds"):
        CoordSettings()


def test_components_take_fields_as_keywords() -> None:
    tasks = TaskClient(url="redis://127.0.0.1:1/0", namespace="n", max_backlog=3)
    assert (tasks.namespace, tasks.coord_settings.max_backlog) == ("n", 3)
    with pytest.raises(ConfigurationError, match="max_backlog"):
        TaskClient(url="redis://127.0.0.1:1/0", max_backlog=0)
