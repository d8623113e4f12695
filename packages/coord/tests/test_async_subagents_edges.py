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
