"""clear() and generations under damage: an empty counter, a counter of another type, an
answer computed across a clear, and the client-side layer's byte bound."""

from __future__ import annotations

import time
from typing import Any

import pytest
from deepagents_redis.cache import RedisLLMCache, _llm
from deepagents_redis.core import RedisSettings, SerializationError
from langchain_core.language_models.llms import LLM as TextLLM
from langchain_core.outputs import Generation

pytestmark = pytest.mark.integration

PROMPT, LLM = "a question", "model=fake"
ANSWER = [Generation(text="an answer")]
FRESH = [Generation(text="a fresh answer")]


async def _clear(cache: Any, use_async: bool, *args: Any) -> None:
    if use_async:
        await cache.aclear(*args)
    else:
        cache.clear(*args)


async def _lookup(cache: Any, use_async: bool, prompt: str = PROMPT) -> Any:
    return await cache.alookup(prompt, LLM) if use_async else cache.lookup(prompt, LLM)


async def _update(cache: Any, use_async: bool, value: Any, prompt: str = PROMPT) -> None:
    if use_async:
        await cache.aupdate(prompt, LLM, value)
    else:
        cache.update(prompt, LLM, value)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_clear_repairs_an_empty_counter_with_a_fresh_generation(
    make_llm_cache: Any, make_node_cache: Any, redis_target: Any, use_async: bool
) -> None:
    # An empty counter (a restore or another tool left '') reads as generation 0, but INCR
    # refuses it, so clear() raised SerializationError and the namespace could not be
    # cleared at all: the documented way out was to repair the counter by hand. clear() now
    # makes it a fresh generation in its script (the server clock in µs: above every
    # generation counted from 0, so entries stored before the counter was emptied stay
    # unreachable too), and the namespace works on.
    client = redis_target.client
    cache = make_llm_cache(namespace=f"empty-clear-{use_async}")
    gen = cache.redis_keys(PROMPT, LLM)["generation"]
    cache.update(PROMPT, LLM, ANSWER)
    client.set(gen, b"7")
    cache.update("older", LLM, ANSWER)  # stored under generation 7
    client.set(gen, b"")
    assert cache.lookup(PROMPT, LLM) == ANSWER  # generation 0 while the counter is empty
    await _clear(cache, use_async)
    fresh = int(client.get(gen))
    assert fresh > 10**15
    assert await _lookup(cache, use_async) is None
    assert cache.lookup("older", LLM) is None
    await _update(cache, use_async, FRESH)
    assert await _lookup(cache, use_async) == FRESH
    await _clear(cache, use_async)  # and plain INCRs from there
    assert int(client.get(gen)) == fresh + 1

    node = make_node_cache()
    empty, sound = ("empty", str(use_async)), ("sound", str(use_async))
    node.set({(empty, "k"): ("E", 60), (sound, "k"): ("S", 60)})
    empty_gen = node.redis_keys(empty, "k")["generation"]
    sound_gen = node.redis_keys(sound, "k")["generation"]
    client.set(empty_gen, b"")
    client.set(sound_gen, b"5")
    assert node.get([(empty, "k")]) == {(empty, "k"): "E"}
    for namespaces in ([empty, sound], None):  # the ones named, and every registered one
        await _clear(node, use_async, namespaces)
        assert node.get([(empty, "k"), (sound, "k")]) == {}
    assert int(client.get(empty_gen)) > 10**15
    assert client.get(sound_gen) == b"7"


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_clear_still_refuses_a_counter_of_another_type_or_foreign_text(
    make_llm_cache: Any, make_node_cache: Any, redis_target: Any, use_async: bool
) -> None:
    # What may be someone else's data under a colliding key is never overwritten by a clear:
    # a list, or a non-empty string INCR never writes. An empty counter in the same node
    # clear is not bumped either (nothing changes when the call is refused).
    client = redis_target.client
    cache = make_llm_cache(namespace=f"foreign-clear-{use_async}")
    gen = cache.redis_keys(PROMPT, LLM)["generation"]
    client.rpush(gen, b"theirs")
    with pytest.raises(SerializationError, match="generation counter"):
        await _clear(cache, use_async)
    assert client.lrange(gen, 0, -1) == [b"theirs"]

    node = make_node_cache()
    empty, text = ("empty-foreign", str(use_async)), ("text-foreign", str(use_async))
    empty_gen = node.redis_keys(empty, "k")["generation"]
    text_gen = node.redis_keys(text, "k")["generation"]
    client.set(empty_gen, b"")
    client.set(text_gen, b"their value")
    with pytest.raises(SerializationError):
        await _clear(node, use_async, [empty, text])
    assert client.get(empty_gen) == b""
    assert client.get(text_gen) == b"their value"


