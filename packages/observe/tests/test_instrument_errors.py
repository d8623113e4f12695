"""`instrument()` refusing its arguments changes nothing."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from deepagents_redis.core import ConfigurationError, get_instrumentation
from deepagents_redis.observe import instrument, is_instrumented, uninstrument


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    uninstrument()
    yield
    uninstrument()


def test_redis_commands_without_the_extra_keeps_what_was_in_force(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The ConfigurationError came after the instrumentation in force had been taken out:
    # a process that asked for command spans without the extra lost all of its reporting.
    mine = instrument()
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.redis", None)
    with pytest.raises(ConfigurationError, match=r"deepagents-redis-observe\[redis\]"):
        instrument(redis_commands=True)
    assert is_instrumented()
    assert get_instrumentation() is mine
