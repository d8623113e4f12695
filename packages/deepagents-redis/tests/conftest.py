"""Shared fixtures of the umbrella package's tests."""

from __future__ import annotations

import pytest
from deepagents_redis.agent._flags import AgentRedisSettings


@pytest.fixture(autouse=True)
def _no_phase_flags_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with no ``DEEPAGENTS_REDIS_<PHASE>_ENABLED`` in the environment.

    A developer's shell with one set (observe, coord, checkpoint) turned phases on in tests
    that expect them off: spurious failures unrelated to the change under test. The names
    come from the settings class, so a new phase's flag is cleared too.
    """
    for field in AgentRedisSettings.model_fields:
        if field.endswith("_enabled"):
            monkeypatch.delenv(f"DEEPAGENTS_REDIS_{field.upper()}", raising=False)
