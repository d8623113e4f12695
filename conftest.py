"""Settings shared by every test run in this repository (root and per-package runs alike)."""

import logging
from collections.abc import Iterator

import pytest
from hypothesis import settings

# No wall-clock limits in tests: hypothesis' default 200 ms deadline per example turned into
# failures on a loaded 2-core CI machine (seen on test_codec's JSON round trip). Speed is
# measured in benchmarks/, side by side, never asserted here.
settings.register_profile("deepagents-redis", deadline=None)
settings.load_profile("deepagents-redis")


@pytest.fixture(autouse=True)
def _deepagents_redis_log_level() -> Iterator[None]:
    """Give every test the `deepagents_redis` logger's level as it found it.

    The CLI, run in-process by its tests, sets that logger's level (``-q``: ERROR) and left it
    so for every later test of the same worker: a test that then looked for a warning in
    ``caplog`` saw none, or did, depending on which tests xdist had run on its worker before
    (4 failures in a CI run; none when the same files ran alone).
    """
    logger = logging.getLogger("deepagents_redis")
    level = logger.level
    yield
    logger.setLevel(level)
