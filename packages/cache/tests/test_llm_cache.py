"""RedisLLMCache behaviour on a real server (standalone and cluster)."""

from __future__ import annotations

import json
import pickle
import time
from typing import Any

import pytest
from deepagents_redis.cache import CacheSettings, RedisLLMCache, entry_hash
from deepagents_redis.core import Codec, ConfigurationError
from deepagents_redis.testing.chat import ScriptedChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation

pytestmark = pytest.mark.integration

LLM = "model=fake temperature=0"


def tool_call_generation() -> ChatGeneration:
    return ChatGeneration(
        message=AIMessage(
            content=[{"type": "text", "text": "calling a tool"}],
            tool_calls=[
                {"name": "write_todos", "args": {"todos": [{"content": "x"}]}, "id": "call_1"},
                {"name": "ls", "args": {"path": "/"}, "id": "call_2"},
            ],
            invalid_tool_calls=[
                {"name": "bad", "args": "{not json", "id": "call_3", "error": "parse"}
            ],
            usage_metadata={
                "input_tokens": 10,
                "output_tokens": 5,
                "total_tokens": 15,
                "input_token_details": {"cache_read": 3},
            },
            response_metadata={"model_name": "fake", "finish_reason": "tool_calls"},
            additional_kwargs={"refusal": None, "nested": {"a": [1, 2.5, True]}},
            id="run-123",
            name="assistant",
        ),
        generation_info={"finish_reason": "tool_calls", "logprobs": None},
    )


def test_tool_call_generation_round_trips(make_llm_cache: Any) -> None:
    cache = make_llm_cache(ttl=60)
    gen = tool_call_generation()
    cache.update("prompt", LLM, [gen])
    got = cache.lookup("prompt", LLM)
    assert got == [gen]
    assert type(got[0]) is ChatGeneration
    assert type(got[0].message) is AIMessage
    assert got[0].message.tool_calls == gen.message.tool_calls
    assert got[0].message.usage_metadata == gen.message.usage_metadata


def test_other_generation_types_round_trip(make_llm_cache: Any) -> None:
    # Chunks and plain generations mixed: the LangChain (dumpd/load) path.
    cache = make_llm_cache(ttl=60)
    gens = [
        ChatGenerationChunk(message=AIMessageChunk(content="a", id="m1")),
        Generation(text="plain", generation_info={"x": 1}),
    ]
    cache.update("p", LLM, gens)
    got = cache.lookup("p", LLM)
    assert got == gens
    assert [type(g) for g in got] == [ChatGenerationChunk, Generation]


async def test_async_round_trip(make_llm_cache: Any) -> None:
    cache = make_llm_cache(ttl=60)
    gen = tool_call_generation()
    assert await cache.alookup("p", LLM) is None
    await cache.aupdate("p", LLM, [gen])
    assert await cache.alookup("p", LLM) == [gen]


def test_namespaces_are_isolated(make_llm_cache: Any) -> None:
    a = make_llm_cache(namespace="team:a*", ttl=60)
    b = make_llm_cache(namespace="team", ttl=60)
    a.update("p", LLM, [Generation(text="from a")])
    b.update("p", LLM, [Generation(text="from b")])
    assert a.lookup("p", LLM) == [Generation(text="from a")]
    assert b.lookup("p", LLM) == [Generation(text="from b")]
    a.clear()
    assert a.lookup("p", LLM) is None
    assert b.lookup("p", LLM) == [Generation(text="from b")]


def test_key_separator_is_unambiguous(make_llm_cache: Any) -> None:
    cache = make_llm_cache(ttl=60, single_flight=False)
    cache.update("a---b", "c", [Generation(text="1")])
    assert cache.lookup("a", "---bc") is None
    assert cache.lookup("a---", "bc") is None
    assert entry_hash("ab", "c") != entry_hash("a", "bc")


def test_ttl_is_set_with_the_value_and_entries_expire(
    make_llm_cache: Any, redis_target: Any
) -> None:
    # 2 s, not less: a loaded 2-core CI machine once paused > 300 ms between the write and
    # the PTTL read, and the entry had already (correctly) expired.
    cache = make_llm_cache(ttl=2.0, single_flight=False)
    cache.update("p", LLM, [Generation(text="soon gone")])
    key = cache.redis_keys("p", LLM)["entry"]
    pttl = redis_target.client.pttl(key)
    assert 0 < pttl <= 2000
    assert cache.lookup("p", LLM) == [Generation(text="soon gone")]
    # Wait for the server to expire it, asked of the server: a lookup that failed open (a
    # slow call past the cache's deadline) is a miss too, and would end this wait too early.
    for _ in range(400):  # bounded: 400 * 20 ms = 8 s worst case
        if not redis_target.client.exists(key):
            break
        time.sleep(0.02)
    assert not redis_target.client.exists(key)
    assert cache.lookup("p", LLM) is None