@pytest.mark.parametrize("kind", ["list", "hash"])
@pytest.mark.parametrize("strict", [False, True], ids=["fail-open", "strict"])
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_node_entries_under_a_counter_of_another_type_are_not_served(
    make_node_cache: Any,
    redis_target: Any,
    recorder: Any,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    strict: bool,
    use_async: bool,
) -> None:
    # MGET answers nil for a counter of another type as for an absent one, so the node cache
    # served the namespace's generation-0 entries under a list or hash someone wrote there,
    # where the LLM cache serves nothing under such a counter (test_foreign_keys.py). Now
    # they are misses counted corrupt, with a warning naming the counter, strict or not.
    client = redis_target.client
    node = make_node_cache(strict=strict)
    ns = ("counter-type", kind, str(strict), str(use_async))
    other = (*ns, "other")
    node.set({(ns, "a"): ("A", 60), (ns, "b"): ("B", 60), (other, "c"): ("C", 60)})
    gen = node.redis_keys(ns, "a")["generation"]
    client.delete(gen)
    if kind == "list":
        client.rpush(gen, b"x")
    else:
        client.hset(gen, "f", "v")
    asked = [(ns, "a"), (ns, "b"), (ns, "absent"), (other, "c")]
    got = await node.aget(asked) if use_async else node.get(asked)
    assert got == {(other, "c"): "C"}  # the other namespace is served
    assert recorder.total("node_cache.get", outcome="corrupt") == 2
    assert recorder.total("node_cache.get", outcome="hit") == 1
    assert recorder.total("node_cache.get", outcome="miss") == 3
    assert recorder.total("node_cache.get", outcome="error") == 0
    assert "holds another data type" in caplog.text
    assert gen in caplog.text


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_node_entries_under_an_absent_counter_are_still_generation_zero(
    make_node_cache: Any, redis_target: Any, recorder: Any, use_async: bool
) -> None:
    # Deleting the counter brings generation-0 entries back (documented); entries written
    # before sets created the counter are served the same way, after a TYPE check. A set
    # creates the counter, so a namespace's hits are one MGET again.
    client = redis_target.client
    node = make_node_cache()
    ns = ("absent-counter", str(use_async))
    node.set({(ns, "a"): ("A", 60)})
    gen = node.redis_keys(ns, "a")["generation"]
    assert client.get(gen) == b"0"  # created by the set
    client.delete(gen)
    got = await node.aget([(ns, "a")]) if use_async else node.get([(ns, "a")])
    assert got == {(ns, "a"): "A"}
    assert recorder.total("node_cache.get", outcome="hit") == 1
    assert recorder.total("node_cache.get", outcome="corrupt") == 0


@pytest.mark.parametrize("single_flight", [True, False], ids=["single-flight", "no-sf"])
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_an_answer_computed_across_a_clear_is_not_stored_after_it(
    make_llm_cache: Any, redis_target: Any, recorder: Any, single_flight: bool, use_async: bool
) -> None:
    # A lookup misses, the model runs, clear() happens, the update comes: it stored the
    # pre-clear answer under the post-clear generation, so the clear did not drop it. Now
    # the update carries the generation its lookup saw and the write script drops it when
    # the generation moved (counted cache.update outcome=stale), releasing the lease.
    client = redis_target.client
    ns = f"across-clear-{single_flight}-{use_async}"
    cache = make_llm_cache(namespace=ns, single_flight=single_flight)
    keys = cache.redis_keys(PROMPT, LLM)
    assert await _lookup(cache, use_async) is None  # a miss: the model would run now
    await _clear(make_llm_cache(namespace=ns), use_async)  # another worker clears
    # Another caller asks after the clear and stores its fresh answer first.
    other = make_llm_cache(namespace=ns, single_flight=False)
    assert other.lookup(PROMPT, LLM) is None
    other.update(PROMPT, LLM, FRESH)
    await _update(cache, use_async, ANSWER)  # the answer from before the clear
    assert other.lookup(PROMPT, LLM) == FRESH  # not overwritten by the stale answer
    assert recorder.total("cache.update", outcome="stale") == 1
    assert client.exists(keys["lease"]) == 0  # its own lease is released all the same
    # Without a clear in between, a miss's update is stored as before.
    assert cache.lookup("another", LLM) is None
    cache.update("another", LLM, ANSWER)
    assert cache.lookup("another", LLM) == ANSWER
    # An update without a lookup (warming the cache) stores under the current generation.
    cache.update("warm", LLM, ANSWER)
    assert cache.lookup("warm", LLM) == ANSWER


