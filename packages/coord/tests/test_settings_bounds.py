"""CoordSettings bounds: a value Redis would refuse mid-script is refused at construction."""

from __future__ import annotations

import math
from typing import Any

import pytest
from deepagents_redis.coord import CoordSettings, TaskClient
from deepagents_redis.core import ConfigurationError

_TEN_YEARS = 10 * 365 * 86_400


@pytest.mark.parametrize(
    ("values", "field"),
    [
        # result_ttl_seconds * 1000 past what PEXPIRE takes: cancel.lua failed after its
        # writes (the task cancelled, never to expire, the caller told the cancel failed)
        ({"result_ttl_seconds": 10**16}, "result_ttl_seconds"),
        # a retention longer than the epoch made XTRIM MINID's cutoff negative: every worker
        # failed at start ('Invalid stream ID')
        ({"dlq_retention_seconds": 10**13}, "dlq_retention_seconds"),
        # an infinite first pause: OverflowError (int(inf)) building the retry's ack, after
        # the failed run's finish had been written
        (
            {"backoff_base_seconds": math.inf, "backoff_cap_seconds": math.inf},
            "backoff_base_seconds",
        ),
    ],
)
def test_values_redis_would_refuse_later_are_configuration_errors(
    values: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigurationError, match=field):
        CoordSettings(**values)  # type: ignore[arg-type]


def test_the_longest_result_ttl_works_end_to_end(connector: Any) -> None:
    tasks = TaskClient(
        connector=connector,
        check_agents=False,
        result_ttl_seconds=_TEN_YEARS,
        dlq_retention_seconds=_TEN_YEARS,
    )
    task_id = tasks.submit("ttl-agent", {"n": 1})
    assert tasks.cancel(task_id) == "cancelled"
    assert connector.client().pttl(tasks.keys.task(task_id).record) > 0
