"""`RedisAsyncSubAgentMiddleware` edges found in review."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from deepagents_redis.coord import RedisAsyncSubAgentMiddleware, TaskClient

pytestmark = pytest.mark.integration


def _content(message: Any) -> str:
    return str(message["content"] if isinstance(message, dict) else message.content)


@pytest.mark.parametrize("path", ["sync", "async"])
async def test_a_follow_up_to_a_failed_task_carries_its_task(
    tasks: TaskClient, worker_factory: Any, path: str
) -> None:
    # The model's natural retry after a failure notification: `update_async_task` with a
    # correction. The new run got the correction alone, without the task it corrects
    # (a failed run leaves no result conversation); upstream's next run on the thread
    # still sees the task.
    state = {"fail": True}

    def researcher(x: dict[str, Any]) -> dict[str, Any]:
        if state["fail"]:
            raise RuntimeError("source unreachable")
        return {"seen": [_content(m) for m in x["messages"]]}

    mw = RedisAsyncSubAgentMiddleware(
        subagents=[{"name": "researcher", "description": "Researches."}], client=tasks
    )
    runtime = SimpleNamespace(state={"messages": []}, tool_call_id="call-1")
    run = mw._run if path == "sync" else None
    with worker_factory({"researcher": researcher}, max_attempts=1):
        first = [{"role": "user", "content": "find X"}]
        if run is not None:
            launched = run(mw._start("researcher", first, runtime))
        else:
            launched = await mw._arun(mw._start("researcher", first, runtime))
        [task_id] = launched.update["async_tasks"]
        assert tasks.join(task_id, timeout=20).status == "error"
        runtime.state["async_tasks"] = launched.update["async_tasks"]
        state["fail"] = False
        flow = mw._update(task_id, "use source Y", runtime)
        updated = run(flow) if run is not None else await mw._arun(flow)
        new_run = updated.update["async_tasks"][task_id]["run_id"]
        assert tasks.result(new_run, timeout=20) == {"seen": ["find X", "use source Y"]}


def _upstream_check(status: str, error: str | None, values: Any, thread_id: str) -> Any:
    """deepagents' check result for a LangGraph run ending as our task did."""
    from deepagents.middleware.async_subagents import _build_check_result

    run = {"run_id": "r", "status": status, "error": error}
    thread = {"status": "idle", "values": values} if status == "success" else None
    return _build_check_result(run, thread_id, thread)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "error", "result"),
    [
        ("pending", None, None),
        ("running", None, None),
        ("success", None, {"messages": [{"role": "assistant", "content": "42"}]}),
        ("success", None, {"messages": []}),
        ("error", "RuntimeError: boom", None),
        ("error", None, None),
        ("timeout", "run timed out after 5s", None),
        ("cancelled", None, None),
    ],
)
def test_check_output_is_deepagents_own(status: str, error: str | None, result: Any) -> None:
    # `check_async_task` is what the model reads: the same dict upstream builds for a run
    # that ended the same way, byte for byte (the pending note; no error key on a timeout).
    from deepagents_redis.coord._async_subagents import _check_result
    from deepagents_redis.coord._common import TaskInfo

    task_id = "0" * 32
    task: Any = {"task_id": task_id, "thread_id": task_id, "run_id": task_id}
    info = TaskInfo(
        task_id=task_id,
        agent="a",
        status=status,
        attempts=1,
        max_attempts=1,
        error=error,
        result=result,
    )
    assert _check_result(task, info) == _upstream_check(status, error, result, task_id)