@pytest.mark.parametrize("single_flight", [True, False], ids=["single-flight", "no-sf"])
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_prompt_twice_in_one_batch_across_a_clear_is_not_stored_after_it(
    make_llm_cache: Any, recorder: Any, single_flight: bool, use_async: bool
) -> None:
    # BaseLLM.generate / agenerate look every prompt of a batch up first (same thread or
    # task), call the model for the misses, then update once per missing index: a prompt
    # twice in the batch has two lookups and two updates. The first update took the
    # generation its miss noted, so the second found none and stored the pre-clear answer
    # under the post-clear generation: it was served after the clear.
    ns = f"dup-batch-{single_flight}-{use_async}"
    cache = make_llm_cache(namespace=ns, single_flight=single_flight)
    assert await _lookup(cache, use_async) is None
    assert await _lookup(cache, use_async) is None
    await _clear(make_llm_cache(namespace=ns), use_async)  # while the model runs
    await _update(cache, use_async, ANSWER)
    await _update(cache, use_async, ANSWER)
    assert await _lookup(cache, use_async) is None
    assert recorder.total("cache.update", outcome="stale") == 2
    # That owner's next miss notes the new generation: its updates are stored again.
    await _update(cache, use_async, FRESH)
    assert await _lookup(cache, use_async) == FRESH


