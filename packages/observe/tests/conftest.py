from __future__ import annotations

from collections.abc import Iterator

import pytest
from deepagents_redis.observe import Captured, capture


@pytest.fixture
def otel() -> Iterator[Captured]:
    with capture() as seen:
        yield seen
