"""`EventBus` edges found in review: an empty ack, entries a dead consumer left, bad arguments."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from deepagents_redis.coord import Event, EventBus, _bus
from deepagents_redis.core import InvalidInputError, RedisConnector

pytestmark = pytest.mark.integration


def _event(n: int) -> Event:
    return Event(source="dar://tests/bus", type="dev.example.n", data={"n": n})


async def test_acking_an_empty_batch_is_zero(connector: RedisConnector) -> None:
    # The documented loop `bus.ack(topic, group, *[i for i, _ in got])` raised a Redis
    # argument error whenever a read came back empty.
    bus = EventBus(connector=connector, namespace="bus-edges")
    got = bus.read("quiet", group="g", consumer="c", count=10)
    assert got == []
    assert bus.ack("quiet", "g", *[i for i, _ in got]) == 0
    assert await bus.aack("quiet", "g") == 0


async def test_a_dead_consumers_entries_are_claimed_by_another(connector: RedisConnector) -> None:
    # `read` hands each entry to one consumer, at least once: what a consumer read and never
    # acknowledged (it died) is taken over by a live one, and only what idled long enough.
    bus = EventBus(connector=connector, namespace="bus-edges")
    for n in range(5):
        bus.publish("work", _event(n))
    dead = bus.read("work", group="g", consumer="dead", count=3)
    assert [e.data["n"] for _, e in dead] == [0, 1, 2]
    live = bus.read("work", group="g", consumer="live", count=10)
    assert [e.data["n"] for _, e in live] == [3, 4]
    bus.ack("work", "g", *[i for i, _ in live])
    # not idle for an hour: nothing to take over
    assert bus.claim_stale("work", group="g", consumer="live", min_idle=3600) == []
    taken = bus.claim_stale("work", group="g", consumer="live", min_idle=0, count=2)
    assert [e.data["n"] for _, e in taken] == [0, 1]
    assert bus.ack("work", "g", *[i for i, _ in taken]) == 2
    rest = await bus.aclaim_stale("work", group="g", consumer="live", min_idle=0)
    assert [e.data["n"] for _, e in rest] == [2]
    assert bus.ack("work", "g", *[i for i, _ in rest]) == 1
    assert bus.claim_stale("work", group="g", consumer="live", min_idle=0) == []


def test_a_restarted_consumer_reads_what_it_had_not_acknowledged(
    connector: RedisConnector,
) -> None:
    # A consumer that restarts under its own name gets its unacknowledged entries again
    # first (its pending list), then new ones.
    bus = EventBus(connector=connector, namespace="bus-edges")
    for n in range(3):
        bus.publish("jobs", _event(n))
    first = bus.read("jobs", group="g", consumer="c", count=2)
    assert [e.data["n"] for _, e in first] == [0, 1]
    again = bus.read("jobs", group="g", consumer="c", count=10, pending=True)
    assert [e.data["n"] for _, e in again] == [0, 1]
    assert bus.ack("jobs", "g", *[i for i, _ in again]) == 2
    assert bus.read("jobs", group="g", consumer="c", count=10, pending=True) == []
    assert [e.data["n"] for _, e in bus.read("jobs", group="g", consumer="c")] == [2]


def test_pending_entries_trimmed_from_the_topic_do_not_block_the_pending_read(
    connector: RedisConnector,
) -> None:
    bus = EventBus(connector=connector, namespace="bus-edges")
    for n in range(4):
        bus.publish("trimmed", _event(n))
    got = bus.read("trimmed", group="g", consumer="c", count=4)
    assert len(got) == 4
    raw = connector.client()
    stream = bus.keys.topic("trimmed")
    raw.xdel(stream, got[0][0], got[1][0])  # gone from the topic, still pending
    again = bus.read("trimmed", group="g", consumer="c", count=2, pending=True)
    assert again == []  # the two trimmed ones: nothing to hand over, and acknowledged
    again = bus.read("trimmed", group="g", consumer="c", count=2, pending=True)
    assert [e.data["n"] for _, e in again] == [2, 3]
    assert raw.xpending(stream, "g")["pending"] == 2


def test_foreign_pending_entries_do_not_block_the_pending_read(connector: RedisConnector) -> None:
    # A foreign entry (not one of our events) is skipped by `read`, so it is never
    # acknowledged: in the consumer's pending list it would fill every page of
    # `read(pending=True)`, which then looked caught up while real entries waited behind.
    bus = EventBus(connector=connector, namespace="bus-edges")
    raw = connector.client()
    stream = bus.keys.topic("mixed")
    raw.xadd(stream, {"e": b"not an event"})
    raw.xadd(stream, {"other": b"field"})
    bus.publish("mixed", _event(7))
    got = bus.read("mixed", group="g", consumer="c", count=10)
    assert [e.data["n"] for _, e in got] == [7]  # the two foreign ones skipped
    first = bus.read("mixed", group="g", consumer="c", count=2, pending=True)
    assert first == []
    again = bus.read("mixed", group="g", consumer="c", count=2, pending=True)
    assert [e.data["n"] for _, e in again] == [7]


async def test_a_long_idempotency_key_keeps_its_dedupe_record_small(
    connector: RedisConnector,
) -> None:
    # The publisher's key named the dedupe record as it was: a 200 KB key held a 200 KB key
    # name on the server for the whole dedupe window (a day by default).
    bus = EventBus(connector=connector, namespace="bus-edges")
    long_key = "k" * 200_000
    first = Event(source="dar://tests/bus", type="dev.example.n", data={}, idempotencykey=long_key)
    again = Event(source="dar://tests/bus", type="dev.example.n", data={}, idempotencykey=long_key)
    other = Event(
        source="dar://tests/bus", type="dev.example.n", data={}, idempotencykey=long_key + "x"
    )
    got = bus.publish("long", first)
    assert bus.publish("long", again) == got  # still deduplicated
    assert await bus.apublish("long", again) == got
    assert bus.publish("long", other) != got  # and still exact
    client = connector.client()
    prefix = connector.settings.key_prefix
    names = [k for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    assert names
    assert max(len(k) for k in names) < 1_000


_NAN, _INF = float("nan"), float("inf")
_BAD_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("ack", ("t", "", "1-0"), {}),
    ("ack", ("t", None, "1-0"), {}),
    ("ack", ("t", 5, "1-0"), {}),
    ("ack", ("t", "g", ""), {}),
    ("ack", ("t", "g", "junk"), {}),
    ("ack", ("t", "g", None), {}),
    ("ack", ("t", "g", 5), {}),
    ("ack", ("t", "g", b"1-0"), {}),
    ("ack", ("t", "g", "1-2-3"), {}),
    ("ack", ("t", "g", "18446744073709551616-0"), {}),
    ("ack", ("t", "g", "1-0", "junk"), {}),
    ("tail", ("t",), {"after": "junk"}),
    ("tail", ("t",), {"after": ""}),
    ("tail", ("t",), {"after": None}),
    ("tail", ("t",), {"after": "-"}),
    ("tail", ("t",), {"block": -1}),
    ("tail", ("t",), {"block": _NAN}),
    ("tail", ("t",), {"block": _INF}),
    ("tail", ("t",), {"block": None}),
    ("tail", ("t",), {"block": "1"}),
    ("tail", ("t",), {"block": True}),
    ("tail", ("t",), {"count": 0}),
    ("tail", ("t",), {"count": -1}),
    ("tail", ("t",), {"count": 1.5}),
    ("tail", ("t",), {"count": True}),
    ("tail", ("t",), {"stop_when": 5}),
    ("tail", ("t",), {"stream": 5}),
    ("tail", ("t",), {"stream": ""}),
    ("tail", ("",), {}),
    ("read", ("t",), {"group": "g", "consumer": "c", "count": 0}),
    ("read", ("t",), {"group": "g", "consumer": "c", "count": -1}),
    ("read", ("t",), {"group": "g", "consumer": "c", "block": -1}),
    ("read", ("t",), {"group": "g", "consumer": "c", "block": _NAN}),
    ("claim_stale", ("t",), {"group": "g", "consumer": "c", "count": 0}),
    ("claim_stale", ("t",), {"group": "g", "consumer": "c", "min_idle": _INF}),
]


async def _call(fn: Any, *args: Any, **kwargs: Any) -> None:
    """Call `fn`, awaiting what it returns when that is awaitable (an async method)."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        await result


