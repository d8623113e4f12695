"""The phase table: how each phase is put into a deep agent, in one place.

Adding a phase means one row in `PHASES` (name, distribution, extra, flag, wire) and its
flag in `AgentRedisSettings`; `create_deep_agent` does the rest (the import check with the
extra to install, the shared connector, closing). Phase packages know nothing of the
umbrella: the wiring is deepagents glue, so it lives here.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from deepagents_redis.agent._build import AgentBuild
from deepagents_redis.agent._env import settings_from_env
from deepagents_redis.agent._flags import AgentRedisSettings
from deepagents_redis.core import ConfigurationError

__all__ = [
    "PHASES",
    "Phase",
    "instrument_unless_instrumented",
    "needs_redis",
    "prepare_phases",
    "wire_phases",
]


log = logging.getLogger("deepagents_redis.agent")


@dataclass(frozen=True, slots=True)
class Phase:
    """One phase the agent wiring can turn on.

    Attributes:
        name: The phase name (`cache`, `todos`, `fs`).
        module: What must be importable (the phase package).
        distribution: Its PyPI distribution, for the error message.
        extra: The umbrella extra that installs it.
        enabled: Whether the flags turn it on.
        wire: Edits the build; returns one note per change.
        uses_redis: Whether it talks to Redis (needs the agent's connector). Observe
            only reports to OpenTelemetry: with it alone on, the agent needs no URL.
        settings: The phase's settings class, ``"module:Class"`` (read from its
            ``DEEPAGENTS_REDIS_<PHASE>_*`` variables before anything is built), or None.
        kept_by: The `create_deep_agent` keyword whose value the phase keeps instead of
            building its own (``backend``, ``checkpointer``): given, its settings are unused
            and not read.
    """

    name: str
    module: str
    distribution: str
    extra: str
    enabled: Callable[[AgentRedisSettings], bool]
    wire: Callable[[AgentBuild], list[str]]
    uses_redis: bool = True
    settings: str | None = None
    kept_by: str | None = None


# -- cache ----------------------------------------------------------------------------------


def _model_from_name(name: str, cache: Any) -> tuple[Any, str | None]:
    """Build `name` as deepagents' `resolve_model` does, with `cache` on it.

    Returns:
        The model and None; or None and why the model is not to be used: deepagents would
        give it another harness profile than it gives the name (see `_profile_change`).
    """
    # Same construction as deepagents' resolve_model (init_chat_model with the registered
    # provider profile's kwargs), plus the cache (caller kwargs win over the profile's).
    from langchain.chat_models import init_chat_model

    try:
        from deepagents.profiles.provider.provider_profiles import apply_provider_profile
    except ImportError:  # pragma: no cover - older/newer deepagents layout
        return init_chat_model(name, cache=cache), None
    model = init_chat_model(name, **apply_provider_profile(name, {"cache": cache}))
    why = _profile_change(name, model)
    return (None, why) if why is not None else (model, None)


def _profile_change(name: str, model: Any) -> str | None:
    """Why handing deepagents `model` (built from `name`) would change the agent, or None.

    deepagents picks a harness profile (prompt suffix, tool descriptions, extra middleware,
    the general-purpose subagent) for a string model by the name as written, and for a model
    object by the provider and identifier it reports. Caching needs the object, and the two
    lookups can differ: 'claude-sonnet-4-6' names no profile, while the ChatAnthropic built
    from it is 'anthropic:claude-sonnet-4-6', which has one, so turning the cache on changed
    the agent's system prompt.
    """
    try:
        from deepagents._models import get_model_identifier, get_model_provider
        from deepagents.profiles.harness.harness_profiles import _harness_profile_for_model
    except ImportError:  # pragma: no cover - older/newer deepagents layout
        return None
    if _same(_harness_profile_for_model(model, name), _harness_profile_for_model(model, None)):
        return None
    provider, identifier = get_model_provider(model), get_model_identifier(model)
    spelled = f"{provider}:{identifier}" if provider and identifier else None
    hint = f"name it {spelled!r} or pass" if spelled and spelled != name else "pass"
    return (
        f"deepagents picks its harness profile by the name {name!r} and would pick another "
        f"for the model object caching needs; {hint} a model instance to cache its calls"
    )


def _same(a: Any, b: Any) -> bool:
    """Whether two harness profiles (or two of their fields) are the same configuration.

    `==`, except that deepagents merges a provider's and a model's middleware into a new
    closure on every lookup: closures of the same code over the same values are the same.
    """
    if a is b:
        return True
    if isinstance(a, types.FunctionType) and isinstance(b, types.FunctionType):
        cells_a, cells_b = a.__closure__ or (), b.__closure__ or ()
        try:
            return (
                a.__code__ is b.__code__
                and len(cells_a) == len(cells_b)
                and all(
                    _same(x.cell_contents, y.cell_contents)
                    for x, y in zip(cells_a, cells_b, strict=True)
                )
            )
        except ValueError:  # an empty cell
            return False
    if dataclasses.is_dataclass(a) and not isinstance(a, type) and type(a) is type(b):
        return all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return bool(a == b)


def _cached_model(model: Any, cache: Any) -> tuple[Any, str | None]:
    """`model` with `cache` on it: a string built as deepagents builds it, an instance copied.

    Returns:
        The cached model and None, or None and why the model is left as given.
    """
    from deepagents_redis.cache import with_llm_cache

    if isinstance(model, str):
        return _model_from_name(model, cache)
    own = getattr(model, "cache", None)
    if own is not None:
        # The caller set this model's caching (`cache=False`: never cache it; a cache of
        # their own): kept, as a backend, checkpointer or graph cache they pass is kept.
        # Replacing it silently cached a model its owner had said must not be cached.
        setting = own if isinstance(own, bool) else type(own).__name__
        return None, f"it has its own cache setting (cache={setting}), which is kept"
    return with_llm_cache(model, cache), None


def wire_cache(build: AgentBuild, cache_settings: Any = None) -> list[str]:
    """Put a `RedisLLMCache` on the model (and subagents' own), maybe a node cache.

    A string model goes through `init_chat_model(..., cache=...)` with deepagents' provider
    profile; an instance is copied (`with_llm_cache`), never mutated. A model instance whose
    own ``cache`` is set (``False``, ``True`` or a cache) keeps it, with a warning. A
    declarative subagent spec with its own `model` is copied with that model cached the same
    way (one cache for every model of the agent); a subagent without one runs on the
    (cached) main model. A compiled subagent (`runnable`) is the caller's graph: its model is
    left alone, and a note says so. Options come from `DEEPAGENTS_REDIS_CACHE_*` unless
    `cache_settings` is given.

    Returns:
        One line per change.
    """
    from deepagents_redis.cache import CacheSettings, RedisLLMCache, RedisNodeCache

    cs = cache_settings or build.settings.get("cache") or CacheSettings()
    kwargs, notes = build.kwargs, []
    built: list[Any] = []

    def llm_cache() -> Any:
        # One cache for the main model and every subagent's, built when a model needs it.
        if not built:
            built.append(build.own(RedisLLMCache(connector=build.shared(), cache_settings=cs)))
        return built[0]

    model = kwargs.get("model")
    if model is None:
        notes.append(
            "cache: model=None (deepagents' deprecated default model) is left alone; "
            "pass a model to cache its calls"
        )
        # The phase is on and caches nothing: a degradation, so a warning (not only a note).
        log.warning("%s", notes[-1])
    else:
        cached, why = _cached_model(model, llm_cache())
        if why is None:
            kwargs["model"] = cached
            notes.append(
                f"cache: LLM cache on the model (namespace={cs.namespace!r}, "
                f"ttl={cs.ttl_seconds!r}, single_flight={cs.single_flight})"
            )
        else:
            # Left to deepagents as given: the agent it builds is the one it builds without
            # the cache, uncached, and the warning says so.
            notes.append(f"cache: model {model!r} left uncached: {why}")
            log.warning("%s", notes[-1])
    if kwargs.get("subagents"):
        # deepagents builds a declarative subagent on spec["model"] when it has one: without
        # this, every call of a subagent given its own model went uncached with the phase on.
        specs = []
        for spec in kwargs["subagents"]:
            if isinstance(spec, Mapping) and "graph_id" not in spec:
                name = spec.get("name")
                if "runnable" in spec:
                    notes.append(
                        f"cache: subagent {name!r} is a compiled graph; its model calls are "
                        "not cached by this phase (put with_llm_cache on its model)"
                    )
                elif spec.get("model") is not None:
                    cached, why = _cached_model(spec["model"], llm_cache())
                    if why is None:
                        spec = {**spec, "model": cached}
                        notes.append(f"cache: LLM cache on subagent {name!r}'s model")
                    else:
                        notes.append(
                            f"cache: subagent {name!r}'s model {spec['model']!r} left "
                            f"uncached: {why}"
                        )
                        log.warning("%s", notes[-1])
            specs.append(spec)
        kwargs["subagents"] = specs
    if cs.node_cache_enabled:
        if kwargs.get("cache") is None:
            kwargs["cache"] = build.own(RedisNodeCache(connector=build.shared(), cache_settings=cs))
            notes.append("cache: RedisNodeCache as the graph cache (nodes need a cache policy)")
        else:
            notes.append("cache: node cache enabled but a graph cache was passed; kept yours")
    return notes


# -- todos ----------------------------------------------------------------------------------


def wire_todos(build: AgentBuild, todos_settings: Any = None) -> list[str]:
    """Add `RedisTodoMiddleware` (it takes the `TodoListMiddleware` slot).

    A langchain `TodoListMiddleware` the caller passed is replaced (its prompt and tool
    description kept); a `RedisTodoMiddleware` the caller passed is kept. With
    `subagent_tools`, every dict subagent spec gets `read_todos`/`update_todo` (specs are
    copied, never mutated).

    Returns:
        One line per change.
    """
    from deepagents_redis.todos import RedisTodoMiddleware, TodosSettings
    from langchain.agents.middleware.todo import TodoListMiddleware

    settings = todos_settings or build.settings.get("todos") or TodosSettings()
    kwargs = build.kwargs
    middleware: list[Any] = list(kwargs.get("middleware") or [])
    notes: list[str] = []
    existing = next(
        (i for i, m in enumerate(middleware) if getattr(m, "name", None) == "TodoListMiddleware"),
        None,
    )
    if existing is not None and isinstance(middleware[existing], RedisTodoMiddleware):
        mw = middleware[existing]
        notes.append("todos: kept the caller's RedisTodoMiddleware")
    else:
        options: dict[str, Any] = {}
        if existing is not None and isinstance(middleware[existing], TodoListMiddleware):
            options = {
                "system_prompt": middleware[existing].system_prompt,
                "tool_description": middleware[existing].tool_description,
            }
        mw = build.own(
            RedisTodoMiddleware(connector=build.shared(), todos_settings=settings, **options)
        )
        if existing is None:
            middleware.append(mw)
            notes.append("todos: added RedisTodoMiddleware (plan kept in Redis)")
        else:
            middleware[existing] = mw
            notes.append("todos: replaced TodoListMiddleware with RedisTodoMiddleware")
    kwargs["middleware"] = middleware
    if settings.subagent_tools and kwargs.get("subagents"):
        specs = []
        for spec in kwargs["subagents"]:
            if isinstance(spec, Mapping) and "runnable" not in spec and "graph_id" not in spec:
                spec = {
                    **spec,
                    "middleware": [*spec.get("middleware", []), mw.subagent_middleware()],
                }
                notes.append(f"todos: gave subagent {spec.get('name')!r} read_todos/update_todo")
            specs.append(spec)
        kwargs["subagents"] = specs
    return notes


# -- fs -------------------------------------------------------------------------------------


def wire_fs(build: AgentBuild, fs_settings: Any = None) -> list[str]:
    """Set `backend=` to a `RedisBackend` unless the caller chose a backend (kept as is).

    Returns:
        One line per decision.
    """
    from deepagents_redis.fs import FsSettings, RedisBackend

    if build.kwargs.get("backend") is not None:
        kind = type(build.kwargs["backend"]).__name__
        return [f"fs: kept the caller's backend ({kind})"]
    settings = fs_settings or build.settings.get("fs") or FsSettings()
    build.kwargs["backend"] = build.own(
        RedisBackend.from_settings(settings, connector=build.shared())
    )
    return [f"fs: RedisBackend, namespace {settings.namespace!r}"]


# -- coord ----------------------------------------------------------------------------------


def wire_coord(build: AgentBuild, coord_settings: Any = None) -> list[str]:
    """Add `SubagentEventsMiddleware`: every `task` subagent run publishes lifecycle events.

    Returns:
        One line per change.
    """
    from deepagents_redis.coord import CoordSettings, SubagentEventsMiddleware

    settings = coord_settings or build.settings.get("coord") or CoordSettings()
    middleware: list[Any] = list(build.kwargs.get("middleware") or [])
    if any(isinstance(m, SubagentEventsMiddleware) for m in middleware):
        return ["coord: kept the caller's SubagentEventsMiddleware"]
    mw = build.own(SubagentEventsMiddleware(connector=build.shared(), coord_settings=settings))
    build.kwargs["middleware"] = [*middleware, mw]
    return [f"coord: subagent lifecycle events to namespace {settings.namespace!r}"]


# -- checkpoint -----------------------------------------------------------------------------


def wire_checkpoint(build: AgentBuild, checkpoint_settings: Any = None) -> list[str]:
    """Set `checkpointer=` to a `RedisSaver` unless the caller chose one (kept as is).

    Returns:
        One line per decision.
    """
    from deepagents_redis.checkpoint import CheckpointSettings, RedisSaver

    if build.kwargs.get("checkpointer") is not None:
        kind = type(build.kwargs["checkpointer"]).__name__
        return [f"checkpoint: kept the caller's checkpointer ({kind})"]
    settings = checkpoint_settings or build.settings.get("checkpoint") or CheckpointSettings()
    build.kwargs["checkpointer"] = build.own(
        RedisSaver(connector=build.shared(), checkpoint_settings=settings)
    )
    ttl = f", ttl {settings.ttl_seconds} s" if settings.ttl_seconds else ""
    return [f"checkpoint: RedisSaver, namespace {settings.namespace!r}{ttl}"]


# -- observe --------------------------------------------------------------------------------


def instrument_unless_instrumented() -> bool:
    """`instrument()` with the global providers, unless an `instrument()` is in force.

    An application that instrumented with its own providers (its exporters, redis command
    spans) keeps that: replacing it with the global providers silently sent everything
    after the agent was built (or the worker started) somewhere else, often nowhere.

    Returns:
        Whether this call instrumented (False: what was in force is kept).
    """
    from deepagents_redis.observe import instrument, is_instrumented

    if is_instrumented():
        return False
    instrument()
    return True


_OBSERVE_LOCK = threading.Lock()
"""Serialises observe's instrument-or-keep and a failed build's undo (builds in threads)."""

_KEPT: dict[int, tuple[Any, int]] = {}
"""An instrumentation a build instrumented -> (it, how many other builds kept it)."""


def wire_observe(build: AgentBuild) -> list[str]:
    """Plug OpenTelemetry into core's seam with the global providers, unless already done.

    Returns:
        One line.
    """
    from deepagents_redis.core import get_instrumentation

    with _OBSERVE_LOCK:
        # Only the one in force can be taken back: forget any other (bounded bookkeeping).
        current = get_instrumentation()
        for key in [k for k, (obj, _) in _KEPT.items() if obj is not current]:
            del _KEPT[key]
        if instrument_unless_instrumented():
            mine = get_instrumentation()
            _KEPT[id(mine)] = (mine, 0)
            build.undo.append(lambda: _take_back(mine))
            return ["observe: OpenTelemetry spans and metrics for every phase (global providers)"]
        kept = get_instrumentation()
        if id(kept) in _KEPT:
            # Another build's instrumentation, which that build takes back if it fails: not
            # while this one relies on it (built at the same time in another thread, it
            # "kept" it and then reported nothing once the other's undo ran).
            _KEPT[id(kept)] = (kept, _KEPT[id(kept)][1] + 1)
            build.undo.append(lambda: _release(kept))
        return ["observe: kept the instrument() already in force (its providers)"]


def _take_back(mine: Any) -> None:
    """A failed build's undo of the `instrument()` it did.

    A build that fails after instrumenting (deepagents refusing an argument) must not leave
    the process reporting: the instrumentation stayed in force, so every later agent, built
    without redis_observe, reported anyway and one built with it "kept the instrument()
    already in force". Not taken back if replaced since, nor while a build that kept it
    (built meanwhile) relies on it.
    """
    from deepagents_redis.core import get_instrumentation
    from deepagents_redis.observe import uninstrument

    with _OBSERVE_LOCK:
        _, keepers = _KEPT.pop(id(mine), (mine, 0))
        if keepers == 0 and get_instrumentation() is mine:
            uninstrument()


def _release(kept: Any) -> None:
    """A failed build's undo of its reliance on another build's instrumentation."""
    with _OBSERVE_LOCK:
        entry = _KEPT.get(id(kept))
        if entry is not None and entry[0] is kept and entry[1] > 0:
            _KEPT[id(kept)] = (kept, entry[1] - 1)


PHASES: tuple[Phase, ...] = (
    Phase(
        "cache",
        "deepagents_redis.cache",
        "deepagents-redis-cache",
        "cache",
        lambda f: f.cache_enabled,
        wire_cache,
        settings="deepagents_redis.cache:CacheSettings",
    ),
    Phase(
        "todos",
        "deepagents_redis.todos",
        "deepagents-redis-todos",
        "todos",
        lambda f: f.todos_enabled,
        wire_todos,
        settings="deepagents_redis.todos:TodosSettings",
    ),
    Phase(
        "fs",
        "deepagents_redis.fs",
        "deepagents-redis-fs",
        "fs",
        lambda f: f.fs_enabled,
        wire_fs,
        settings="deepagents_redis.fs:FsSettings",
        kept_by="backend",
    ),
    Phase(
        "coord",
        "deepagents_redis.coord",
        "deepagents-redis-coord",
        "coord",
        lambda f: f.coord_enabled,
        wire_coord,
        settings="deepagents_redis.coord:CoordSettings",
    ),
    Phase(
        "checkpoint",
        "deepagents_redis.checkpoint",
        "deepagents-redis-checkpoint",
        "checkpoint",
        lambda f: f.checkpoint_enabled,
        wire_checkpoint,
        settings="deepagents_redis.checkpoint:CheckpointSettings",
        kept_by="checkpointer",
    ),
    Phase(
        "observe",
        "deepagents_redis.observe",
        "deepagents-redis-observe",
        "observe",
        lambda f: f.observe_enabled,
        wire_observe,
        uses_redis=False,
    ),
)
"""Every phase the wiring knows, in the order it wires them."""


def require(phase: Phase) -> None:
    """Import the phase's package, or say which extra installs it.

    Raises:
        ConfigurationError: The package is not installed.
    """
    try:
        importlib.import_module(phase.module)
    except ImportError as exc:
        raise ConfigurationError(
            f"the {phase.name} phase is enabled but {phase.distribution} is not installed: "
            f"pip install 'deepagents-redis[{phase.extra}]'"
        ) from exc


def needs_redis(flags: AgentRedisSettings) -> bool:
    """Whether an enabled phase talks to Redis (and so the agent needs a connector)."""
    return any(phase.uses_redis and phase.enabled(flags) for phase in PHASES)


def prepare_phases(
    flags: AgentRedisSettings, given: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Check every enabled phase is installed and read its settings, before anything is built.

    A bad ``DEEPAGENTS_REDIS_<PHASE>_*`` value was found only when its phase was wired:
    after the agent's connector and the earlier phases' components were built, and reported
    under the settings' field name (``invalid CacheSettings: ttl_seconds``), which appears
    nowhere in the deployment's environment.

    Args:
        flags: Which phases are on.
        given: The `create_deep_agent` keywords a phase may keep (see `Phase.kept_by`).

    Returns:
        Each enabled phase's settings, by phase name (phases without settings left out).

    Raises:
        ConfigurationError: A phase package is missing (names the extra), or a variable
            holds an invalid value (names the variable).
    """
    found: dict[str, Any] = {}
    for phase in PHASES:
        if phase.enabled(flags):
            require(phase)
            # A phase that keeps the caller's backend or checkpointer never uses its
            # settings: reading them refused a build that worked before they were read
            # early (a stale DEEPAGENTS_REDIS_FS_* next to backend=...).
            if phase.kept_by is not None and (given or {}).get(phase.kept_by) is not None:
                continue
            if phase.settings is not None:
                module, _, name = phase.settings.partition(":")
                cls = getattr(importlib.import_module(module), name)
                found[phase.name] = settings_from_env(cls)
    return found


def wire_phases(build: AgentBuild) -> None:
    """Wire every enabled phase of `PHASES` into `build`, in table order."""
    for phase in PHASES:
        if phase.enabled(build.flags):
            require(phase)
            notes = phase.wire(build)
            # What each phase decided (kept your backend, your checkpointer...) was only in
            # build.notes, which nobody outside the build reads.
            for note in notes:
                log.info("%s", note)
            build.notes.extend(notes)
