"""A mutation may come back as the change, not the plan: the result must be the same plan.

The script sends only the changed item when the stored plan was, before the call, the state
the client holds (see the end of ``mutate.lua``); the client applies it to that state.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from deepagents_redis.core import DeepAgentsRedisError, SerializationError
from deepagents_redis.todos import RedisTodoRepository, TodoList

pytestmark = pytest.mark.integration

_ITEMS = [{"id": f"i{n}", "content": f"c{n}", "status": "pending"} for n in range(5)]


def _count_replies(repo: RedisTodoRepository, seen: dict[str, int]) -> None:
    original = repo._reply

    def spy(scope: str, reply: Any, op_id: str, known: Any) -> TodoList:
        seen["change" if len(reply) == 9 else "plan"] += 1
        return original(scope, reply, op_id, known)

    repo._reply = spy  # type: ignore[method-assign]


def test_every_result_is_the_stored_plan(
    repo: RedisTodoRepository, todos_settings: Any, redis_target: Any
) -> None:
    other = RedisTodoRepository(
        client=redis_target.client, settings=redis_target.settings, todos_settings=todos_settings
    )
    seen = {"change": 0, "plan": 0}
    _count_replies(repo, seen)
    rnd = random.Random(7)
    plan = repo.replace("s", _ITEMS)
    for step in range(150):
        # Another client writes now and then: this one's state is then stale.
        who = other if rnd.random() < 0.15 else repo
        ids = plan.ids
        pick = rnd.random()
        try:
            if pick < 0.3 or len(ids) < 3:
                metadata = rnd.choice([None, {"a": [step]}])
                index = rnd.choice([None, 0, 2, 99])
                plan = who.add("s", f"new {step}", index=index, metadata=metadata)
            elif pick < 0.55:
                status = rnd.choice(["pending", "completed"])
                metadata = rnd.choice([None, {"b": step}])
                plan = who.update("s", rnd.choice(ids), status=status, metadata=metadata)
            elif pick < 0.65:
                plan = who.claim("s", rnd.choice(ids), "w", 60)
            elif pick < 0.75:
                plan = who.complete("s", rnd.choice(ids))
            elif pick < 0.9:
                plan = who.remove("s", rnd.choice(ids))
            else:
                plan = who.replace("s", _ITEMS)
        except DeepAgentsRedisError:
            plan = repo.get("s")
        assert plan == repo.get("s"), step
        _assert_index_describes_items(redis_target.client.hgetall(repo.plan_key("s")))
    assert seen["change"] > 50
    assert seen["plan"] > 5
    other.close()


def _assert_index_describes_items(fields: dict[Any, Any]) -> None:
    """The stored index is current and framed as the script writes it (so it is reused)."""
    fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
    raw, index_raw = fields["items"], fields["index"]
    index = json.loads(index_raw)
    items = json.loads(raw)
    assert index["v"] == int(fields["version"])
    assert index["ids"] == [item["id"] for item in items]
    pos, cut = 1, []
    for n in index["lens"]:
        cut.append(json.loads(raw[pos : pos + n]))
        pos += n + 1
    assert cut == items
    frame = json.dumps(
        {"v": index["v"], "ids": index["ids"], "lens": index["lens"]},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert json.loads(frame) == json.loads(index_raw)
    assert index_raw.startswith(b'{"v":' + fields["version"] + b',"ids":[')


def test_reused_ids_text_keeps_odd_ids_exact(repo: RedisTodoRepository, redis_target: Any) -> None:
    odd = ['a"b', "c,d", 'e],"lens":[1', "\\", "ünï", "f\n", '"]}']
    plan = repo.replace("s", [{"id": i, "content": "x", "status": "pending"} for i in odd[:3]])
    for item_id in odd[3:]:
        plan = repo.add("s", "more", item_id=item_id)
    for item_id in odd:
        plan = repo.update("s", item_id, status="completed")
        assert plan == repo.get("s")
        _assert_index_describes_items(redis_target.client.hgetall(repo.plan_key("s")))
    assert plan.ids == odd


def test_results_share_no_mutable_state(repo: RedisTodoRepository) -> None:
    repo.replace("s", _ITEMS)
    first = repo.update("s", "i0", metadata={"k": [1]})
    for item in first.items:
        item.metadata["poison"] = True
    first.items[0].metadata["k"].append(2)
    second = repo.update("s", "i1", status="completed")
    assert second == repo.get("s")
    assert all("poison" not in item.metadata for item in second.items)
    assert second.items[0].metadata == {"k": [1]}
    assert all(a is not b for a, b in zip(first.items, second.items, strict=True))


@pytest.mark.parametrize(
    ("kind", "k", "item"),
    [
        (b"u", 99, b'{"id":"x","content":"c","status":"pending"}'),
        (b"a", 0, b'{"id":"x","content":"c","status":"pending"}'),
        (b"r", 6, b""),
        (b"z", 1, b""),
        (b"u", 1, b'{"id":"x","content":"c","status":"evil"}'),
        (b"u", 1, b"[1]"),
        (b"u", 1, b"{"),
        (b"a", b"1", b'{"id":"x","content":"c","status":"pending"}'),
    ],
)
def test_a_bad_change_reply_is_a_typed_error(
    repo: RedisTodoRepository, kind: bytes, k: Any, item: bytes
) -> None:
    repo.replace("s", _ITEMS)
    plan = repo.update("s", "i0", status="completed")
    known = repo._known["s"]
    reply = [plan.version + 1, plan.version + 1, None, 1, b"op", kind, k, item, 10]
    with pytest.raises(SerializationError):
        repo._reply("s", reply, "op", known)
    with pytest.raises(SerializationError):
        repo._reply("s", reply, "op", None)