@pytest.mark.parametrize(
    ("method", "args", "kwargs"),
    _BAD_CALLS,
    ids=[f"{m}-{a[1:] or ''}-{k}" for m, a, k in _BAD_CALLS],
)
async def test_bad_bus_arguments_are_invalid_input_before_redis(
    connector: RedisConnector,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    # ack and tail sent what they were given: a bad id or `after` came back as the server's
    # untyped "Invalid stream ID" (None as redis-py's DataError), an empty group was
    # acknowledged as a group of its own, an int id as the id it spells; tail's NaN or None
    # `block` raised a bare ValueError or TypeError at the first read, and count=0 or -1
    # read without a limit (read's too). Now each raises InvalidInputError at the call, and
    # nothing reaches Redis (tail's and atail's iterators are not even made).
    bus = EventBus(connector=connector, namespace="bus-args")
    sent: list[str] = []
    monkeypatch.setattr(_bus, "run_operation", lambda _c, name, *a, **k: sent.append(name))

    async def arun(_c: Any, name: str, *a: Any, **k: Any) -> None:
        sent.append(name)

    monkeypatch.setattr(_bus, "arun_operation", arun)
    with pytest.raises(InvalidInputError):
        getattr(bus, method)(*args, **kwargs)
    with pytest.raises(InvalidInputError):
        await _call(getattr(bus, "a" + method), *args, **kwargs)
    assert sent == []


async def test_a_batch_with_one_bad_id_acknowledges_nothing(connector: RedisConnector) -> None:
    bus = EventBus(connector=connector, namespace="bus-args")
    bus.publish("jobs", _event(1))
    [(good, _)] = bus.read("jobs", group="g", consumer="c")
    for ack in (bus.ack, bus.aack):
        with pytest.raises(InvalidInputError, match="junk"):
            await _call(ack, "jobs", "g", good, "junk")
    assert connector.client().xpending(bus.keys.topic("jobs"), "g")["pending"] == 1
    assert bus.ack("jobs", "g", good) == 1
    # and the good arguments still work: a tail from an id, with a bound, stopping
    got = list(bus.tail("jobs", after="0", block=0, count=1, stop_when=lambda: True))
    assert got == []  # stop_when is checked before the first read: nothing read


async def test_a_tail_reads_past_foreign_entries(connector: RedisConnector) -> None:
    # `tail` moved its cursor only on the entries it yielded: a read whose entries were all
    # foreign (skipped) read them again, at once and for ever. A run of foreign entries as
    # long as `count` stopped the tail before the events behind it, and a foreign entry at
    # the end of the stream made every later read return at once (a busy loop, a warning
    # per read) instead of blocking.
    bus = EventBus(connector=connector, namespace="bus-edges")
    raw = connector.client()
    stream = bus.keys.topic("tailed")
    start = bus.publish("tailed", _event(0))
    raw.xadd(stream, {"e": b"not an event"})
    raw.xadd(stream, {"other": b"field"})
    bus.publish("tailed", _event(1))
    last_foreign = raw.xadd(stream, {"x": b"trailing"}).decode()

    reads = 0

    def bounded() -> bool:
        nonlocal reads
        reads += 1
        return reads > 10

    got = [
        e.data["n"]
        for _, e in bus.tail("tailed", after=start, count=1, block=0.01, stop_when=bounded)
    ]
    assert got == [1]
    async_reads = 0

    def abounded() -> bool:
        nonlocal async_reads
        async_reads += 1
        return async_reads > 10

    agot = [
        e.data["n"]
        async for _, e in bus.atail("tailed", after=start, count=1, block=0.01, stop_when=abounded)
    ]
    assert agot == [1]
    # past the trailing foreign entry, the cursor is at the stream's end: the next read
    # asks for entries after it (spied on the read's own arguments)
    seen: list[str] = []
    real = bus._tail_op

    def spy(key: str, after: str, block_ms: int, count: int) -> Any:
        seen.append(after)
        return real(key, after, block_ms, count)

    bus._tail_op = spy  # type: ignore[method-assign]
    calls = 0

    def three() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    assert list(bus.tail("tailed", after=start, count=10, block=0.01, stop_when=three)) != []
    assert seen[0] == start
    assert seen[1:] == [last_foreign, last_foreign]


async def test_foreign_entries_a_dead_consumer_left_do_not_block_claim_stale(
    connector: RedisConnector,
) -> None:
    # A foreign entry (not one of our events) that a consumer read stays pending: `read`
    # skips it and nobody acknowledges it. `claim_stale` took it over with the rest and
    # skipped it again, still pending: it took a place of `count` on every call, and with
    # min_idle=0 the same foreign entries filled every page while the dead consumer's real
    # events stayed behind them.
    bus = EventBus(connector=connector, namespace="bus-edges")
    raw = connector.client()
    stream = bus.keys.topic("stale-mixed")
    raw.xadd(stream, {"e": b"not an event"})
    raw.xadd(stream, {"other": b"field"})
    bus.publish("stale-mixed", _event(5))
    bus.publish("stale-mixed", _event(6))
    dead = bus.read("stale-mixed", group="g", consumer="dead", count=10)
    assert [e.data["n"] for _, e in dead] == [5, 6]  # the two foreign ones skipped, pending
    assert raw.xpending(stream, "g")["pending"] == 4
    first = bus.claim_stale("stale-mixed", group="g", consumer="live", min_idle=0, count=1)
    assert [e.data["n"] for _, e in first] == [5]
    # the foreign entries were acknowledged; only the real events are pending
    assert raw.xpending(stream, "g")["pending"] == 2
    assert bus.ack("stale-mixed", "g", first[0][0]) == 1
    second = await bus.aclaim_stale("stale-mixed", group="g", consumer="live", min_idle=0)
    assert [e.data["n"] for _, e in second] == [6]
    assert bus.ack("stale-mixed", "g", second[0][0]) == 1
    assert bus.claim_stale("stale-mixed", group="g", consumer="live", min_idle=0) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dedupe_ttl_seconds": 1.5},
        {"dedupe_ttl_seconds": True},
        {"dedupe_ttl_seconds": 0},
        {"dedupe_ttl_seconds": 10**12},  # past any TTL we hand the server
        {"maxlen": 2.5},
        {"maxlen": True},
        {"maxlen": "3"},
        {"maxlen": 0},
    ],
)
def test_bad_bus_options_are_invalid_input_before_anything_is_stored(
    connector: RedisConnector, kwargs: dict[str, Any]
) -> None:
    # A float dedupe window reached the publish script as 'PX 1500.0', refused by the
    # server after the script's XADD: every keyed publish stored its event, raised an
    # untyped error and kept no dedupe record, so a retry stored the event again. A bool,
    # float or str maxlen failed each publish (a TypeError for the str).
    with pytest.raises(InvalidInputError):
        EventBus(connector=connector, namespace="bus-options", **kwargs)
