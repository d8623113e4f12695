"""Child process for the single-flight tests (run by path: ``python _sf_worker.py MODE``).

Connection comes from the environment (DEEPAGENTS_REDIS_URL, _KEY_PREFIX, _CLUSTER).
MODE "write": store argv[3] as the answer. MODE "race": wait for the go key, look up; on a
miss "call the model" (INCR a counter, sleep a little) and update. Prints HIT or CALLED.
MODE "hold": look up (taking the lease), print LEASED, then sleep until killed.
"""

from __future__ import annotations

import sys
import time

from deepagents_redis.cache import RedisLLMCache
from deepagents_redis.core import RedisSettings, create_client
from langchain_core.outputs import Generation

PROMPT, LLM = "the same question", "model=fake"


def main() -> None:
    mode, namespace = sys.argv[1], sys.argv[2]
    settings = RedisSettings()
    raw = create_client(settings)
    cache = RedisLLMCache(settings=settings, namespace=namespace, ttl=60, lease_ttl=1.0)
    ks = cache.connector.keyspace
    try:
        if mode == "write":
            cache.update(PROMPT, LLM, [Generation(text=sys.argv[3])])
            print("WROTE", flush=True)
            return
        if mode == "hold":
            assert cache.lookup(PROMPT, LLM) is None
            print("LEASED", flush=True)
            time.sleep(120)
            return
        go = ks.key("test", namespace, "go")
        counter = ks.key("test", namespace, "calls")
        for _ in range(1000):  # bounded: 10 s
            if raw.exists(go):
                break
            time.sleep(0.01)
        got = cache.lookup(PROMPT, LLM)
        if got is None:
            raw.incr(counter)
            time.sleep(0.3)  # the model takes a while
            cache.update(PROMPT, LLM, [Generation(text="answer")])
            print("CALLED", flush=True)
        else:
            assert got == [Generation(text="answer")]
            print("HIT", flush=True)
    finally:
        cache.close()
        raw.close()


if __name__ == "__main__":
    main()
