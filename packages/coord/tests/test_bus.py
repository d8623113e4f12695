"""EventBus: publish once per key, consumer groups, live tails, foreign entries."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from deepagents_redis.coord import Event, EventBus
from deepagents_redis.core import InvalidInputError, RedisConnector

pytestmark = pytest.mark.integration


@pytest.fixture
def bus(connector: RedisConnector) -> EventBus:
    return EventBus(connector=connector, namespace="bus-tests")


def _event(n: int, **extra: Any) -> Event:
    return Event(source="dar://tests/bus", type="dev.example.n", data={"n": n}, **extra)


def test_publish_dedupes_by_idempotency_key(bus: EventBus) -> None:
    first = bus.publish("orders", _event(1, idempotencykey="order-1"))
    again = bus.publish("orders", _event(1, idempotencykey="order-1"))
    other = bus.publish("orders", _event(2, idempotencykey="order-2"))
    assert again == first != other
    got = bus.read("orders", group="g", consumer="c1")
    assert [e.data for _, e in got] == [{"n": 1}, {"n": 2}]


def test_unkeyed_and_keyed_events_are_stored_alike_and_trimmed(connector: RedisConnector) -> None:
    # An unkeyed event is sent as a plain XADD, a keyed one through the dedupe script: same
    # entry shape, same trimming, and no dedupe without a key.
    bus = EventBus(connector=connector, namespace="bus-trim", maxlen=10)
    client = connector.client()
    stream = bus.keys.topic("t")
    plain = bus.publish("t", _event(1))
    again = bus.publish("t", _event(1))
    keyed = bus.publish("t", _event(2, idempotencykey="k"))
    assert len({plain, again, keyed}) == 3
    rows = client.xrange(stream)
    assert [sorted(fields) for _, fields in rows] == [[b"e"]] * 3
    assert [e.data for _, e in bus._decode_rows(stream, rows)] == [{"n": 1}, {"n": 1}, {"n": 2}]
    for n in range(600):
        bus.publish("t", _event(n, idempotencykey=f"k{n}" if n % 2 else None))
    # MAXLEN ~ trims whole macro nodes (100 entries by default): near 10, never all 603
    assert 10 <= client.xlen(stream) <= 200


def test_consumer_group_gives_each_entry_to_one_consumer(bus: EventBus) -> None:
    for n in range(10):
        bus.publish("jobs", _event(n))
    a = bus.read("jobs", group="g", consumer="a", count=4)
    b = bus.read("jobs", group="g", consumer="b", count=100)
    assert len(a) == 4
    assert len(b) == 6
    assert {e.data["n"] for _, e in a} | {e.data["n"] for _, e in b} == set(range(10))
    assert bus.ack("jobs", "g", *[i for i, _ in a]) == 4
    assert bus.ack("jobs", "g", *[i for i, _ in a]) == 0


def test_unknown_attributes_survive_a_round_trip(bus: EventBus) -> None:
    event = Event.model_validate(
        {
            "source": "s",
            "type": "t",
            "data": None,
            "futureattr": "kept",
            "traceparent": "00-ab-cd-01",
        }
    )
    bus.publish("future", event)
    [(_, got)] = bus.read("future", group="g", consumer="c")
    assert got.model_extra == {"futureattr": "kept"}
    assert got.traceparent == "00-ab-cd-01"
    assert got.specversion == "1.0"


def test_foreign_entries_are_skipped_not_served(bus: EventBus, connector: RedisConnector) -> None:
    stream = bus.keys.topic("mixed")
    raw = connector.client()
    raw.xadd(stream, {"e": b"\x00not-an-envelope"})
    raw.xadd(stream, {"x": b"no e field"})
    bus.publish("mixed", _event(3))
    got = bus.read("mixed", group="g", consumer="c")
    assert [e.data for _, e in got] == [{"n": 3}]


def test_publish_takes_only_events(bus: EventBus) -> None:
    with pytest.raises(InvalidInputError):
        bus.publish("t", {"type": "x"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        bus.publish("bad\x00topic", _event(1))


def test_tail_from_now_and_from_an_id(bus: EventBus) -> None:
    early = bus.publish("live", _event(0))
    seen: list[int] = []
    ready = threading.Event()

    def listen() -> None:
        ready.set()
        for _, event in bus.tail("live", block=0.2):
            seen.append(event.data["n"])
            if len(seen) == 2:
                return

    thread = threading.Thread(target=listen)
    thread.start()
    ready.wait()
    # tail("$") starts after the last entry at the time it starts; give it that moment
    threading.Event().wait(0.3)
    bus.publish("live", _event(1))
    bus.publish("live", _event(2))
    thread.join(timeout=10)
    assert seen == [1, 2]
    replay = []
    for _, event in bus.tail("live", after=early, block=0.1):
        replay.append(event.data["n"])
        if len(replay) == 2:
            break
    assert replay == [1, 2]


async def test_async_publish_read_and_tail(bus: EventBus) -> None:
    await bus.apublish("a", _event(1))
    got = await bus.aread("a", group="g", consumer="c", block=0.1)
    assert [e.data for _, e in got] == [{"n": 1}]
    assert await bus.aack("a", "g", got[0][0]) == 1

    async def first_live() -> int:
        async for _, event in bus.atail("a", block=0.1):
            return int(event.data["n"])
        raise AssertionError("tail ended")

    listener = asyncio.create_task(first_live())
    await asyncio.sleep(0.3)
    await bus.apublish("a", _event(9))
    assert await asyncio.wait_for(listener, 10) == 9


def test_an_oversized_event_is_refused_and_nothing_is_stored(
    bus: EventBus, connector: RedisConnector
) -> None:
    from deepagents_redis.core import PayloadTooLargeError

    with pytest.raises(PayloadTooLargeError):
        bus.publish("big", _event(1, note="x" * (2 * 1024 * 1024)))
    assert connector.client().exists(bus.keys.topic("big")) == 0


def test_topics_and_namespaces_are_separate_keys(connector: RedisConnector) -> None:
    a = EventBus(connector=connector, namespace="a")
    ab = EventBus(connector=connector, namespace="a/b")
    assert (
        len({a.keys.topic("t/x"), ab.keys.topic("x"), a.keys.topic("t"), ab.keys.topic("t")}) == 4
    )
    a.publish("t/x", _event(1))
    assert ab.read("x", group="g", consumer="c") == []
