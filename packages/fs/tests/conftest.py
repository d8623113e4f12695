"""Shared fixtures for the fs tests: backends on the standalone server and on the cluster."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from deepagents.backends import StoreBackend
from deepagents_redis.fs import RedisBackend
from deepagents_redis.testing import Closer, RedisTarget
from deepagents_redis.testing.backends import reference_backend

SMALL = {"chunk_size": 4096, "spill_threshold": 64 * 1024}
"""Tiny chunk and spill sizes so small test files exercise chunking and spillover."""


@pytest.fixture
def make_backend(
    redis_target: RedisTarget, tmp_path: Path, closer: Closer
) -> Callable[..., RedisBackend]:
    """RedisBackends on the target (standalone or cluster), closed after the test.

    Each gets a namespace of its own; after an async test they are closed in its loop.
    """

    def make(**kwargs: Any) -> RedisBackend:
        opts: dict[str, Any] = {
            "settings": redis_target.settings,
            "namespace": f"ns-{uuid.uuid4().hex[:8]}",
            "blob_dir": str(tmp_path / "blobs"),
            **SMALL,
        }
        return closer(RedisBackend(**{**opts, **kwargs}))

    return make


@pytest.fixture
def store() -> StoreBackend:
    """A fresh reference backend."""
    return reference_backend()
