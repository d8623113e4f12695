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


def _broken(where: str) -> object:
    """A span processor that raises where the SDK does not catch it (on_start / on_end)."""
    from opentelemetry.sdk.trace import SpanProcessor

    class Broken(SpanProcessor):
        def on_start(self, span: object, parent_context: object = None) -> None:
            if where == "start":
                raise RuntimeError("processor broke on start")

        def on_end(self, span: object) -> None:
            if where == "end":
                raise RuntimeError("processor broke on end")

    return Broken()


@pytest.mark.parametrize("where", ["start", "end"])
def test_a_broken_span_processor_never_fails_the_operation(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The SDK calls a processor's on_start/on_end without catching: the exception came out
    # of every operation's span (on_start: before the operation ran; on_end: after a write
    # had been applied, so the caller saw a failure for a write that happened).
    from deepagents_redis.observe import _otel
    from opentelemetry.sdk.trace import TracerProvider

    _otel._warned.discard(where)  # warned once per process: make this test's the first
    provider = TracerProvider()
    provider.add_span_processor(_broken(where))  # type: ignore[arg-type]
    instrument(tracer_provider=provider)
    ran = []
    with caplog.at_level("WARNING", logger="deepagents_redis.observe"):
        with get_instrumentation().span("todos.write", path="/plan"):
            ran.append(1)
        # an error of the operation itself still comes out
        with pytest.raises(KeyError), get_instrumentation().span("todos.read"):
            raise KeyError("the operation's own error")
    assert ran == [1]
    assert "RuntimeError" in caplog.text
    assert "processor broke" not in caplog.text  # the type, never the message