def test_no_ttl_means_no_expiry(make_llm_cache: Any, redis_target: Any) -> None:
    cache = make_llm_cache(ttl=None)
    cache.update("p", LLM, [Generation(text="kept")])
    assert redis_target.client.pttl(cache.redis_keys("p", LLM)["entry"]) == -1


def test_refresh_on_hit_pushes_expiry(make_llm_cache: Any, redis_target: Any) -> None:
    cache = make_llm_cache(ttl=100, refresh_on_hit=True)
    cache.update("p", LLM, [Generation(text="x")])
    key = cache.redis_keys("p", LLM)["entry"]
    redis_target.client.pexpire(key, 5_000)
    assert cache.lookup("p", LLM) == [Generation(text="x")]
    assert redis_target.client.pttl(key) > 5_000


def test_clear_is_one_generation_bump(make_llm_cache: Any, redis_target: Any) -> None:
    cache = make_llm_cache(ttl=60)
    for i in range(20):
        cache.update(f"p{i}", LLM, [Generation(text=str(i))])
    cache.clear()
    assert all(cache.lookup(f"p{i}", LLM) is None for i in range(20))
    # Writing again after clear makes fresh entries.
    cache.update("p0", LLM, [Generation(text="again")])
    assert cache.lookup("p0", LLM) == [Generation(text="again")]
    assert redis_target.client.get(cache.redis_keys("p", LLM)["generation"]) == b"1"


async def test_async_write_lands_for_other_clients(make_llm_cache: Any, redis_target: Any) -> None:
    writer = make_llm_cache(ttl=60)
    await writer.aupdate("p", LLM, [tool_call_generation()])
    # A separate sync client and a separate cache object read it back.
    key = writer.redis_keys("p", LLM)["entry"]
    raw = redis_target.client.get(key)
    assert raw is not None
    assert raw.startswith(b"0:")
    reader = RedisLLMCache(settings=redis_target.settings)
    try:
        assert reader.lookup("p", LLM) == [tool_call_generation()]
    finally:
        reader.close()


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param("wrong_key", id="wrong-key-hash"),
        pytest.param(b"0:" + bytes(range(256)) * 4, id="random-bytes"),
        pytest.param(b"0:" + pickle.dumps({"x": 1}), id="pickle"),
        pytest.param(b"\x80\x04\x95garbage-without-prefix", id="raw-pickle-header"),
        pytest.param(
            b"0:" + Codec().encode({"f": "g1", "g": [{"m": {"type": "human"}}]}), id="bad-shape"
        ),
    ],
)
def test_garbage_is_a_counted_miss(
    make_llm_cache: Any, redis_target: Any, recorder: Any, garbage: Any
) -> None:
    cache = make_llm_cache(ttl=60, single_flight=False)
    key = cache.redis_keys("p", LLM)["entry"]
    if garbage == "wrong_key":
        other = cache.redis_keys("other", LLM)["entry"]
        garbage = b"0:" + Codec().encode({"f": "g1", "g": [{"t": "x", "i": None}]}, key=other)
    redis_target.client.set(key, garbage)
    assert cache.lookup("p", LLM) is None
    assert recorder.total("cache.lookup", outcome="corrupt") == 1


def test_pickle_payload_is_never_executed(
    make_llm_cache: Any, redis_target: Any, tmp_path: Any
) -> None:
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self) -> Any:
            return (open, (str(marker), "w"))

    cache = make_llm_cache(ttl=60)
    key = cache.redis_keys("p", LLM)["entry"]
    redis_target.client.set(key, b"0:" + pickle.dumps(Evil()))
    assert cache.lookup("p", LLM) is None
    assert not marker.exists()


def test_garbage_under_single_flight_still_misses(make_llm_cache: Any, redis_target: Any) -> None:
    cache = make_llm_cache(ttl=60)
    key = cache.redis_keys("p", LLM)["entry"]
    redis_target.client.set(key, b"0:not an envelope")
    assert cache.lookup("p", LLM) is None
    cache.update("p", LLM, [Generation(text="healed")])
    assert cache.lookup("p", LLM) == [Generation(text="healed")]


