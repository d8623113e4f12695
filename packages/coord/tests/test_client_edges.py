"""Edge cases of `TaskClient` found in review: each a failure a production caller would hit."""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.coord import ResultTimeoutError, TaskClient, TaskFailedError


@pytest.mark.parametrize("wait", [0, -1.0])
async def test_a_zero_timeout_wait_reports_a_task_that_already_ended(
    connector: Any, wait: float
) -> None:
    # `result(task_id, timeout=0)` is the non-blocking look ("is it done yet?"). A task this
    # client submitted was reported as still pending without being looked at, even after it
    # had ended.
    tasks = TaskClient(connector=connector, check_agents=False)
    task_id = tasks.submit("nobody-serves-this", {"n": 1})
    assert tasks.cancel(task_id) == "cancelled"
    with pytest.raises(TaskFailedError, match="cancelled"):
        tasks.result(task_id, timeout=wait)
    again = tasks.submit("nobody-serves-this", {"n": 2})
    tasks.cancel(again)
    assert (await tasks.ajoin(again, timeout=wait)).status == "cancelled"
    third = tasks.submit("nobody-serves-this", {"n": 3})
    tasks.cancel(third)
    assert tasks.join(third, timeout=wait).status == "cancelled"
    # and a task still waiting is reported as waiting, at once
    waiting = tasks.submit("nobody-serves-this", {"n": 4})
    with pytest.raises(ResultTimeoutError, match="still pending"):
        tasks.result(waiting, timeout=wait)
    with pytest.raises(ResultTimeoutError, match="still pending"):
        await tasks.aresult(waiting, timeout=wait)
    tasks.cancel(waiting)
