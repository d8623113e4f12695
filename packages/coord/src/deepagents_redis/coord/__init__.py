"""deepagents-redis coord: remote subagents and durable events on Redis Streams.

Tasks go to workers on other processes or machines with at-least-once delivery and effects
once (idempotent submit, fenced results), heartbeated leases (a long run is never run twice
while its worker lives), retries with jittered backoff, dead letters, backpressure and
cancellation; events use the CloudEvents 1.0 envelope. Design: ADR 0003.
"""

from deepagents_redis.coord._async_subagents import RedisAsyncSubAgent, RedisAsyncSubAgentMiddleware
from deepagents_redis.coord._bus import EventBus, Received
from deepagents_redis.coord._client import TaskClient
from deepagents_redis.coord._common import TaskInfo
from deepagents_redis.coord._errors import (
    LeaseLostError,
    ResultTimeoutError,
    TaskFailedError,
    UnknownAgentError,
)
from deepagents_redis.coord._event import SCHEMA_VERSION, TYPE_PREFIX, Event
from deepagents_redis.coord._lifecycle import SubagentEventsMiddleware
from deepagents_redis.coord._settings import CoordOptions, CoordSettings
from deepagents_redis.coord._subagent import remote_subagent
from deepagents_redis.coord._worker import TaskContext, Worker
from deepagents_redis.core import BackpressureError

__all__ = [
    "SCHEMA_VERSION",
    "TYPE_PREFIX",
    "BackpressureError",
    "CoordOptions",
    "CoordSettings",
    "Event",
    "EventBus",
    "LeaseLostError",
    "Received",
    "RedisAsyncSubAgent",
    "RedisAsyncSubAgentMiddleware",
    "ResultTimeoutError",
    "SubagentEventsMiddleware",
    "TaskClient",
    "TaskContext",
    "TaskFailedError",
    "TaskInfo",
    "UnknownAgentError",
    "Worker",
    "remote_subagent",
]
