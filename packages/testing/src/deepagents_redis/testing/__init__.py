"""Test helpers for deepagents-redis: a pytest plugin with private Redis servers, and a test kit.

The plugin (`deepagents_redis.testing.plugin`) is loaded automatically through the `pytest11`
entry point; its module docstring lists the fixtures and markers. The classes and types here
are what the fixtures hand out (annotate a test's parameters with them), usable on their own
too.

Two modules of the kit need more than the plugin and are imported only on request:
`deepagents_redis.testing.chat` (extra `chat`: `ScriptedChatModel`, `tool_call`) and
`deepagents_redis.testing.backends` (extra `backends`: `check_backend_against` and friends, a
differential test for any deepagents `BackendProtocol`).
"""

from ._closing import Closer
from ._cluster import LocalCluster
from ._proxy import FaultMode, FaultProxy
from ._sentinel import SentinelTopology
from ._servers import ServerHandle, SessionReport, in_ci, parse_version
from ._targets import RedisTarget, TargetMode, unique_key_prefix
from ._types import ClusterHandle, ProxyFactory, SentinelFactory, ServerFactory

__all__ = [
    "Closer",
    "ClusterHandle",
    "FaultMode",
    "FaultProxy",
    "LocalCluster",
    "ProxyFactory",
    "RedisTarget",
    "SentinelFactory",
    "SentinelTopology",
    "ServerFactory",
    "ServerHandle",
    "SessionReport",
    "TargetMode",
    "in_ci",
    "parse_version",
    "unique_key_prefix",
]
