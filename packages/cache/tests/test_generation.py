"""The namespace generation counter as both caches read it, in Python and in Lua."""

from __future__ import annotations

from typing import Any

import pytest
from deepagents_redis.cache._scripts import ACQUIRE
from langchain_core.outputs import Generation

pytestmark = pytest.mark.integration

PROMPT, LLM = "a question", "model=fake"
ANSWER = [Generation(text="an answer")]


@pytest.mark.parametrize("written", ["before", "after"])
def test_an_empty_generation_counter_reads_as_zero_on_every_path(
    make_llm_cache: Any, make_node_cache: Any, redis_target: Any, written: str
) -> None:
    # A counter holding '' (no INCR writes it; a restore or another tool can): the Lua
    # scripts took it as the generation '' (values written ':<envelope>') and the Python
    # reads as '0', so an entry written by one path was a miss (counted corrupt) by the other.
    # Both now read '' as an absent counter, generation '0'.
    client = redis_target.client
    writer = make_llm_cache(namespace=f"gen-empty-{written}")
    gen_key = writer.redis_keys(PROMPT, LLM)["generation"]
    node = make_node_cache()
    node_gen = node.redis_keys(("gen-empty", written), "k")["generation"]
    if written == "after":
        client.set(gen_key, b"")
        client.set(node_gen, b"")
    writer.update(PROMPT, LLM, ANSWER)  # cache_write (Lua)
    node.set({(("gen-empty", written), "k"): ({"v": 1}, 60)})  # cache_write_many (Lua)
    if written == "before":
        client.set(gen_key, b"")
        client.set(node_gen, b"")
    reader = make_llm_cache(namespace=f"gen-empty-{written}")
    assert reader.lookup(PROMPT, LLM) == ANSWER  # the lookup script (Lua)
    assert reader.lookup(PROMPT, LLM) == ANSWER  # after a hit: the plain reads (Python)
    assert node.get([(("gen-empty", written), "k")]) == {(("gen-empty", written), "k"): {"v": 1}}
    # cache_acquire (Lua), as a waiter's poll reads it.
    keys = reader.redis_keys(PROMPT, LLM)
    reply = ACQUIRE(client, keys=[gen_key, keys["entry"], keys["lease"]], args=["t", 1000, 1 << 20])
    assert reply[0] == 1
