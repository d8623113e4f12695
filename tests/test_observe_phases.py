"""Every phase's operations become spans and metric points (SDK in-memory exporters)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from deepagents_redis.core import InvalidInputError, RedisConnector
from deepagents_redis.observe import instrument, is_instrumented, uninstrument

pytestmark = pytest.mark.integration


@pytest.fixture
def connector(redis_settings: Any) -> Any:
    conn = RedisConnector(settings=redis_settings)
    yield conn
    conn.close()


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_checkpoint_operations_are_spans_with_db_conventions(otel: Any, connector: Any) -> None:
    from deepagents_redis.checkpoint import RedisSaver
    from langgraph.checkpoint.base import empty_checkpoint

    saver = RedisSaver(connector=connector)
    thread = f"secret-thread-{uuid.uuid4().hex[:6]}"
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    stored = saver.put(config, empty_checkpoint(), {"source": "input", "step": -1}, {})
    assert saver.get_tuple(stored) is not None
    put = otel.finished("checkpoint.put")[0]
    attrs = _attrs(put)
    host, port = connector.settings.url.split("//")[1].split("/")[0].split(":")
    assert attrs["db.system.name"] == "redis"
    assert attrs["server.address"] == host
    assert attrs["server.port"] == int(port)
    assert attrs["db.namespace"] == "0"
    assert attrs["deepagents_redis.phase"] == "checkpoint"
    assert attrs["deepagents_redis.operation"] == "put"
    assert put.kind.name == "CLIENT"
    assert otel.finished("checkpoint.get")
    durations = otel.points("deepagents_redis.operation.duration")
    ops = {
        (a["deepagents_redis.operation"], a.get("deepagents_redis.outcome")) for a, _ in durations
    }
    assert {("put", "ok"), ("get", "ok")} <= ops
    assert all(p.sum > 0 for _, p in durations)
    counts = otel.points("deepagents_redis.checkpoint.put")
    assert counts[0][1].value == 1
    assert counts[0][0]["deepagents_redis.outcome"] == "ok"
    saver.delete_thread(thread)


def test_an_error_sets_status_and_type_never_the_message(otel: Any, connector: Any) -> None:
    from deepagents_redis.checkpoint import RedisSaver
    from langgraph.checkpoint.base import empty_checkpoint

    saver = RedisSaver(connector=connector)
    checkpoint = empty_checkpoint()
    checkpoint["id"] = "bad:id/with-a-SECRET"
    with pytest.raises(InvalidInputError):
        saver.put({"configurable": {"thread_id": "t"}}, checkpoint, {}, {})
    (span,) = otel.finished("checkpoint.put")
    assert span.status.status_code.name == "ERROR"
    assert span.status.description == "InvalidInputError"
    assert _attrs(span)["error.type"] == "InvalidInputError"
    assert not span.events  # no exception event, whose message could carry user data
    assert "SECRET" not in repr(_attrs(span))
    counts = otel.points("deepagents_redis.checkpoint.put")
    assert {a["deepagents_redis.outcome"] for a, _ in counts} == {"error"}


def test_fs_spans_carry_no_path_or_content(otel: Any, connector: Any) -> None:
    from deepagents_redis.fs import RedisBackend

    namespace = f"obs-{uuid.uuid4().hex[:8]}"
    backend = RedisBackend(connector=connector, namespace=namespace)
    backend.write("/private/prompt.md", "TOP SECRET PROMPT")
    assert "TOP SECRET" in backend.read("/private/prompt.md").file_data["content"]
    spans = otel.finished("fs.")
    assert {s.name for s in spans} >= {"fs.write", "fs.read"}
    for span in spans:
        text = repr(_attrs(span))
        assert "TOP SECRET" not in text
        assert "prompt.md" not in text
        assert namespace not in text
    backend.delete("/private/prompt.md")


def test_todos_and_cache_report_their_operations(otel: Any, connector: Any) -> None:
    from deepagents_redis.cache import RedisLLMCache
    from deepagents_redis.todos import RedisTodoRepository
    from langchain_core.outputs import Generation

    repo = RedisTodoRepository(connector=connector)
    scope = f"obs-{uuid.uuid4().hex[:8]}"
    repo.add(scope, "write the report")
    assert any(s.name.startswith("todos.") for s in otel.spans.get_finished_spans())

    cache = RedisLLMCache(connector=connector, namespace=f"obs-{uuid.uuid4().hex[:8]}")
    assert cache.lookup("prompt", "llm") is None
    cache.update("prompt", "llm", [Generation(text="answer")])
    assert cache.lookup("prompt", "llm") is not None
    outcomes = {
        a["deepagents_redis.outcome"]: p.value
        for a, p in otel.points("deepagents_redis.cache.lookup")
    }
    assert outcomes["miss"] == 1
    assert outcomes["hit"] == 1
    assert otel.finished("cache.")  # one span per cache request, fail-open or not
    cache.clear()


def test_instrument_twice_is_harmless_and_uninstrument_stops_everything(
    otel: Any, connector: Any
) -> None:
    from deepagents_redis.checkpoint import RedisSaver

    again = instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    assert is_instrumented()
    assert again is instrument(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    saver = RedisSaver(connector=connector)
    saver.get_tuple({"configurable": {"thread_id": "nothing-here"}})
    seen = len(otel.spans.get_finished_spans())
    assert seen == 1
    before = otel.points("deepagents_redis.checkpoint.get")[0][1].value
    uninstrument()
    assert not is_instrumented()
    saver.get_tuple({"configurable": {"thread_id": "nothing-here"}})
    assert len(otel.spans.get_finished_spans()) == seen
    assert otel.points("deepagents_redis.checkpoint.get")[0][1].value == before
    uninstrument()  # twice: nothing to do


@pytest.mark.timeout(400)
def test_a_remote_task_runs_in_the_submitters_trace_across_processes(
    otel: Any, redis_url: str, key_prefix: str, tmp_path: Any
) -> None:
    """The worker process's coord.run span is a child of the parent agent's span."""
    import json
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from deepagents_redis.coord import TaskClient
    from deepagents_redis.core import RedisSettings

    spans_file = tmp_path / "worker-spans.jsonl"
    script = Path(__file__).with_name("_otel_worker.py")
    worker = subprocess.Popen(
        [sys.executable, str(script), redis_url, key_prefix, str(spans_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = TaskClient(settings=RedisSettings(url=redis_url, key_prefix=key_prefix))
        # A bound, not a speed check: a worker process importing the stack on a loaded
        # 2-core machine (CI beside other work) took longer than 30 s once.
        end = time.monotonic() + 120
        while "echo" not in client.agents():  # the worker announced its agent
            assert worker.poll() is None, worker.communicate()[1][-2000:]
            assert time.monotonic() < end, "the worker did not start"
            time.sleep(0.05)
        tracer = otel.tracer_provider.get_tracer("agent")
        with tracer.start_as_current_span("start_async_task") as parent:
            task_id = client.submit("echo", {"q": 1})
        assert client.result(task_id, timeout=30) == {"echo": {"q": 1}}
        trace_id = format(parent.get_span_context().trace_id, "032x")
        end = time.monotonic() + 30
        rows: list[dict[str, Any]] = []
        while not any(r["name"] == "coord.run" for r in rows):
            assert time.monotonic() < end, "the worker exported no coord.run span"
            time.sleep(0.05)
            if spans_file.exists():
                rows = [json.loads(line) for line in spans_file.read_text().splitlines()]
        run = next(r for r in rows if r["name"] == "coord.run")
        assert run["trace_id"] == trace_id
        # the submit is a span of the parent's trace on this side too
        assert any(
            s.context.trace_id == parent.get_span_context().trace_id
            for s in otel.finished("coord.")
        )
        client.close()
    finally:
        worker.send_signal(signal.SIGTERM)
        _out, err = worker.communicate(timeout=30)
        assert worker.returncode == 0, err[-2000:]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_cache_spans_name_the_server_like_every_operation(
    otel: Any, connector: Any, mode: str
) -> None:
    # The cache's spans (one per request, opened by its fail-open guard) carried only
    # db.system.name: a lookup that failed open could not be tied to a server.
    from deepagents_redis.cache import RedisLLMCache, RedisNodeCache
    from langchain_core.outputs import Generation

    llm = RedisLLMCache(connector=connector, namespace=f"obs-{uuid.uuid4().hex[:8]}")
    node: Any = RedisNodeCache(connector=connector)
    if mode == "sync":
        llm.update("prompt", "llm", [Generation(text="answer")])
        assert llm.lookup("prompt", "llm") is not None
        node.set({(("ns",), "k"): ("v", 60)})
        assert node.get([(("ns",), "k")])
    else:
        await llm.aupdate("prompt", "llm", [Generation(text="answer")])
        assert await llm.alookup("prompt", "llm") is not None
        await node.aset({(("ns",), "k"): ("v", 60)})
        assert await node.aget([(("ns",), "k")])
    spans = otel.finished("cache.") + otel.finished("node_cache.")
    assert {s.name for s in spans} >= {"cache.update", "cache.lookup", "node_cache.set"}
    host, port = connector.settings.url.split("//")[1].split("/")[0].split(":")
    for span in spans:
        attrs = _attrs(span)
        assert attrs["db.system.name"] == "redis"
        assert attrs["server.address"] == host
        assert attrs["server.port"] == int(port)
        assert attrs["db.namespace"] == connector.telemetry["db.namespace"]
