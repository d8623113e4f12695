from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from deepagents_redis.todos import RedisTodoRepository, TodosSettings


@pytest.fixture
def todos_settings() -> TodosSettings:
    return TodosSettings(max_items=50, log_maxlen=10_000)


@pytest.fixture
def repo(redis_target: Any, todos_settings: TodosSettings) -> Iterator[RedisTodoRepository]:
    """A sync repository on the target's sync client (standalone and cluster)."""
    repository = RedisTodoRepository(
        client=redis_target.client,
        settings=redis_target.settings,
        todos_settings=todos_settings,
    )
    yield repository
    repository.close()


@pytest_asyncio.fixture
async def arepo(
    redis_target: Any, todos_settings: TodosSettings
) -> AsyncIterator[RedisTodoRepository]:
    """A repository on the target's async client, created in the test's loop."""
    repository = RedisTodoRepository(
        async_client=redis_target.async_client,
        settings=redis_target.settings,
        todos_settings=todos_settings,
    )
    yield repository
    await repository.aclose()
