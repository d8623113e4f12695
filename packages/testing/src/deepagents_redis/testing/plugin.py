"""pytest plugin for deepagents-redis (placeholder: markers only; fixtures land shortly)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers used across the deepagents-redis test suites."""
    config.addinivalue_line("markers", "integration: needs a real Redis server")
    config.addinivalue_line("markers", "cluster: needs the local 3-primary Redis Cluster")
    config.addinivalue_line("markers", "fault: fault injection (proxy, killed servers)")
    config.addinivalue_line("markers", "benchmark: benchmark-style test")
    config.addinivalue_line("markers", "redis_version(min): skip below this Redis version")
