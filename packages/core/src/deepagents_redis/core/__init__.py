"""deepagents-redis core: settings, clients, keys, codec, Lua, errors, breaker, health.

Everything the phase packages share. Import public names from here, never from the
``_private`` modules.
"""

from deepagents_redis.core._breaker import BreakerState, CircuitBreaker
from deepagents_redis.core._clients import (
    AsyncClient,
    SyncClient,
    create_async_client,
    create_client,
)
from deepagents_redis.core._codec import DEFAULT_LC_ALLOWED, Codec
from deepagents_redis.core._component import (
    Closing,
    Connection,
    RedisComponent,
    resolve_connector,
    split_connection,
)
from deepagents_redis.core._connector import RedisConnector
from deepagents_redis.core._deadline import deadline, no_resend, remaining, was_not_sent
from deepagents_redis.core._driver import (
    Call,
    Chain,
    Command,
    Idempotent,
    Operation,
    Pipeline,
    Request,
    Script,
    ScriptErrorWords,
    Sleep,
    Snapshot,
)
from deepagents_redis.core._driver import adrive as adrive_operation
from deepagents_redis.core._driver import aexecute as aexecute_request
from deepagents_redis.core._driver import aexecute_gated as aexecute_request_gated
from deepagents_redis.core._driver import arun as arun_operation
from deepagents_redis.core._driver import drive as drive_operation
from deepagents_redis.core._driver import execute as execute_request
from deepagents_redis.core._driver import run as run_operation
from deepagents_redis.core._driver import script_error as map_script_error
from deepagents_redis.core._errors import (
    REDIS_EXCEPTIONS,
    TRANSPORT_EXCEPTIONS,
    BackpressureError,
    BreakerOpenError,
    CapabilityError,
    ConfigurationError,
    ConflictError,
    DeepAgentsRedisError,
    InvalidInputError,
    NotFoundError,
    OutcomeUnknownError,
    PayloadTooLargeError,
    RedisUnavailableError,
    SerializationError,
    redact_text,
    redis_errors,
    translate_redis_error,
)
from deepagents_redis.core._eviction import (
    PHASE_DATA,
    EvictionCheck,
    EvictionGuard,
    PhaseVerdict,
    phase_verdicts,
)
from deepagents_redis.core._health import HealthReport, acheck_health, check_health
from deepagents_redis.core._idempotent import (
    DEFAULT_OP_TTL_MS,
    MAX_OP_TTL_MS,
    IdempotentScript,
    arun_idempotent,
    jittered_backoff,
    new_op_id,
    run_idempotent,
)
from deepagents_redis.core._instrumentation import (
    Instrumentation,
    NoOpInstrumentation,
    RecordingInstrumentation,
    active_instrumentation,
    get_instrumentation,
    set_instrumentation,
    trace_carrier,
    traced,
)
from deepagents_redis.core._keys import MAX_KEY_COMPONENT_CHARS, KeySpace, ScopedKeys
from deepagents_redis.core._messages import fast_message, messages_as_verified, model_shape
from deepagents_redis.core._probes import HealthApp, readiness, serve_health
from deepagents_redis.core._scripts import LuaScript, deny_oom, load_lua, registered_scripts
from deepagents_redis.core._settings import ENV_PREFIX, PhaseSettings, RedisSettings, redact_url
from deepagents_redis.core._urls import parse_redis_url

__all__ = [
    "DEFAULT_LC_ALLOWED",
    "DEFAULT_OP_TTL_MS",
    "ENV_PREFIX",
    "MAX_KEY_COMPONENT_CHARS",
    "MAX_OP_TTL_MS",
    "PHASE_DATA",
    "REDIS_EXCEPTIONS",
    "TRANSPORT_EXCEPTIONS",
    "AsyncClient",
    "BackpressureError",
    "BreakerOpenError",
    "BreakerState",
    "Call",
    "CapabilityError",
    "Chain",
    "CircuitBreaker",
    "Closing",
    "Codec",
    "Command",
    "ConfigurationError",
    "ConflictError",
    "Connection",
    "DeepAgentsRedisError",
    "EvictionCheck",
    "EvictionGuard",
    "HealthApp",
    "HealthReport",
    "Idempotent",
    "IdempotentScript",
    "Instrumentation",
    "InvalidInputError",
    "KeySpace",
    "LuaScript",
    "NoOpInstrumentation",
    "NotFoundError",
    "Operation",
    "OutcomeUnknownError",
    "PayloadTooLargeError",
    "PhaseSettings",
    "PhaseVerdict",
    "Pipeline",
    "RecordingInstrumentation",
    "RedisComponent",
    "RedisConnector",
    "RedisSettings",
    "RedisUnavailableError",
    "Request",
    "ScopedKeys",
    "Script",
    "ScriptErrorWords",
    "SerializationError",
    "Sleep",
    "Snapshot",
    "SyncClient",
    "acheck_health",
    "active_instrumentation",
    "adrive_operation",
    "aexecute_request",
    "aexecute_request_gated",
    "arun_idempotent",
    "arun_operation",
    "check_health",
    "create_async_client",
    "create_client",
    "deadline",
    "deny_oom",
    "drive_operation",
    "execute_request",
    "fast_message",
    "get_instrumentation",
    "jittered_backoff",
    "load_lua",
    "map_script_error",
    "messages_as_verified",
    "model_shape",
    "new_op_id",
    "no_resend",
    "parse_redis_url",
    "phase_verdicts",
    "readiness",
    "redact_text",
    "redact_url",
    "redis_errors",
    "registered_scripts",
    "remaining",
    "resolve_connector",
    "run_idempotent",
    "run_operation",
    "serve_health",
    "set_instrumentation",
    "split_connection",
    "trace_carrier",
    "traced",
    "translate_redis_error",
    "was_not_sent",
]
