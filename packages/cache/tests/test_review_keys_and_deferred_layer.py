"""Review of 9734cf9, 673c665 and ebcaf1a: keys of ordinary prompts and namespaces are the
keys written before (the digests below were produced by the code before those commits: a
changed key makes every existing entry miss), and the deferred client-side layer.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from deepagents_redis.cache import CacheSettings, RedisLLMCache, namespace_scope
from deepagents_redis.cache._stored import canonical_prompt
from deepagents_redis.core import RedisSettings
from langchain_core.load import dumps
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import Generation

LLM = "model=fake"
USAGE = {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8}
P1 = dumps(
    [
        SystemMessage("be brief"),
        HumanMessage("hi"),
        AIMessage("hello", usage_metadata=USAGE),  # type: ignore[arg-type]
        HumanMessage("more"),
    ]
)
P2 = dumps(
    [
        HumanMessage("hi"),
        AIMessageChunk(content="part", usage_metadata=USAGE),  # type: ignore[arg-type]
        HumanMessage("next"),
    ]
)
P3 = dumps([HumanMessage("plain")])
P4 = dumps(
    [
        HumanMessage("hé 🙂"),
        AIMessage(
            "ok",
            usage_metadata=USAGE,  # type: ignore[arg-type]
            tool_calls=[{"name": "t", "args": {"a": [1, [2, {"usage_metadata": 1}]]}, "id": "c1"}],
        ),
        ToolMessage("r", tool_call_id="c1"),
    ]
)
BEFORE = {
    "P1": "3249a7ff51e212966c0d3bb45bf42dde4bbb57a9ad22fc8b305a4ae9c5440e4b",
    "P2": "c74635590a7679f98e7fdd4d20d227712d1a5a037acbf1a500297b96c98daf00",
    "P3": "f14247c06d80c25cbedd310a0f64ed8b2961e4fccfe24d49a7de662055ad8dda",
    "P4": "55b6b64e636558ca4606aa77852796889185a65824c8d5ba3fd27ee2d53ebacd",
}


@pytest.mark.integration
@pytest.mark.parametrize(("name", "prompt"), [("P1", P1), ("P2", P2), ("P3", P3), ("P4", P4)])
def test_an_ordinary_chat_prompts_key_is_the_key_written_before(
    make_llm_cache: Any, name: str, prompt: str
) -> None:
    cache = make_llm_cache(ttl=60)
    entry = cache.redis_keys(prompt, LLM)["entry"]
    assert entry.endswith(BEFORE[name]), entry
    # ...and it is a hit across a turn that only changes the AI message's token counts.
    cache.update(prompt, LLM, [Generation(text=name)])
    replay = prompt.replace('"total_tokens": 8', '"total_tokens": 9')
    assert cache.lookup(replay, LLM) == [Generation(text=name)]


def _human_with_usage(tokens: int) -> str:
    # Serialised by LangChain's shape, but not an AI message: its usage_metadata (in kwargs,
    # where nothing of LangChain's puts one) is part of what was asked.
    return json.dumps(
        [
            {
                "lc": 1,
                "type": "constructor",
                "id": ["langchain", "schema", "messages", "HumanMessage"],
                "kwargs": {"content": "hi", "usage_metadata": {"total_tokens": tokens}},
            }
        ]
    )


def test_only_serialised_ai_messages_lose_their_usage() -> None:
    assert canonical_prompt(_human_with_usage(1)) == _human_with_usage(1)
    ai = json.loads(_human_with_usage(1))
    ai[0]["id"][-1] = "AIMessageChunk"
    assert "usage_metadata" not in canonical_prompt(json.dumps(ai))
    # Not a constructor record (lc 1 "not_implemented", or no lc): kept.
    for changed in ({"type": "not_implemented"}, {"lc": 2}, {"id": "AIMessage"}, {"id": []}):
        other = json.loads(_human_with_usage(1))
        other[0].update(changed)
        other[0]["id"] = changed.get("id", ["x", "AIMessage"])
        text = json.dumps(other)
        assert canonical_prompt(text) == text, changed
    # A message inside a nested list is not a message of the prompt: kept as written.
    nested = json.dumps([[json.loads(P1)[2]]])
    assert canonical_prompt(nested) == nested


@pytest.mark.integration
def test_a_human_message_with_usage_in_its_kwargs_keeps_it_in_the_key(
    make_llm_cache: Any,
) -> None:
    cache = make_llm_cache(ttl=60)
    cache.update(_human_with_usage(1), LLM, [Generation(text="one")])
    assert cache.lookup(_human_with_usage(2), LLM) is None
    assert cache.lookup(_human_with_usage(1), LLM) == [Generation(text="one")]


def test_namespace_scopes_of_ordinary_namespaces_are_the_ones_written_before() -> None:
    assert namespace_scope(("agent", "node")) == '["agent","node"]'
    assert namespace_scope(("é", "日本")) == '["é","日本"]'
    assert namespace_scope(()) == "[]"
    assert namespace_scope(("a:b", "c*d")) == '["a:b","c*d"]'
    # The escaped form parses back to the namespace: still one scope per namespace.
    for ns in [("\ud800",), ("é", "\udfff"), ("\\ud800",), ("\\\\ud800",)]:
        assert tuple(json.loads(namespace_scope(ns))) == ns
        assert namespace_scope(ns).encode("utf-8")


@pytest.mark.integration
def test_node_cache_keys_of_ordinary_namespaces_hold_their_text(make_node_cache: Any) -> None:
    cache = make_node_cache()
    entry = cache.redis_keys(("agent", "é"), "k")["entry"]
    assert '"agent","é"' in entry, entry


# -- the deferred client-side layer -----------------------------------------------------------

CS = CacheSettings(breaker_failure_threshold=1, breaker_reset_seconds=0.1, warn_interval_seconds=60)


@pytest.mark.integration
@pytest.mark.fault
def test_lookups_racing_close_leave_no_layer_running(
    fault_proxy: Any, redis_url: str, key_prefix: str
) -> None:
    # The layer starts inside a lookup (under its lock) while another thread closes the
    # cache: either it never starts, or close stops it; no tracking thread outlives close.
    proxy = fault_proxy(redis_url)
    proxy.set_mode("reset")
    cache = RedisLLMCache(
        settings=RedisSettings(url=proxy.url, key_prefix=key_prefix, socket_timeout=2, retries=0),
        cache_settings=CS,
        client_side_cache=True,
        namespace="race",
    )
    assert cache.client_side_cache is None
    proxy.set_mode("pass")
    cache._connector.client()  # the mode is known: the next lookup starts the layer
    go = threading.Barrier(9)

    def look(i: int) -> None:
        go.wait(10)
        cache.lookup(f"p{i}", LLM)  # one prompt each: no single-flight wait on another's miss

    threads = [threading.Thread(target=look, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    go.wait(10)
    cache.close()
    for t in threads:
        t.join(30)
    near = cache.client_side_cache
    if near is not None:
        assert not near._thread.is_alive()
        assert not near.ready


@pytest.mark.integration
@pytest.mark.fault
async def test_aclose_of_a_cache_whose_layer_waits_never_starts_it(
    fault_proxy: Any, redis_url: str, key_prefix: str
) -> None:
    proxy = fault_proxy(redis_url)
    proxy.set_mode("reset")
    cache = RedisLLMCache(
        settings=RedisSettings(url=proxy.url, key_prefix=key_prefix, socket_timeout=2, retries=0),
        cache_settings=CS,
        client_side_cache=True,
        namespace="aclose-waiting",
    )
    await cache.aclose()
    proxy.set_mode("pass")
    cache._connector.client()
    assert cache._pending_near() is None
    assert cache.client_side_cache is None
