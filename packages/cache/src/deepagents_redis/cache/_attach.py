"""Putting the LLM cache on a model without mutating the caller's objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.caches import BaseCache
    from langchain_core.language_models import BaseLanguageModel


def with_llm_cache(
    model: str | BaseLanguageModel[Any], cache: BaseCache, **init_kwargs: Any
) -> Any:
    """Return a model that uses ``cache`` for its calls.

    A ``"provider:model"`` string goes through ``langchain.chat_models.init_chat_model(model,
    cache=cache, **init_kwargs)``. A model instance is copied (``model_copy``) with the
    cache set: the caller's object is not changed, so a model shared elsewhere keeps its
    own caching behaviour.

    Args:
        model: A model instance or an ``init_chat_model`` string.
        cache: The LLM cache (e.g. :class:`RedisLLMCache`).
        **init_kwargs: Extra ``init_chat_model`` arguments (strings only).

    Returns:
        The cached model.

    Raises:
        ImportError: A string model needs the ``langchain`` package.
        TypeError: ``model`` is neither a string nor a LangChain language model.
    """
    # Imported here: langchain_core.language_models pulls in the tracers (seconds of import
    # time in every worker process that only needs the cache).
    from langchain_core.language_models import BaseLanguageModel

    if isinstance(model, str):
        try:
            from langchain.chat_models import init_chat_model
        except ImportError as exc:  # pragma: no cover - langchain ships with deepagents
            raise ImportError(
                "a model given by name needs langchain: pip install langchain"
            ) from exc
        return init_chat_model(model, cache=cache, **init_kwargs)
    if isinstance(model, BaseLanguageModel):
        if init_kwargs:
            raise TypeError("init_kwargs only apply to models given by name")
        return model.model_copy(update={"cache": cache})
    raise TypeError(f"cannot attach an LLM cache to {type(model).__name__}")


def _model_from_name(name: str, cache: BaseCache) -> Any:
    # Same construction as deepagents' resolve_model (init_chat_model with the registered
    # provider profile's kwargs), plus the cache.
    from langchain.chat_models import init_chat_model

    try:
        from deepagents.profiles.provider.provider_profiles import apply_provider_profile
    except ImportError:  # pragma: no cover - older/newer deepagents layout
        return init_chat_model(name, cache=cache)
    return init_chat_model(name, **apply_provider_profile(name, {"cache": cache}))


def wire_agent_cache(
    kwargs: dict[str, Any],
    *,
    connection: dict[str, Any],
    cache_settings: Any = None,
) -> list[str]:
    """Put the Redis caches into ``deepagents.create_deep_agent`` keyword arguments.

    Used by the umbrella's ``deepagents_redis.agent.create_deep_agent`` when the cache phase
    is on. The model (``kwargs["model"]``) gets a :class:`RedisLLMCache`: a string goes
    through ``init_chat_model(..., cache=...)`` with deepagents' provider profile, an
    instance is copied. With ``node_cache_enabled`` and no ``cache`` given, the graph also
    gets a :class:`RedisNodeCache` (which only acts on nodes that have a cache policy).

    Args:
        kwargs: The ``create_deep_agent`` arguments; edited in place.
        connection: ``url``/``settings``/``client``/``async_client`` for the caches.
        cache_settings: A :class:`CacheSettings`; read from the environment when None.

    Returns:
        One line per thing done (for logs and tests).
    """
    from deepagents_redis.cache._llm import RedisLLMCache
    from deepagents_redis.cache._node import RedisNodeCache
    from deepagents_redis.cache._settings import CacheSettings

    cs = cache_settings if cache_settings is not None else CacheSettings()
    notes: list[str] = []
    model = kwargs.get("model")
    if model is None:
        notes.append(
            "cache: model=None (deepagents' deprecated default model) is left alone; "
            "pass a model to cache its calls"
        )
    else:
        llm_cache = RedisLLMCache(**connection, cache_settings=cs)
        kwargs["model"] = (
            _model_from_name(model, llm_cache)
            if isinstance(model, str)
            else with_llm_cache(model, llm_cache)
        )
        notes.append(
            f"cache: LLM cache on the model (namespace={cs.namespace!r}, "
            f"ttl={cs.ttl_seconds!r}, single_flight={cs.single_flight})"
        )
    if cs.node_cache_enabled:
        if kwargs.get("cache") is None:
            kwargs["cache"] = RedisNodeCache(**connection, cache_settings=cs)
            notes.append("cache: RedisNodeCache as the graph cache (nodes need a cache policy)")
        else:
            notes.append("cache: node cache enabled but a graph cache was passed; kept yours")
    return notes
