"""`create_deep_agent` with Redis-backed phases, and closing what it opened.

The signature is deepagents' own (0.7.x, `deepagents/graph.py`) plus keyword-only Redis
options, so swapping `from deepagents import create_deep_agent` for
`from deepagents_redis.agent import create_deep_agent` changes nothing until a phase is
turned on. When one is, the agent gets ONE `RedisConnector` shared by every phase (one pool
per client flavour, one Cluster probe), and `close_redis(agent)` / `redis_agent(...)` close
it with everything the wiring built. The phases themselves are rows of
`deepagents_redis.agent._phases.PHASES`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from deepagents_redis.agent._build import AgentBuild
from deepagents_redis.agent._env import env_named
from deepagents_redis.agent._flags import AgentRedisSettings
from deepagents_redis.agent._phases import needs_redis, prepare_phases, wire_phases
from deepagents_redis.core import ConfigurationError, RedisConnector, RedisSettings

__all__ = [
    "RedisAgent",
    "aclose_redis",
    "close_redis",
    "create_deep_agent",
    "redis_agent",
    "resolve_flags",
]


log = logging.getLogger("deepagents_redis.agent")


class _Opened:
    """What one `create_deep_agent` call opened: its components and maybe its connector."""

    def __init__(self, components: list[Any], connector: RedisConnector | None) -> None:
        self.components = components
        self.connector = connector  # None when the caller passed redis_connector=

    # Every part is closed even when one fails: a close() that raised stopped the loop, so
    # the parts after it and the connector (its pools) stayed open with nothing left to
    # close them (the agent is forgotten first). The first failure is raised at the end.

    def close(self) -> None:
        failure: BaseException | None = None
        for part in [*reversed(self.components), *_present(self.connector)]:
            try:
                part.close()
            except Exception as exc:  # noqa: BLE001 - raised below, after the rest
                failure = failure or exc
        if failure is not None:
            raise failure

    async def aclose(self) -> None:
        failure: BaseException | None = None
        for part in [*reversed(self.components), *_present(self.connector)]:
            try:
                await part.aclose()
            except Exception as exc:  # noqa: BLE001 - raised below, after the rest
                failure = failure or exc
        if failure is not None:
            raise failure


def _present(connector: RedisConnector | None) -> list[RedisConnector]:
    return [] if connector is None else [connector]


# Keyed by the graph's builder (see `_key`): the compiled graph is deepagents', we do not
# add attributes to it; an entry goes away with the last graph built on that builder.
_OPENED: weakref.WeakKeyDictionary[Any, _Opened] = weakref.WeakKeyDictionary()


def _key(agent: Any) -> Any:
    """What `_OPENED` knows an agent by: its graph's builder, shared by every copy.

    `agent.with_config(...)` (and `copy()`) on a compiled graph make a new graph object that
    shares the builder: keyed by the graph object, `close_redis(copy)` found nothing and
    closed nothing, and `agent = create_deep_agent(...).with_config(...)` left the entry on
    an object already gone, so nothing could close that agent's connections. A wrapper
    (`agent.with_retry()`, `agent.bind(...)`) is unwrapped to its graph first.
    """
    from langchain_core.runnables.base import RunnableBindingBase

    while isinstance(agent, RunnableBindingBase):
        agent = agent.bound
    builder = getattr(agent, "builder", None)
    return agent if builder is None else builder


def resolve_flags(
    *,
    redis_flags: AgentRedisSettings | None = None,
    redis_cache: bool | None = None,
    redis_todos: bool | None = None,
    redis_fs: bool | None = None,
    redis_coord: bool | None = None,
    redis_checkpointer: bool | None = None,
    redis_observe: bool | None = None,
) -> AgentRedisSettings:
    """Resolve phase switches: explicit keyword arguments, then ``redis_flags``, then env.

    Args:
        redis_flags: A prepared settings object (env is not read again when given).
        redis_cache: Turn the cache phase on or off; None defers.
        redis_todos: Turn the todos phase on or off; None defers.
        redis_fs: Turn the fs phase on or off; None defers.
        redis_coord: Turn the coord phase on or off; None defers.
        redis_checkpointer: Turn the checkpoint phase on or off; None defers.
        redis_observe: Turn OpenTelemetry reporting on or off; None defers.

    Returns:
        The resolved flags.

    Raises:
        ConfigurationError: A switch is not a boolean (``"maybe"``); strings such as
            ``"false"`` and ``"1"`` are read as the environment variables are.
    """
    given = {
        "cache_enabled": redis_cache,
        "todos_enabled": redis_todos,
        "fs_enabled": redis_fs,
        "coord_enabled": redis_coord,
        "checkpoint_enabled": redis_checkpointer,
        "observe_enabled": redis_observe,
    }
    overrides = {name: value for name, value in given.items() if value is not None}
    try:
        if redis_flags is not None:
            # Validated like the environment path: model_copy(update=) stores values as
            # given, so redis_fs="false" (a string from a config file) turned the fs phase ON.
            return redis_flags.with_overrides(**overrides)
        return AgentRedisSettings(**overrides)
    except ConfigurationError as exc:
        raise ConfigurationError(_bad_switches(exc, overrides)) from exc


_KEYWORDS = {
    "cache_enabled": "redis_cache",
    "todos_enabled": "redis_todos",
    "fs_enabled": "redis_fs",
    "coord_enabled": "redis_coord",
    "checkpoint_enabled": "redis_checkpointer",
    "observe_enabled": "redis_observe",
}


def _bad_switches(exc: ConfigurationError, overrides: dict[str, Any]) -> str:
    """Say which switch was refused, by the name the user wrote it under.

    The settings' own message named the field (``fs_enabled``): a bad
    ``DEEPAGENTS_REDIS_FS_ENABLED`` in a deployment's environment was reported under a name
    that appears nowhere in it, and the keyword ``redis_fs=`` under another. The value is not
    repeated (the settings never echo input).
    """
    from pydantic import ValidationError

    cause = exc.__cause__
    fields = (
        [str(error["loc"][0]) for error in cause.errors() if error["loc"]]
        if isinstance(cause, ValidationError)
        else []
    )
    names = [
        f"{_KEYWORDS.get(field, field)}= (keyword argument)"
        if field in overrides
        else f"{AgentRedisSettings.model_config.get('env_prefix', '')}{field.upper()} "
        "(environment variable)"
        for field in dict.fromkeys(fields)
    ]
    if not names:
        return str(exc)
    return (
        f"invalid phase switch {', '.join(names)}: not a boolean "
        "(use 1, true or yes to enable; 0, false or no to disable)"
    )


def create_deep_agent(
    model: Any = None,
    tools: Sequence[Any] | None = None,
    *,
    system_prompt: Any = None,
    middleware: Sequence[Any] = (),
    subagents: Sequence[Any] | None = None,
    skills: list[str] | None = None,
    memory: list[str] | None = None,
    permissions: list[Any] | None = None,
    backend: Any = None,
    interrupt_on: dict[str, Any] | None = None,
    response_format: Any = None,
    state_schema: Any = None,
    context_schema: Any = None,
    checkpointer: Any = None,
    store: Any = None,
    debug: bool = False,
    name: str | None = None,
    cache: Any = None,
    redis_url: str | None = None,
    redis_settings: Any = None,
    redis_client: Any = None,
    redis_async_client: Any = None,
    redis_connector: RedisConnector | None = None,
    redis_flags: AgentRedisSettings | None = None,
    redis_cache: bool | None = None,
    redis_todos: bool | None = None,
    redis_fs: bool | None = None,
    redis_coord: bool | None = None,
    redis_checkpointer: bool | None = None,
    redis_observe: bool | None = None,
) -> Any:
    """Create a deep agent, with the Redis phases you turn on.

    Every argument up to ``cache`` is deepagents' ``create_deep_agent`` argument of the same
    name and is passed through unchanged (note deepagents' ``cache`` is the LangGraph *node*
    cache; it does not cache model calls). The rest are ours.

    Args:
        model: The chat model or ``"provider:model"`` string.
        tools: Extra tools.
        system_prompt: Extra system prompt.
        middleware: Extra middleware.
        subagents: Subagent specs.
        skills: Skill source paths.
        memory: Memory file paths.
        permissions: Filesystem permission rules.
        backend: The filesystem backend.
        interrupt_on: Human-in-the-loop interrupt configuration.
        response_format: Structured output format.
        state_schema: Custom state schema.
        context_schema: Runtime context schema.
        checkpointer: LangGraph checkpointer.
        store: LangGraph store.
        debug: LangGraph debug mode.
        name: Graph name.
        cache: LangGraph node cache.
        redis_url: Redis URL for every enabled phase (else ``DEEPAGENTS_REDIS_URL``).
        redis_settings: A `RedisSettings` for every phase.
        redis_client: A ready sync Redis client to share (you close it).
        redis_async_client: A ready async Redis client to share (you close it).
        redis_connector: A `RedisConnector` to share (you close it; excludes the four
            options above).
        redis_flags: Phase switches; read from ``DEEPAGENTS_REDIS_*_ENABLED`` when None.
        redis_cache: Turn the Redis LLM cache on/off (beats ``redis_flags`` and env). A
            model instance whose own ``cache`` is set (``False`` included) keeps it, with
            a warning; a ``cache`` (node cache) you pass is kept too.
        redis_todos: Turn durable todos on/off (beats ``redis_flags`` and env).
        redis_fs: Turn the Redis filesystem on/off (beats ``redis_flags`` and env); a
            ``backend`` you pass is kept.
        redis_coord: Turn subagent lifecycle events on/off (beats ``redis_flags`` and env);
            remote subagents themselves are `remote_subagent(...)` entries in `subagents`.
        redis_checkpointer: Keep the conversation in Redis (`RedisSaver` as
            ``checkpointer``, unless you passed one) on/off (beats ``redis_flags`` and env).
        redis_observe: Report every phase to OpenTelemetry (`instrument()` with the global
            providers; the SDK and exporters are yours) on/off (beats ``redis_flags`` and env).

    Returns:
        The compiled deep agent graph, as deepagents returns it. With a phase on, it holds
        Redis connections: close them with `close_redis(agent)` (or build it with
        `redis_agent(...)` in a `with` block).

    Raises:
        ConfigurationError: A phase is on but cannot be wired (missing package or URL),
            `redis_connector` together with another connection option, a switch that is
            not a boolean (the message names the keyword or environment variable), or a
            ``DEEPAGENTS_REDIS_*`` setting of an enabled phase or of the connection with an
            invalid value (the message names the variable; nothing is built). A build that
            fails closes what it opened and takes back the ``instrument()`` it did.
    """
    from deepagents import create_deep_agent as _upstream

    flags = resolve_flags(
        redis_flags=redis_flags,
        redis_cache=redis_cache,
        redis_todos=redis_todos,
        redis_fs=redis_fs,
        redis_coord=redis_coord,
        redis_checkpointer=redis_checkpointer,
        redis_observe=redis_observe,
    )
    # Every enabled phase's package and settings first: a bad DEEPAGENTS_REDIS_<PHASE>_*
    # value is refused under its variable's name with nothing built yet.
    phase_settings = prepare_phases(flags, {"backend": backend, "checkpointer": checkpointer})
    build = AgentBuild(
        kwargs={
            "model": model,
            "tools": tools,
            "system_prompt": system_prompt,
            "middleware": list(middleware),
            "subagents": subagents,
            "skills": skills,
            "memory": memory,
            "permissions": permissions,
            "backend": backend,
            "interrupt_on": interrupt_on,
            "response_format": response_format,
            "state_schema": state_schema,
            "context_schema": context_schema,
            "checkpointer": checkpointer,
            "store": store,
            "debug": debug,
            "name": name,
            "cache": cache,
        },
        flags=flags,
        settings=phase_settings,
    )
    owned: RedisConnector | None = None
    # Only phases that talk to Redis get a connection: observe alone needs no URL (it
    # demanded one, and a connector nobody used was built and held until close_redis).
    if needs_redis(flags):
        build.connector, owned = _connector(
            redis_connector, redis_url, redis_settings, redis_client, redis_async_client
        )
    opened = _Opened(build.components, owned)
    try:
        wire_phases(build)
        agent = _upstream(**build.kwargs)
    except BaseException:
        for undo in reversed(build.undo):
            try:
                undo()
            except Exception:  # the build's own error is the one to see; this one is logged
                log.warning("undoing a failed create_deep_agent's wiring failed", exc_info=True)
        try:
            opened.close()
        except Exception:  # the build's own error is the one to see; this one is logged
            log.warning("closing what a failed create_deep_agent opened failed", exc_info=True)
        raise
    if build.connector is not None:
        _OPENED[_key(agent)] = opened
    return agent


def _connector(
    connector: RedisConnector | None,
    url: str | None,
    settings: Any,
    client: Any,
    async_client: Any,
) -> tuple[RedisConnector, RedisConnector | None]:
    """The agent's one connector, and the same again if the agent owns it (else None)."""
    given = [
        f"redis_{name}="
        for name, value in (
            ("url", url),
            ("settings", settings),
            ("client", client),
            ("async_client", async_client),
        )
        if value is not None
    ]
    if connector is not None:
        if given:
            raise ConfigurationError(
                f"create_deep_agent got redis_connector= and {', '.join(given)}: the "
                "connector carries the connection; pass one or the other"
            )
        return connector, None
    try:
        built = RedisConnector(url=url, settings=settings, client=client, async_client=async_client)
    except ConfigurationError as exc:
        # Without redis_settings=, the connection settings are read from DEEPAGENTS_REDIS_*
        # (the URL from the keyword when given): name the variable that holds a bad value.
        if settings is not None:
            raise
        raise env_named(exc, RedisSettings, given={"url"} if url is not None else ()) from exc
    return built, built


