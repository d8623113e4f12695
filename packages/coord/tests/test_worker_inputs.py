"""`Worker` given bad arguments: a clear typed error at construction, before any I/O."""

from __future__ import annotations

import math
from typing import Any

import pytest
from deepagents_redis.coord import Worker
from deepagents_redis.core import InvalidInputError


def _echo(x: Any) -> Any:
    return x


@pytest.mark.parametrize("grace", [math.nan, -1.0, True, "10"])
def test_a_stop_grace_that_is_not_seconds_is_invalid_input(connector: Any, grace: Any) -> None:
    # stop_grace_seconds was taken as given: NaN went to asyncio.wait(timeout=nan) at stop
    # (and max(nan, 1.0) is nan: the stop's waits were undefined), a negative grace cancelled
    # every run at once, True read as one second, a string failed only at stop.
    with pytest.raises(InvalidInputError, match="stop_grace_seconds"):
        Worker(connector=connector, agents={"echo": _echo}, stop_grace_seconds=grace)


@pytest.mark.parametrize("concurrency", [True, 2.0])
def test_a_concurrency_that_is_not_an_int_is_invalid_input(
    connector: Any, concurrency: Any
) -> None:
    # concurrency=True passed the isinstance(int) check and ran one task at a time.
    with pytest.raises(InvalidInputError, match="concurrency"):
        Worker(connector=connector, agents={"echo": _echo}, concurrency=concurrency)


def test_good_values_are_taken(connector: Any) -> None:
    worker = Worker(
        connector=connector, agents={"echo": _echo}, stop_grace_seconds=0, concurrency=2
    )
    assert (worker.stop_grace_seconds, worker.concurrency) == (0, 2)
