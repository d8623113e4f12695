"""Test helpers for deepagents-redis: a pytest plugin with private Redis servers.

The plugin (`deepagents_redis.testing.plugin`) is loaded automatically through the `pytest11`
entry point; its module docstring lists the fixtures and markers. The classes here are what the
fixtures hand out, usable on their own too.
"""

from ._cluster import LocalCluster
from ._proxy import FaultMode, FaultProxy
from ._sentinel import SentinelTopology
from ._servers import ServerHandle, SessionReport, in_ci, parse_version
from ._targets import RedisTarget, TargetMode, unique_key_prefix

__all__ = [
    "FaultMode",
    "FaultProxy",
    "LocalCluster",
    "RedisTarget",
    "SentinelTopology",
    "ServerHandle",
    "SessionReport",
    "TargetMode",
    "in_ci",
    "parse_version",
    "unique_key_prefix",
]
