"""`RedisSaver` against `InMemorySaver`: the same calls, the same answers.

Random (seeded) threads, checkpoint namespaces and metadata, with hostile characters in ids
(braces, ':', tabs, pattern characters, unicode); then random `list` queries (config,
namespace, checkpoint id, filter, before, limit) and random `put_writes` (special writes,
repeated task and index). Within one namespace the order is the same; across namespaces
`InMemorySaver` orders per namespace and we by id (as PostgresSaver), so results compare as
sets there. Filters match as `InMemorySaver`'s Python ``==`` does: ``True == 1 == 1.0``, at
any depth.
"""

from __future__ import annotations

import random
import uuid
from decimal import Decimal
from typing import Any

import pytest
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.core import RedisConnector
from langgraph.checkpoint.base import WRITES_IDX_MAP, BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver

NAMESPACES = ["", "a", "a:b|c", "{x}", "é☃", "a\tb", "*?[]\\", "b"]
THREADS = ["t1", "{t}", "t:2", "ü", "1", "a b"]
VALUES: list[Any] = [
    *(0, 1, 2, None, "x", "1", 1.0, {"k": 1}, {"k": [1, 2]}, [1, 2], "é"),
    *(True, False, 0.0, {"k": True}, {"k": 1.0}, [True, 2.0], (1, 2), {"k": [1.0, True]}),
]


def _both(connector: RedisConnector) -> tuple[RedisSaver, InMemorySaver]:
    return RedisSaver(connector=connector, namespace=f"n{uuid.uuid4().hex[:8]}"), InMemorySaver()


def _fill(
    savers: tuple[BaseCheckpointSaver[Any], ...], rnd: random.Random, n: int
) -> tuple[list[str], list[dict[str, Any]]]:
    ids: list[str] = []
    configs: list[dict[str, Any]] = []
    for i in range(n):
        cp = empty_checkpoint()
        cp["id"] = str(uuid6(clock_seq=i))
        cp["channel_values"] = {"c": i}
        cp["channel_versions"] = {"c": f"{i + 1:032}.0"}
        md = {"source": rnd.choice(["loop", "input"]), "step": rnd.choice(VALUES)}
        if rnd.random() < 0.7:
            md["k2"] = rnd.choice(VALUES)
        config = {
            "configurable": {
                "thread_id": rnd.choice(THREADS),
                "checkpoint_ns": rnd.choice(NAMESPACES),
            }
        }
        for saver in savers:
            stored = saver.put(config, cp, dict(md), dict(cp["channel_versions"]))  # type: ignore[arg-type]
        ids.append(cp["id"])
        configs.append(stored)  # type: ignore[arg-type]
    return ids, configs


def _rows(saver: BaseCheckpointSaver[Any], query: dict[str, Any]) -> list[str]:
    return [
        repr(
            (
                t.config["configurable"],
                t.metadata,
                t.checkpoint["channel_values"],
                t.parent_config,
            )
        )
        for t in saver.list(**query)
    ]


@pytest.mark.parametrize("seed", [7, 11])
def test_list_answers_as_in_memory_saver(connector: RedisConnector, seed: int) -> None:
    rnd = random.Random(seed)
    ours, reference = _both(connector)
    ids, _ = _fill((ours, reference), rnd, 60)
    for _ in range(300):
        config = None
        conf: dict[str, Any] = {}
        if rnd.random() < 0.9:
            conf["thread_id"] = rnd.choice(THREADS)
            if rnd.random() < 0.5:
                conf["checkpoint_ns"] = rnd.choice(NAMESPACES)
            if rnd.random() < 0.1:
                conf["checkpoint_id"] = rnd.choice(ids)
            config = {"configurable": conf}
        query: dict[str, Any] = {"config": config, "limit": rnd.choice([None, 0, 1, 3, 10, -1])}
        if rnd.random() < 0.5:
            query["filter"] = {rnd.choice(["step", "k2", "source", "zz"]): rnd.choice(VALUES)}
        if rnd.random() < 0.3:
            query["before"] = {"configurable": {"checkpoint_id": rnd.choice(ids)}}
        got, want = _rows(ours, query), _rows(reference, query)
        if "checkpoint_ns" in conf:  # one namespace of one thread: the same order
            assert got == want, query
        elif query["limit"] is None:
            assert sorted(got) == sorted(want), query
        else:
            assert len(got) == len(want), query


@pytest.mark.parametrize(
    ("stored", "wanted"),
    [
        (1, True),
        (True, 1),
        (0, False),
        (False, 0.0),
        (True, 1.0),
        ({"k": 1}, {"k": True}),
        ({"k": [True, 2]}, {"k": [1, 2.0]}),
        ([1.0, {"a": False}], [1, {"a": 0}]),
        ({"k": 2.5}, {"k": 2.5}),
        (True, "true"),
        (1, "1"),
        ({1: "a"}, {True: "a"}),
        # a stored value with no canonical text, Python-equal to a filter that has one: the
        # server found no field for it and matched only a filter of None
        (Decimal(1), 1),
        (Decimal("2.5"), 2.5),
        ({"k": Decimal(1)}, {"k": True}),
        ([Decimal(0), "x"], [False, "x"]),
    ],
)
def test_filter_matches_as_python_equality(
    connector: RedisConnector, stored: Any, wanted: Any
) -> None:
    # A filter matches what Python's == matches in InMemorySaver ({"flag": True} finds a
    # stored 1, and {"step": 1} a stored True); the server compared JSON texts and missed them.
    ours, reference = _both(connector)
    cp = empty_checkpoint()
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    for saver in (ours, reference):
        saver.put(config, cp, {"v": stored}, {})  # type: ignore[arg-type, typeddict-unknown-key]
    query: dict[str, Any] = {"config": None, "filter": {"v": wanted}}
    want = _rows(reference, query)
    assert len(want) == (0 if isinstance(wanted, str) else 1)  # the case is what it says
    assert _rows(ours, query) == want
    query["config"] = {"configurable": {"thread_id": "t"}}
    assert _rows(ours, query) == _rows(reference, query) == want


def test_pending_writes_as_in_memory_saver(connector: RedisConnector) -> None:
    rnd = random.Random(3)
    ours, reference = _both(connector)
    _, configs = _fill((ours, reference), rnd, 6)
    channels = ["a", "b", *WRITES_IDX_MAP]
    for _ in range(80):
        config = rnd.choice(configs)
        task = rnd.choice(["t1", "t2", "x\ty", "", "{z}:1"])
        path = rnd.choice(["", "~a"])
        writes = [(rnd.choice(channels), rnd.randrange(100)) for _ in range(rnd.randrange(4))]
        for saver in (ours, reference):
            saver.put_writes(config, writes, task, path)
        for each in configs:
            got, want = ours.get_tuple(each), reference.get_tuple(each)
            assert got is not None
            assert want is not None
            assert sorted(map(repr, got.pending_writes or [])) == sorted(
                map(repr, want.pending_writes or [])
            )