def test_chat_model_second_call_is_served_from_cache(make_llm_cache: Any) -> None:
    cache = make_llm_cache(ttl=60)
    calls: list[int] = []

    def responses() -> Any:
        while True:
            calls.append(1)
            yield AIMessage(content="the answer")

    model = GenericFakeChatModel(messages=responses(), cache=cache)
    first = model.invoke([HumanMessage(content="question")])
    second = model.invoke([HumanMessage(content="question")])
    assert first.content == second.content == "the answer"
    assert len(calls) == 1


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, redis_target: Any) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_CACHE_NAMESPACE", "from-env")
    monkeypatch.setenv("DEEPAGENTS_REDIS_CACHE_TTL_SECONDS", "42")
    monkeypatch.setenv("DEEPAGENTS_REDIS_CACHE_SINGLE_FLIGHT", "false")
    cache = RedisLLMCache(settings=redis_target.settings, namespace="kwarg-wins")
    try:
        assert cache.namespace == "kwarg-wins"
        assert cache.settings.ttl_seconds == 42
        assert cache.settings.single_flight is False
        assert CacheSettings().namespace == "from-env"
    finally:
        cache.close()


def test_no_connection_configured_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    with pytest.raises(ConfigurationError):
        RedisLLMCache()


def test_from_url_closes_its_client(redis_url: str, key_prefix: str) -> None:
    with RedisLLMCache.from_url(redis_url, namespace=key_prefix, ttl=5) as cache:
        cache.update("p", LLM, [Generation(text="x")])
        assert cache.lookup("p", LLM) == [Generation(text="x")]
        cache.clear()


def test_from_url_returns_the_cache_set_llm_cache_can_use(
    redis_url: str, key_prefix: str, redis_client: Any
) -> None:
    # Before: from_url returned a context manager; set_llm_cache accepted it silently and
    # the first lookup raised AttributeError.
    from langchain_core.globals import get_llm_cache, set_llm_cache

    cache = RedisLLMCache.from_url(redis_url, namespace=key_prefix, ttl=5)
    assert isinstance(cache, RedisLLMCache)
    previous = get_llm_cache()
    set_llm_cache(cache)
    try:
        get_llm_cache().update("p", LLM, [Generation(text="x")])
        assert get_llm_cache().lookup("p", LLM) == [Generation(text="x")]
        client_id = cache.connector.client().client_id()
    finally:
        set_llm_cache(previous)
        cache.close()
    for _ in range(100):  # the server sees the closed socket on its next turn: poll
        if all(int(c["id"]) != client_id for c in redis_client.client_list()):
            break
        time.sleep(0.02)
    assert all(int(c["id"]) != client_id for c in redis_client.client_list())


def test_components_share_one_connector_and_leave_it_open(redis_settings: Any) -> None:
    from deepagents_redis.cache import RedisNodeCache
    from deepagents_redis.core import RedisConnector

    with RedisConnector(settings=redis_settings) as shared:
        llm = RedisLLMCache(connector=shared, namespace="shared")
        node: RedisNodeCache[Any] = RedisNodeCache(connector=shared)
        assert llm.connector is node.connector is shared
        llm.update("p", LLM, [Generation(text="x")])
        llm.close()
        node.close()
        # The connector is the caller's: its client still serves after both closed.
        again = RedisLLMCache(connector=shared, namespace="shared")
        assert again.lookup("p", LLM) == [Generation(text="x")]
        assert shared.client().ping()


def test_connector_with_a_convenience_is_refused(redis_settings: Any) -> None:
    from deepagents_redis.core import RedisConnector

    with pytest.raises(ConfigurationError, match="connector= and url="):
        RedisLLMCache(connector=RedisConnector(settings=redis_settings), url="redis://h:1/0")


def test_stored_value_layout(make_llm_cache: Any, redis_target: Any) -> None:
    # '<generation>:<codec envelope carrying the key hash>' - documented on the docs page.
    cache = make_llm_cache(ttl=60)
    cache.update("p", LLM, [Generation(text="x")])
    raw = redis_target.client.get(cache.redis_keys("p", LLM)["entry"])
    gen, _, env = raw.partition(b":")
    assert gen == b"0"
    assert Codec().decode(env, key=cache.redis_keys("p", LLM)["entry"]) == {
        "f": "g1",
        "g": [{"t": "x", "i": None}],
    }
    assert json.dumps(cache.settings.model_dump())  # settings are plain data


def _answer(turn: int) -> AIMessage:
    """A reply that reports usage, like real models do."""
    usage = {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6}
    return AIMessage(content=f"answer {turn}", usage_metadata=usage)


def test_replayed_multi_turn_conversation_hits_every_turn(make_llm_cache: Any) -> None:
    # LangChain adds total_cost=0 to usage_metadata on a hit; that message is in the next
    # turn's prompt. The key ignores usage metadata, so turn 2 of the replay hits too.
    model = ScriptedChatModel(
        script=[_answer(0), _answer(1)], by_turn=True, cache=make_llm_cache(ttl=60)
    )

    def conversation() -> None:
        history: list[Any] = [HumanMessage(content="first")]
        history.append(model.invoke(history))
        history.append(HumanMessage(content="second"))
        history.append(model.invoke(history))

    conversation()
    assert model.calls == [0, 1]
    conversation()
    assert model.calls == [0, 1]


