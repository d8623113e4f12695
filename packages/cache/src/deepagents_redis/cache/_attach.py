"""Putting the LLM cache on a model without mutating the caller's objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.caches import BaseCache
    from langchain_core.language_models import BaseLanguageModel

__all__ = [
    "with_llm_cache",
]


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
        cache: The LLM cache (e.g. `RedisLLMCache`).
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
