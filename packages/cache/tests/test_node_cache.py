"""RedisNodeCache: LangGraph's node cache on a real server (standalone and cluster)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from deepagents_redis.cache import RedisNodeCache, namespace_scope
from deepagents_redis.core import Codec
from langgraph.cache.memory import InMemoryCache
from langgraph.cache.redis import RedisCache as LangGraphRedisCache
from langgraph.graph import END, START, StateGraph
from langgraph.types import CachePolicy
from typing_extensions import TypedDict

pytestmark = pytest.mark.integration


TRICKY = [
    ("a:b",),
    ("a", "b"),
    ("a*",),
    ("a",),
    ("a.b",),
    ("a", "b.c"),
    ("a:b", "c"),
    ("a", "b:c"),
    ("",),
    (),
    ("{x}", "[y]", "?", "\\"),
    ("émoji 🎉",),
]


def test_get_set_round_trip_and_batch(make_node_cache: Any) -> None:
    cache = make_node_cache()
    pairs = {
        (("ns1",), "k1"): ({"writes": [("a", 1)]}, 60),
        (("ns1",), "k2"): ([1, 2, 3], None),
        (("ns2", "sub"), "k1"): ("text", 60),
    }
    cache.set(pairs)
    keys = [*pairs, (("ns1",), "missing"), (("nsX",), "k1")]
    got = cache.get(keys)
    # Same answer as langgraph's own in-memory cache with the same serde (tuples come back
    # as lists there too: that is the serde, not us).
    reference: InMemoryCache[Any] = InMemoryCache()
    reference.set(pairs)
    assert got == reference.get(keys)
    assert set(got) == set(pairs)


async def test_async_twins(make_node_cache: Any, redis_target: Any) -> None:
    cache = make_node_cache()
    await cache.aset({(("ns",), "k"): ({"x": b"bytes"}, 60)})
    assert await cache.aget([(("ns",), "k")]) == {(("ns",), "k"): {"x": b"bytes"}}
    # The async write really landed: a separate sync cache object reads it.
    other: RedisNodeCache[Any] = RedisNodeCache(settings=redis_target.settings)
    try:
        assert other.get([(("ns",), "k")]) == {(("ns",), "k"): {"x": b"bytes"}}
    finally:
        other.close()
    await cache.aclear([("ns",)])
    assert await cache.aget([(("ns",), "k")]) == {}


def test_tricky_namespaces_neither_collide_nor_leak(make_node_cache: Any) -> None:
    cache = make_node_cache()
    cache.set({(ns, "k"): (f"value of {ns!r}", 60) for ns in TRICKY})
    got = cache.get([(ns, "k") for ns in TRICKY])
    assert got == {(ns, "k"): f"value of {ns!r}" for ns in TRICKY}
    # Clearing one namespace (with glob characters in it) leaves every other one alone.
    cache.clear([("a*",)])
    after = cache.get([(ns, "k") for ns in TRICKY])
    assert (("a*",), "k") not in after
    assert len(after) == len(TRICKY) - 1
    cache.clear([("a:b",)])
    after = cache.get([(ns, "k") for ns in TRICKY])
    assert (("a:b",), "k") not in after
    assert (("a", "b"), "k") in after


@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_langgraph_redis_cache_is_lossy_here(redis_client: Any, key_prefix: str) -> None:
    # The anchor we fix: its ':'-joined keys make ("a:b",) and ("a", "b") one entry.
    lg: LangGraphRedisCache[Any] = LangGraphRedisCache(redis_client, prefix=f"{key_prefix}:lg:")
    lg.set({(("a:b",), "k"): ("first", 60)})
    lg.set({(("a", "b"), "k"): ("second", 60)})
    assert lg.get([(("a:b",), "k")]) == {(("a:b",), "k"): "second"}


def test_clear_all_uses_the_registry(make_node_cache: Any) -> None:
    cache = make_node_cache()
    cache.set({(("n1",), "k"): (1, 60), (("n2", "x"), "k"): (2, 60)})
    cache.clear()
    assert cache.get([(("n1",), "k"), (("n2", "x"), "k")]) == {}
    cache.set({(("n1",), "k"): (3, 60)})
    assert cache.get([(("n1",), "k")]) == {(("n1",), "k"): 3}


def test_ttl(make_node_cache: Any, redis_target: Any) -> None:
    cache = make_node_cache()
    cache.set({(("ns",), "short"): ("x", 1), (("ns",), "forever"): ("y", None)})
    assert redis_target.client.pttl(cache.redis_keys(("ns",), "forever")["entry"]) == -1
    short = cache.redis_keys(("ns",), "short")["entry"]
    assert 0 < redis_target.client.pttl(short) <= 1000
    # Wait for the server to expire it, asked of the server: a cache get that failed open (a
    # slow call past the cache's deadline) is a miss too, and ended this wait too early.
    for _ in range(200):  # bounded: 4 s
        if not redis_target.client.exists(short):
            break
        time.sleep(0.02)
    assert not redis_target.client.exists(short)
    assert cache.get([(("ns",), "short")]) == {}
    assert cache.get([(("ns",), "forever")]) == {(("ns",), "forever"): "y"}


def test_default_ttl(make_node_cache: Any, redis_target: Any) -> None:
    cache = make_node_cache(default_ttl=30)
    cache.set({(("ns",), "k"): ("x", None)})
    assert 0 < redis_target.client.pttl(cache.redis_keys(("ns",), "k")["entry"]) <= 30_000


def test_garbage_is_a_counted_miss(make_node_cache: Any, redis_target: Any, recorder: Any) -> None:
    cache = make_node_cache()
    good = Codec().encode(
        {"t": "json", "d": b'"x"'}, key=cache.redis_keys(("ns",), "other")["entry"]
    )
    redis_target.client.set(cache.redis_keys(("ns",), "a")["entry"], b"0:" + good)  # wrong key hash
    redis_target.client.set(cache.redis_keys(("ns",), "b")["entry"], b"0:\x80\x04garbage")
    redis_target.client.set(cache.redis_keys(("ns",), "c")["entry"], b"no prefix")
    assert cache.get([(("ns",), "a"), (("ns",), "b"), (("ns",), "c")]) == {}
    assert recorder.total("node_cache.get", outcome="corrupt") == 3


def test_namespace_scope_is_injective() -> None:
    scopes = {namespace_scope(ns) for ns in TRICKY}
    assert len(scopes) == len(TRICKY)


class State(TypedDict):
    x: int
    calls: int


def test_graph_with_cache_policy_skips_the_node(make_node_cache: Any) -> None:
    calls: list[int] = []

    def double(state: State) -> dict[str, int]:
        calls.append(state["x"])
        return {"x": state["x"] * 2}

    builder = StateGraph(State)
    builder.add_node("double", double, cache_policy=CachePolicy(ttl=60))
    builder.add_edge(START, "double")
    builder.add_edge("double", END)
    cache = make_node_cache()
    graph = builder.compile(cache=cache)
    assert graph.invoke({"x": 3, "calls": 0})["x"] == 6
    assert graph.invoke({"x": 3, "calls": 0})["x"] == 6
    assert calls == [3]
    graph.clear_cache()
    assert graph.invoke({"x": 3, "calls": 0})["x"] == 6
    assert calls == [3, 3]


async def test_graph_async_with_cache_policy(make_node_cache: Any) -> None:
    calls: list[int] = []

    async def double(state: State) -> dict[str, int]:
        calls.append(state["x"])
        return {"x": state["x"] * 2}

    builder = StateGraph(State)
    builder.add_node("double", double, cache_policy=CachePolicy(ttl=60))
    builder.add_edge(START, "double")
    builder.add_edge("double", END)
    graph = builder.compile(cache=make_node_cache())
    assert (await graph.ainvoke({"x": 5, "calls": 0}))["x"] == 10
    assert (await graph.ainvoke({"x": 5, "calls": 0}))["x"] == 10
    assert calls == [5]


def test_keys_are_keyspace_keys(make_node_cache: Any) -> None:
    cache = make_node_cache()
    for ns in TRICKY:
        for key in ("k", "a:b", "*", ""):
            expected = cache.connector.keyspace.key("node", namespace_scope(ns), "e", key)
            assert cache.redis_keys(ns, key)["entry"] == expected
        assert cache.redis_keys(ns, "")["generation"] == cache.connector.keyspace.key(
            "node", namespace_scope(ns), "gen"
        )


@pytest.mark.cluster
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_langgraph_redis_cache_reads_nothing_on_cluster_but_ours_does(
    cluster_client: Any, cluster_settings: Any
) -> None:
    # The anchor's cross-slot MGET fails on Cluster and it swallows the error: {}.
    keys = [(("ns-a",), "k"), (("ns-b",), "k"), (("ns-c",), "k")]
    lg: LangGraphRedisCache[Any] = LangGraphRedisCache(
        cluster_client, prefix=f"{cluster_settings.key_prefix}:lg:"
    )
    lg.set({k: ("v", 60) for k in keys})
    assert lg.get(keys) == {}
    ours: RedisNodeCache[Any] = RedisNodeCache(settings=cluster_settings)
    try:
        ours.set({k: ("v", 60) for k in keys})
        assert ours.get(keys) == dict.fromkeys(keys, "v")
    finally:
        ours.close()


FOREIGN_REGISTRY_MEMBERS = (b"\xff{", b"not json", b"123", b'{"a": 1}', b'["a", 1]', b"[" * 100_000)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_clear_all_skips_registry_members_it_did_not_write(
    make_node_cache: Any, redis_target: Any, recorder: Any, mode: str
) -> None:
    # Bytes someone else put in the namespace registry made clear() raise a bare
    # UnicodeDecodeError/JSONDecodeError/TypeError, and no namespace was cleared at all.
    cache = make_node_cache()
    cache_keys = [(("n1",), "k"), (("n2", "x"), "k")]
    if mode == "sync":
        cache.set({cache_keys[0]: (1, 60), cache_keys[1]: (2, 60)})
    else:
        await cache.aset({cache_keys[0]: (1, 60), cache_keys[1]: (2, 60)})
    registry = cache.connector.keyspace.key("nodereg", "namespaces")
    redis_target.client.sadd(registry, *FOREIGN_REGISTRY_MEMBERS)
    if mode == "sync":
        cache.clear()
        got = cache.get(cache_keys)
    else:
        await cache.aclear()
        got = await cache.aget(cache_keys)
    assert got == {}
    assert recorder.total("node_cache.clear", outcome="corrupt") == len(FOREIGN_REGISTRY_MEMBERS)


def _plant(redis_target: Any, cache: Any, ns: tuple[str, ...], key: str, envelope: Any) -> None:
    """Write `envelope` (the node cache's {"t", "d"} pair) under an entry, key hash and all."""
    entry = cache.redis_keys(ns, key)["entry"]
    redis_target.client.set(entry, b"0:" + Codec().encode(envelope, key=entry))


def _ext_call(module: str, name: str, arg: Any) -> bytes:
    """LangGraph's msgpack for "call module.name(arg)" (its constructor extension type 0)."""
    import ormsgpack

    return ormsgpack.packb({"v": ormsgpack.Ext(0, ormsgpack.packb((module, name, arg)))})


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_planted_entry_naming_a_callable_never_calls_it(
    make_node_cache: Any, redis_target: Any, recorder: Any, tmp_path: Any, mode: str
) -> None:
    # The default serializer allowed every msgpack type: decoding a planted entry imported
    # the module it named and called the callable with the writer's argument (os.system
    # ran a shell command). Now only LangGraph's safe types are built; this is a miss.
    cache = make_node_cache()
    target = tmp_path / "made-by-a-planted-entry"
    full = (("ns",), "k")
    _plant(redis_target, cache, *full, {"t": "msgpack", "d": _ext_call("os", "mkdir", str(target))})
    got = cache.get([full]) if mode == "sync" else await cache.aget([full])
    assert got == {}
    assert not target.exists()
    assert recorder.total("node_cache.get", outcome="corrupt") == 1


def test_a_type_outside_the_allowlist_is_a_miss_unless_the_serde_allows_it(
    make_node_cache: Any, caplog: pytest.LogCaptureFixture, recorder: Any
) -> None:
    from http import HTTPStatus

    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    full = (("ns",), "status")
    strict = make_node_cache()
    strict.set({full: ({"status": HTTPStatus.OK}, 60)})
    assert strict.get([full]) == {}
    assert recorder.total("node_cache.get", outcome="corrupt") == 1
    assert any("http.HTTPStatus" in r.getMessage() for r in caplog.records)
    allowing = make_node_cache(
        serde=JsonPlusSerializer(allowed_msgpack_modules=[("http", "HTTPStatus")])
    )
    allowing.set({full: ({"status": HTTPStatus.OK}, 60)})
    got = allowing.get([full])
    assert got == {full: {"status": HTTPStatus.OK}}
    assert type(got[full]["status"]) is HTTPStatus


@pytest.mark.parametrize(
    "envelope",
    [
        {"t": "bytes", "d": 3},  # bytes(3): three zero bytes out of nothing
        {"t": "bytes", "d": [104, 105]},  # bytes([104, 105]): b"hi"
        {"t": 5, "d": b"5"},
    ],
)
async def test_an_envelope_of_the_wrong_types_is_a_counted_miss(
    make_node_cache: Any, redis_target: Any, recorder: Any, envelope: Any
) -> None:
    # The envelope's payload went through bytes(...): a planted integer n became n zero
    # bytes (a few bytes in Redis, as many gigabytes as asked for on every read) and a list
    # of small ints became their bytes, both served as the node's cached value.
    cache = make_node_cache()
    full = (("ns",), "k")
    _plant(redis_target, cache, *full, envelope)
    assert cache.get([full]) == {}
    assert await cache.aget([full]) == {}
    assert recorder.total("node_cache.get", outcome="corrupt") == 2


async def test_a_key_asked_twice_counts_two_hits(make_node_cache: Any, recorder: Any) -> None:
    # Two tasks with the same cache key in one batch: the value was served to both, but the
    # second was counted as a miss (hits were counted per distinct key found).
    cache = make_node_cache()
    full = (("ns",), "k")
    cache.set({full: ("v", 60)})
    assert cache.get([full, full, (("ns",), "absent")]) == {full: "v"}
    assert await cache.aget([full, full]) == {full: "v"}
    assert recorder.total("node_cache.get", outcome="hit") == 4
    assert recorder.total("node_cache.get", outcome="miss") == 1


@pytest.mark.parametrize("ttl", [float("inf"), float("nan"), -1, 0, 1e300, True, "60"], ids=repr)
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_policy_ttl_that_is_not_positive_finite_seconds_is_refused(
    make_node_cache: Any, redis_target: Any, ttl: Any, use_async: bool
) -> None:
    # A CachePolicy TTL reaches set() per entry. inf raised OverflowError and NaN ValueError
    # out of set (untyped); 1e300 made an EX Redis refuses (every set failed open); 0 and
    # negatives kept the entry 1 ms (nothing cached, silently). Now an InvalidInputError
    # before anything of the batch is written, like a bad default_ttl (ConfigurationError).
    from deepagents_redis.core import InvalidInputError

    cache = make_node_cache()
    good, bad = (("ttl-bad",), "good"), (("ttl-bad",), "bad")
    pairs = {good: ("v", 60), bad: ("v", ttl)}
    if use_async:
        with pytest.raises(InvalidInputError, match="ttl"):
            await cache.aset(pairs)
    else:
        with pytest.raises(InvalidInputError, match="ttl"):
            cache.set(pairs)
    client = redis_target.client
    assert client.exists(cache.redis_keys(*good)["entry"]) == 0
    assert client.exists(cache.redis_keys(*bad)["entry"]) == 0
