"""`create_deep_agent(..., redis_observe=True)`: OpenTelemetry for the agent's phases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from deepagents_redis.agent import close_redis, create_deep_agent
from deepagents_redis.agent._wiring import _OPENED, _key
from deepagents_redis.testing.chat import ScriptedChatModel
from langchain_core.messages import AIMessage, HumanMessage

pytest.importorskip("deepagents_redis.observe")

from deepagents_redis.observe import is_instrumented, uninstrument


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for phase in ("CACHE", "TODOS", "FS", "COORD", "CHECKPOINT", "OBSERVE"):
        monkeypatch.delenv(f"DEEPAGENTS_REDIS_{phase}_ENABLED", raising=False)
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    uninstrument()
    yield
    uninstrument()


def _model() -> ScriptedChatModel:
    return ScriptedChatModel(script=[AIMessage("done")])


def test_observe_alone_needs_no_redis_and_opens_nothing() -> None:
    # Observe reports to OpenTelemetry; it sends nothing to Redis. With only it on, the
    # wiring demanded a Redis URL (ConfigurationError "RedisConnector needs a client...")
    # and, given one, built a connector no phase used.
    agent = create_deep_agent(_model(), redis_observe=True)
    assert is_instrumented()
    assert _key(agent) not in _OPENED
    result = agent.invoke({"messages": [HumanMessage("hi")]})
    assert result["messages"][-1].content == "done"
    close_redis(agent)  # nothing to close, and no error


def test_observe_alone_with_a_url_builds_no_connector() -> None:
    agent = create_deep_agent(
        _model(), redis_url="redis://example.invalid:6379/0", redis_observe=True
    )
    assert is_instrumented()
    assert _key(agent) not in _OPENED


def test_observe_keeps_the_applications_own_instrumentation() -> None:
    # An application that called instrument(tracer_provider=..., meter_provider=...) (its
    # exporters) and then built an agent with redis_observe=True had its instrumentation
    # replaced by one on the global providers: its exporters saw nothing after that.
    from deepagents_redis.core import get_instrumentation
    from deepagents_redis.observe import instrument
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    mine = instrument(tracer_provider=provider)
    try:
        create_deep_agent(_model(), redis_observe=True)
        assert get_instrumentation() is mine
        with get_instrumentation().span("test.probe"):
            pass
        assert [s.name for s in spans.get_finished_spans()] == ["test.probe"]
    finally:
        provider.shutdown()
