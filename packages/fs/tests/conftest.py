"""Shared fixtures for the fs tests: backends on the standalone server and on the cluster."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from deepagents.backends import StoreBackend
from deepagents_redis.fs import RedisBackend

sys.path.insert(0, str(Path(__file__).parent))  # for _fs_helpers / worker scripts

# Not `from conftest import ...` in tests: the repository's root conftest.py shadows that name.
from _fs_helpers import store_backend

SMALL = {"chunk_size": 4096, "spill_threshold": 64 * 1024}
"""Tiny chunk and spill sizes so small test files exercise chunking and spillover."""


@pytest.fixture
def make_backend(redis_target: Any, tmp_path: Path) -> Iterator[Callable[..., RedisBackend]]:
    """Build RedisBackends on the target (standalone or cluster); closed after the test."""
    made: list[RedisBackend] = []

    def make(**kwargs: Any) -> RedisBackend:
        opts: dict[str, Any] = {
            "settings": redis_target.settings,
            "namespace": f"ns-{uuid.uuid4().hex[:8]}",
            "blob_dir": str(tmp_path / "blobs"),
            **SMALL,
        }
        opts.update(kwargs)
        backend = RedisBackend(**opts)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest_asyncio.fixture
async def amake_backend(
    redis_target: Any, tmp_path: Path
) -> AsyncIterator[Callable[..., RedisBackend]]:
    """Like `make_backend`, for async tests (closes the async clients in the test loop)."""
    made: list[RedisBackend] = []

    def make(**kwargs: Any) -> RedisBackend:
        opts: dict[str, Any] = {
            "settings": redis_target.settings,
            "namespace": f"ns-{uuid.uuid4().hex[:8]}",
            "blob_dir": str(tmp_path / "blobs"),
            **SMALL,
        }
        opts.update(kwargs)
        backend = RedisBackend(**opts)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


@pytest.fixture
def store() -> StoreBackend:
    """A fresh reference backend."""
    return store_backend()