async def test_replayed_conversation_of_a_model_without_usage_hits_every_turn(
    make_llm_cache: Any,
) -> None:
    # A model that reports no usage: its first run stored turn 2 under the prompt as LangChain
    # dumped it; on the replay, turn 1's hit carries LangChain's total_cost=0, which the key
    # dropped, but the rest was written back compactly: another key, so turn 2 missed.
    model = ScriptedChatModel(
        script=[AIMessage(content="a0"), AIMessage(content="é a1")],
        by_turn=True,
        cache=make_llm_cache(ttl=60),
    )

    async def conversation() -> None:
        history: list[Any] = [HumanMessage(content="first ✓")]
        history.append(await model.ainvoke(history))
        history.append(HumanMessage(content="second"))
        history.append(model.invoke(history))

    await conversation()
    assert model.calls == [0, 1]
    await conversation()
    assert model.calls == [0, 1]


@pytest.mark.parametrize("namespace", ["default", "a:b*{c}[d]?\\", "", "émoji 🎉"])
def test_keys_are_keyspace_keys(namespace: str, redis_settings: Any) -> None:
    cache = RedisLLMCache(settings=redis_settings, namespace=namespace)
    try:
        keys = cache.redis_keys("p", LLM)
        ks = cache.connector.keyspace
        digest = entry_hash("p", LLM)
        assert keys["entry"] == ks.key("llm", namespace, "e", digest)
        assert keys["lease"] == ks.key("llm", namespace, "lease", digest)
        assert keys["generation"] == ks.key("llm", namespace, "gen")
        assert ks.parse(keys["entry"]) == ("llm", namespace, ("e", digest))
    finally:
        cache.close()


async def test_ready_async_client_is_used_and_left_open(redis_target: Any) -> None:
    # A client passed in belongs to the caller: used for I/O, never closed by the cache.
    cache = RedisLLMCache(
        settings=redis_target.settings, async_client=redis_target.async_client, ttl=60
    )
    assert await cache.connector.aclient() is redis_target.async_client
    await cache.aupdate("p", LLM, [Generation(text="via ready client")])
    assert await cache.alookup("p", LLM) == [Generation(text="via ready client")]
    await cache.aclose()
    assert await redis_target.async_client.ping()


@pytest.mark.parametrize("flavour", ["client", "async_client"])
@pytest.mark.parametrize("kind", ["llm", "node"])
async def test_a_client_that_decodes_responses_is_refused(
    redis_target: Any, flavour: str, kind: str
) -> None:
    # With decode_responses=True every read of a stored (binary) value raised
    # UnicodeDecodeError: each lookup failed open, the breaker counted it as a connection
    # failure and opened for good, and the cache never served anything.
    import redis
    import redis.asyncio
    from deepagents_redis.cache import RedisNodeCache

    url = redis_target.settings.url
    if flavour == "client":
        module: Any = redis
    else:
        module = redis.asyncio
    factory = module.RedisCluster if redis_target.is_cluster else module.Redis
    client = factory.from_url(url, decode_responses=True)
    build: Any = RedisLLMCache if kind == "llm" else RedisNodeCache
    try:
        with pytest.raises(ConfigurationError, match="decode_responses=False"):
            build(settings=redis_target.settings, **{flavour: client})
    finally:
        if flavour == "client":
            client.close()
        else:
            await client.aclose()


@pytest.mark.parametrize("field", ["ttl_seconds", "lease_ttl_seconds"])
@pytest.mark.parametrize("value", [float("inf"), 1e300])
def test_an_infinite_or_huge_ttl_is_a_configuration_error(field: str, value: float) -> None:
    # Both become a PX in milliseconds: inf passed the settings (only > 0 was checked) and
    # the cache's constructor then raised OverflowError; 1e300 made a PX Redis refuses, so
    # every update (or every miss's lease) failed open. None is how to keep entries forever.
    from deepagents_redis.cache import CacheSettings
    from deepagents_redis.core import ConfigurationError

    with pytest.raises(ConfigurationError, match=field):
        CacheSettings(**{field: value})


def test_an_infinite_breaker_reset_is_a_configuration_error(redis_settings: Any) -> None:
    # The settings accepted it and each cache's constructor then raised a bare ValueError
    # from the circuit breaker (which needs a finite reset timeout).
    from deepagents_redis.cache import CacheSettings
    from deepagents_redis.core import ConfigurationError

    with pytest.raises(ConfigurationError, match="breaker_reset_seconds"):
        RedisLLMCache(
            settings=redis_settings,
            cache_settings=CacheSettings(breaker_reset_seconds=float("inf")),
        )