def close_redis(agent: Any) -> None:
    """Close what `create_deep_agent` opened for `agent` (its components, its connector).

    A connector or clients you passed stay open. Calling it twice, or for an agent with no
    phase on, does nothing. A copy of the agent (`agent.with_config(...)`) or a wrapper
    (`agent.with_retry()`) closes the same resources: they are the agent's, and closing
    through one closes them for all.

    Args:
        agent: A graph returned by `deepagents_redis.agent.create_deep_agent`, or a copy.
    """
    opened = _OPENED.pop(_key(agent), None)
    if opened is not None:
        opened.close()


async def aclose_redis(agent: Any) -> None:
    """Async twin of `close_redis` (also closes the asyncio clients it created).

    Args:
        agent: A graph returned by `deepagents_redis.agent.create_deep_agent`, or a copy.
    """
    opened = _OPENED.pop(_key(agent), None)
    if opened is not None:
        await opened.aclose()


class RedisAgent:
    """`with redis_agent(...) as agent:` / `async with ...`: the agent, closed on exit."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        """The compiled graph."""

    def __enter__(self) -> Any:
        return self.agent

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        close_redis(self.agent)

    async def __aenter__(self) -> Any:
        return self.agent

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await aclose_redis(self.agent)


def redis_agent(*args: Any, **kwargs: Any) -> RedisAgent:
    """`create_deep_agent(...)` for a `with` block: the agent's Redis is closed on exit.

    Args:
        *args: As `create_deep_agent`.
        **kwargs: As `create_deep_agent`.

    Returns:
        A context manager (sync and async) that yields the agent.

    Example:
        >>> with redis_agent(model, redis_url=url, redis_todos=True) as agent:  # doctest: +SKIP
        ...     agent.invoke({"messages": [("user", "plan it")]})
    """
    return RedisAgent(create_deep_agent(*args, **kwargs))