class _ClearingLLM(TextLLM):
    """A model that clears its cache during its first call (another worker would)."""

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "clearing-fake"

    def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any) -> str:
        self.calls += 1
        if self.calls == 1:
            assert isinstance(self.cache, RedisLLMCache)
            self.cache.clear()
        return f"answer {self.calls}"

    async def _acall(
        self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> str:
        self.calls += 1
        if self.calls == 1:
            assert isinstance(self.cache, RedisLLMCache)
            await self.cache.aclear()
        return f"answer {self.calls}"


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_generate_with_a_duplicate_prompt_across_a_clear(
    make_llm_cache: Any, use_async: bool
) -> None:
    # The same through LangChain's own BaseLLM.generate / agenerate: the batch's answers,
    # computed across a clear, are not served after it; the next call's are.
    llm = _ClearingLLM(cache=make_llm_cache(namespace=f"dup-generate-{use_async}"))

    async def generate(prompts: list[str]) -> list[str]:
        result = await llm.agenerate(prompts) if use_async else llm.generate(prompts)
        return [g[0].text for g in result.generations]

    assert await generate(["q", "q"]) == ["answer 1", "answer 2"]
    assert await generate(["q"]) == ["answer 3"]  # the model again, not a pre-clear answer
    assert await generate(["q", "q"]) == ["answer 3", "answer 3"]  # served from the cache
    assert llm.calls == 3


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_hit_after_a_miss_keeps_the_miss_generation_and_a_new_miss_replaces_it(
    make_llm_cache: Any, recorder: Any, use_async: bool
) -> None:
    ns = f"hit-after-miss-{use_async}"
    cache = make_llm_cache(namespace=ns, single_flight=False)
    other = make_llm_cache(namespace=ns, single_flight=False)
    # A batch [P, P] whose first lookup misses and whose second hits (another worker
    # stored P in between): the one update, for the missing index, still checks the
    # generation of that miss, so a clear before it drops the pre-clear answer.
    assert await _lookup(cache, use_async) is None
    other.update(PROMPT, LLM, FRESH)
    assert await _lookup(cache, use_async) == FRESH
    other.clear()
    await _update(cache, use_async, ANSWER)
    assert await _lookup(cache, use_async) is None
    assert recorder.total("cache.update", outcome="stale") == 1
    # The note a hit left does not make a later miss's update wrong: that miss replaces it.
    await _update(cache, use_async, ANSWER)  # after the miss just above: stored
    assert await _lookup(cache, use_async) == ANSWER  # a hit; the note is the last miss's
    other.clear()
    assert await _lookup(cache, use_async) is None  # a new miss, after the clear
    await _update(cache, use_async, FRESH)
    assert await _lookup(cache, use_async) == FRESH
    assert recorder.total("cache.update", outcome="stale") == 1
    # An update without a lookup of its own (warming) stores under the current generation.
    await _update(cache, use_async, ANSWER, prompt="warm")
    assert await _lookup(cache, use_async, prompt="warm") == ANSWER


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_the_noted_generations_are_bounded_oldest_first(
    make_llm_cache: Any, monkeypatch: pytest.MonkeyPatch, use_async: bool
) -> None:
    # At the bound, a miss of an entry already noted dropped another entry's note (whose
    # update then stored across a clear), and a re-noted entry kept its old place, so it
    # was dropped first although its miss was the latest. Only a new entry makes room now,
    # and the oldest note goes.
    monkeypatch.setattr(_llm, "_MAX_SEEN", 3)
    ns = f"seen-bound-{use_async}"
    cache = make_llm_cache(namespace=ns, single_flight=False)
    for prompt in ("a", "b", "c", "b", "a", "d"):  # notes a, b, c; b, a again; d drops c
        assert await _lookup(cache, use_async, prompt) is None
    assert len(cache._seen) == 3
    await _clear(make_llm_cache(namespace=ns), use_async)
    for prompt in ("a", "b", "d"):  # still noted: the clear drops their answers
        await _update(cache, use_async, ANSWER, prompt)
        assert await _lookup(cache, use_async, prompt) is None


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_completed_misses_do_not_push_out_the_note_of_a_call_still_running(
    make_llm_cache: Any, monkeypatch: pytest.MonkeyPatch, use_async: bool
) -> None:
    # A note kept after its update: the misses this owner completed meanwhile (looked up,
    # answered, updated) filled the bound and pushed out the note of P, whose model was
    # still running; P's update then went unchecked and stored its pre-clear answer.
    monkeypatch.setattr(_llm, "_MAX_SEEN", 4)
    ns = f"in-flight-{use_async}"
    cache = make_llm_cache(namespace=ns, single_flight=False)
    assert await _lookup(cache, use_async) is None  # P's model runs from here
    for i in range(8):  # other requests of the same thread or task, completed
        assert await _lookup(cache, use_async, f"q{i}") is None
        await _update(cache, use_async, FRESH, f"q{i}")
    assert len(cache._seen) == 1  # only P's note: the completed misses left none
    await _clear(make_llm_cache(namespace=ns), use_async)
    await _update(cache, use_async, ANSWER)  # P's answer, computed before the clear
    assert await _lookup(cache, use_async) is None


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_an_update_long_after_its_miss_was_updated_is_not_checked_again(
    make_llm_cache: Any, recorder: Any, use_async: bool
) -> None:
    # A miss, its update, a clear, then an update of the same entry with no miss before it
    # (a cache warmed by hand): the note kept after the first update dropped the second as
    # stale, a lost write, until the owner missed the entry again.
    ns = f"long-after-{use_async}"
    cache = make_llm_cache(namespace=ns, single_flight=False)
    assert await _lookup(cache, use_async) is None
    await _update(cache, use_async, ANSWER)
    await _clear(make_llm_cache(namespace=ns), use_async)
    await _update(cache, use_async, FRESH)
    assert await _lookup(cache, use_async) == FRESH
    assert recorder.total("cache.update", outcome="stale") == 0


def _eventually(fn: Any, *, attempts: int = 250) -> bool:
    for _ in range(attempts):  # bounded: 250 * 20 ms = 5 s
        if fn():
            return True
        time.sleep(0.02)
    return False


def test_the_client_side_layer_is_bounded_in_bytes(redis_settings: RedisSettings) -> None:
    # The layer was bounded by entry count only (10,000 by default): a few large answers
    # held any amount of memory. Now it also keeps at most client_side_cache_max_bytes of
    # entries (their stored length), dropping the least recently used; an entry larger than
    # the bound alone is served from Redis and never kept.
    bound = 100_000
    big = [[Generation(text=str(i) * 30_000)] for i in range(5)]  # ~30 KB stored each
    writer = RedisLLMCache(settings=redis_settings, namespace="csc-bytes")
    near = RedisLLMCache(
        settings=redis_settings,
        namespace="csc-bytes",
        client_side_cache=True,
        cache_settings=writer.settings.with_overrides(client_side_cache_max_bytes=bound),
    )
    tiny = RedisLLMCache(
        settings=redis_settings,
        namespace="csc-bytes",
        client_side_cache=True,
        cache_settings=writer.settings.with_overrides(client_side_cache_max_bytes=20_000),
    )
    try:
        layer, tiny_layer = near.client_side_cache, tiny.client_side_cache
        assert layer is not None
        assert tiny_layer is not None
        assert layer.wait_ready(10)
        assert tiny_layer.wait_ready(10)
        for i, value in enumerate(big):
            writer.update(f"p{i}", LLM, value)

        def filled() -> bool:
            for i, value in enumerate(big):
                assert near.lookup(f"p{i}", LLM) == value
                assert tiny.lookup(f"p{i}", LLM) == value
            entries = [near.redis_keys(f"p{i}", LLM)["entry"] for i in range(5)]
            return len(layer) == 3 and all(layer.get(e) is not None for e in entries[2:])

        assert _eventually(filled), (len(layer), layer.nbytes)
        assert layer.nbytes <= bound
        assert len(tiny_layer) == 0
        assert tiny_layer.nbytes == 0
        near.clear()
        assert layer.nbytes == 0
    finally:
        for cache in (writer, near, tiny):
            cache.close()
