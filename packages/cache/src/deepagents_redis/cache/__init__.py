"""deepagents_redis.cache: a shared LLM response cache and LangGraph node cache in Redis.

* `RedisLLMCache` — a ``langchain_core`` ``BaseCache``: put it on a model
  (``init_chat_model(..., cache=...)``) or globally (``set_llm_cache``). Single-flight,
  fail-open with a circuit breaker, O(1) namespace clear, optional client-side caching.
* `RedisNodeCache` — a ``langgraph`` ``BaseCache`` for ``graph.compile(cache=...)``.
* `CacheSettings` — options, from keyword arguments or ``DEEPAGENTS_REDIS_CACHE_*``.
* `with_llm_cache` — a copy of a model (or an ``init_chat_model`` string) with the cache.
"""

from deepagents_redis.cache._attach import with_llm_cache
from deepagents_redis.cache._llm import RedisLLMCache
from deepagents_redis.cache._near import NearCache
from deepagents_redis.cache._node import RedisNodeCache, namespace_scope
from deepagents_redis.cache._settings import CacheSettings
from deepagents_redis.cache._stored import entry_hash

__all__ = [
    "CacheSettings",
    "NearCache",
    "RedisLLMCache",
    "RedisNodeCache",
    "entry_hash",
    "namespace_scope",
    "with_llm_cache",
]
