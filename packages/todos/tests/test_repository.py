"""RedisTodoRepository on a real server, standalone and cluster."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from deepagents_redis.core import ConflictError, InvalidInputError, NotFoundError
from deepagents_redis.todos import (
    ItemClaimedError,
    RedisTodoRepository,
    Todo,
    TodosSettings,
    TooManyItemsError,
)

pytestmark = pytest.mark.integration


def test_empty_plan_reads_as_version_zero(repo: RedisTodoRepository) -> None:
    plan = repo.get("nothing-here")
    assert plan.version == 0
    assert plan.items == []
    assert plan.scope == "nothing-here"
    assert repo.history("nothing-here") == []


def test_operations_bump_version_and_log(repo: RedisTodoRepository) -> None:
    scope = "t:1 {odd} scope*"
    plan = repo.add(scope, "write the report", item_id="a")
    assert plan.version == 1
    assert plan.ids == ["a"]
    plan = repo.add(scope, "review", item_id="b", metadata={"tags": [], "n": 1})
    plan = repo.add(scope, "first", item_id="c", index=0)
    assert plan.ids == ["c", "a", "b"]
    assert plan.version == 3
    assert plan.get("b") is not None
    assert plan.get("b").metadata == {"tags": [], "n": 1}

    plan = repo.update(scope, "a", status="in_progress", content="write the whole report")
    item = plan.get("a")
    assert item is not None
    assert item.status == "in_progress"
    assert item.content == "write the whole report"
    assert item.updated_at is not None

    plan = repo.claim(scope, "b", "worker-1", lease_seconds=60)
    item = plan.get("b")
    assert item is not None
    assert item.owner == "worker-1"
    assert item.status == "in_progress"
    assert item.lease_expires_at is not None
    assert item.lease_expires_at > item.updated_at

    plan = repo.complete(scope, "b", owner="worker-1")
    item = plan.get("b")
    assert item is not None
    assert item.status == "completed"
    assert item.lease_expires_at is None
    plan = repo.remove(scope, "c")
    assert plan.ids == ["a", "b"]
    assert plan.version == 7
    assert repo.get(scope) == plan.model_copy(update={"updated_at": repo.get(scope).updated_at})

    history = repo.history(scope)
    assert [c.op for c in history] == ["add", "add", "add", "update", "claim", "complete", "remove"]
    assert [c.version for c in history] == list(range(1, 8))
    assert history[4].actor == "worker-1"
    assert history[4].item_id == "b"
    assert history[3].detail == {"status": "in_progress", "content": "write the whole report"}
    assert len(repo.history(scope, limit=2)) == 2


def test_expected_version_conflict_changes_nothing(repo: RedisTodoRepository) -> None:
    repo.add("s", "one", item_id="a")
    with pytest.raises(ConflictError) as info:
        repo.update("s", "a", status="completed", expected_version=0)
    assert info.value.expected == 0
    assert info.value.actual == 1
    plan = repo.update("s", "a", status="completed", expected_version=1)
    assert plan.version == 2
    assert len(repo.history("s")) == 2


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda r: r.add("s", "   "), InvalidInputError),
        (lambda r: r.add("s", "x", status="done"), InvalidInputError),
        (lambda r: r.update("s", "a", status="nope"), InvalidInputError),
        (lambda r: r.update("s", "a", content=""), InvalidInputError),
        (lambda r: r.update("s", "a"), InvalidInputError),  # nothing to change
        (lambda r: r.update("s", "zzz", status="completed"), NotFoundError),
        (lambda r: r.remove("s", "zzz"), NotFoundError),
        (lambda r: r.claim("s", "zzz", "w", 10), NotFoundError),
        (lambda r: r.claim("s", "a", "", 10), InvalidInputError),
        (lambda r: r.add("s", "dup", item_id="a"), InvalidInputError),
        (
            lambda r: r.replace("s", [{"id": "x", "content": "a"}, {"id": "x", "content": "b"}]),
            InvalidInputError,
        ),
        (lambda r: r.replace("s", [{"content": "a", "status": "later"}]), InvalidInputError),
        (lambda r: r.replace("s", [{"content": f"i{n}"} for n in range(4)]), TooManyItemsError),
        (lambda r: r.add("s", "over the cap"), TooManyItemsError),
    ],
)
def test_bad_input_is_typed_and_changes_nothing(
    redis_target: Any, call: Any, error: type[Exception]
) -> None:
    repo = RedisTodoRepository(
        client=redis_target.client,
        settings=redis_target.settings,
        todos_settings=TodosSettings(max_items=3),
    )
    repo.replace("s", [{"id": "a", "content": "one"}, {"id": "b", "content": "two"}])
    repo.add("s", "three", item_id="c")
    before = repo.get("s")
    with pytest.raises(error):
        call(repo)
    assert repo.get("s") == before
    assert len(repo.history("s")) == 2


async def test_empty_item_id_and_empty_update_are_refused(
    repo: RedisTodoRepository, arepo: RedisTodoRepository
) -> None:
    # add(item_id="") generated an id (a retry named "" added a second item), and an update
    # with nothing to change bumped the version and logged a change.
    repo.add("e", "first", item_id="a")
    before = repo.get("e")
    for call, says in (
        (lambda: repo.add("e", "second", item_id=""), "item_id must be a non-empty string"),
        (lambda: repo.update("e", "a"), "needs a status, content or metadata"),
        (
            lambda: repo.update("e", "a", expected_version=before.version),
            "needs a status, content or metadata",
        ),
    ):
        with pytest.raises(InvalidInputError, match=says):
            call()
    for acall in (
        lambda: arepo.add("e", "second", item_id=""),
        lambda: arepo.update("e", "a"),
    ):
        with pytest.raises(InvalidInputError):
            await acall()
    assert repo.get("e") == before
    assert len(repo.history("e")) == 1


def test_server_side_validation_without_client_checks(repo: RedisTodoRepository) -> None:
    # Bypass the client's own checks: the script must refuse on its own.
    for payload in (
        {"item": {"id": "x", "content": " ", "status": "pending"}, "index": -1},
        {"item": {"id": "x", "content": "ok", "status": "weird"}, "index": -1},
        {"item": {"content": "no id", "status": "pending"}, "index": -1},
    ):
        with pytest.raises(InvalidInputError):
            repo._mutate("s", "add", payload, expected_version=None, actor=None, op_id=None)
    with pytest.raises(InvalidInputError):
        repo._mutate("s", "explode", {}, expected_version=None, actor=None, op_id=None)
    assert repo.get("s").version == 0


def test_replace_keeps_unset_fields_by_id(repo: RedisTodoRepository) -> None:
    repo.replace(
        "s", [{"id": "a", "content": "one", "metadata": {"k": 1}}, {"id": "b", "content": "two"}]
    )
    repo.claim("s", "a", "w1", 60)
    plan = repo.replace(
        "s", [Todo(id="a", content="one!", status="completed"), {"id": "c", "content": "new"}]
    )
    a = plan.get("a")
    assert a is not None
    assert a.owner == "w1"
    assert a.metadata == {"k": 1}
    assert a.status == "completed"
    assert plan.ids == ["a", "c"]
    plan = repo.replace("s", [{"id": "a", "content": "one!", "status": "completed", "owner": None}])
    a = plan.get("a")
    assert a is not None
    assert a.owner is None
    assert a.lease_expires_at is None
    plan = repo.replace("s", [])
    assert plan.items == []
    assert repo.get("s").items == []


def test_claim_rules(repo: RedisTodoRepository) -> None:
    repo.replace("s", [{"id": "a", "content": "one"}, {"id": "b", "content": "two"}])
    repo.claim("s", "a", "w1", 60)
    with pytest.raises(ItemClaimedError) as info:
        repo.claim("s", "a", "w2", 60)
    assert info.value.owner == "w1"
    assert info.value.item_id == "a"
    assert info.value.actual == 2
    assert isinstance(info.value, ConflictError)
    renewed = repo.claim("s", "a", "w1", 120).get("a")
    assert renewed is not None
    assert renewed.owner == "w1"
    with pytest.raises(ItemClaimedError):
        repo.complete("s", "a", owner="w2")
    repo.complete("s", "a", owner="w1")
    with pytest.raises(InvalidInputError):
        repo.claim("s", "a", "w2", 60)  # completed items cannot be claimed


def test_expired_lease_can_be_taken_over(repo: RedisTodoRepository) -> None:
    import time

    repo.add("s", "one", item_id="a")
    repo.claim("s", "a", "w1", lease_seconds=0.001)
    # The lease is 1 ms of server time; waiting 20 ms guarantees it lapsed (not a timing
    # assertion: the outcome is the same however slow the machine is).
    time.sleep(0.02)
    item = repo.claim("s", "a", "w2", 60).get("a")
    assert item is not None
    assert item.owner == "w2"


def test_same_op_id_applies_once(repo: RedisTodoRepository) -> None:
    first = repo.add("s", "one", item_id="a", op_id="op-1")
    again = repo.add("s", "one", item_id="a", op_id="op-1")
    assert first == again
    assert repo.get("s").version == 1
    assert len(repo.history("s")) == 1


def test_all_keys_of_a_plan_share_one_slot(repo: RedisTodoRepository) -> None:
    from redis.crc import key_slot

    scope = "thread:{weird}:42"
    keys = [repo.plan_key(scope), repo.log_key(scope), repo.keyspace.op_key(scope, "x")]
    assert len({key_slot(k.encode()) for k in keys}) == 1


def _fields(redis_target: Any, key: str) -> dict[str, Any]:
    raw = redis_target.client.hgetall(key)
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}


def test_plan_stored_as_documented_json(repo: RedisTodoRepository, redis_target: Any) -> None:
    import json

    repo.add("s", "one", item_id="a", metadata={"x": [1, 2]})
    repo.add("s", "two", item_id="b", index=0)
    fields = _fields(redis_target, repo.plan_key("s"))
    assert set(fields) == {"version", "items", "updated_ms", "index", "last_op"}
    items = json.loads(fields["items"])
    assert [i["id"] for i in items] == ["b", "a"]
    assert json.loads(items[1]["metadata"]) == {"x": [1, 2]}
    assert redis_target.client.type(repo.log_key("s")) in (b"stream", "stream")
    _assert_indexed(fields)


def _assert_indexed(fields: dict[str, Any]) -> None:
    """The index matches `items`: each length cuts out exactly one item's JSON."""
    import json

    index = json.loads(fields["index"])
    assert index["v"] == int(fields["version"])
    raw: bytes = fields["items"]
    pos, cut = 1, []
    for n in index["lens"]:
        cut.append(json.loads(raw[pos : pos + n]))
        pos += n + 1
    assert cut == json.loads(raw)
    assert index["ids"] == [i["id"] for i in cut]


def test_every_mutation_keeps_the_index_exact(repo: RedisTodoRepository, redis_target: Any) -> None:
    key = repo.plan_key("ix")
    steps = [
        lambda: repo.add("ix", "one", item_id="a"),
        lambda: repo.add("ix", "zwei \u00fc\u00e9 \u4e2d", item_id="b"),
        lambda: repo.add("ix", "first", item_id="c", index=0),
        lambda: repo.add("ix", "middle", item_id="d", index=2),
        lambda: repo.update("ix", "d", content="middle, longer now", metadata={"k": []}),
        lambda: repo.claim("ix", "a", "w", 30),
        lambda: repo.complete("ix", "a"),
        lambda: repo.remove("ix", "c"),
        lambda: repo.remove("ix", "b"),
        lambda: repo.replace("ix", [{"id": "d", "content": "middle, longer now"}]),
        lambda: repo.remove("ix", "d"),
        lambda: repo.add("ix", "again", item_id="e"),
    ]
    for step in steps:
        plan = step()
        fields = _fields(redis_target, key)
        _assert_indexed(fields)
        assert repo.get("ix") == plan


def _old_layout(repo: RedisTodoRepository, redis_target: Any, scope: str) -> None:
    """Store a plan as versions before issue 13 did: one `items` field, a JSON array."""
    import json

    items = [
        {"id": "a", "content": "one", "status": "pending", "updated_at": 1_700_000_000_000},
        {
            "id": "b",
            "content": "two",
            "status": "in_progress",
            "owner": "w",
            "lease_until": 1_700_000_060_000,
            "metadata": json.dumps({"k": []}),
            "updated_at": 1_700_000_000_000,
        },
    ]
    redis_target.client.hset(
        repo.plan_key(scope),
        mapping={"version": 7, "items": json.dumps(items), "updated_ms": 1_700_000_000_000},
    )


@pytest.mark.parametrize("op", ["update", "claim", "complete", "add", "remove", "replace"])
def test_a_plan_in_the_old_layout_is_read_then_rewritten(
    repo: RedisTodoRepository, redis_target: Any, op: str
) -> None:
    scope = f"old-{op}"
    _old_layout(repo, redis_target, scope)
    plan = repo.get(scope)
    assert plan.version == 7
    assert plan.ids == ["a", "b"]
    b = plan.get("b")
    assert b is not None
    assert (b.owner, b.metadata, b.status) == ("w", {"k": []}, "in_progress")
    expected = {
        "update": lambda: repo.update(scope, "a", status="completed"),
        "claim": lambda: repo.claim(scope, "a", "me", 30),
        "complete": lambda: repo.complete(scope, "a"),
        "add": lambda: repo.add(scope, "three", item_id="c"),
        "remove": lambda: repo.remove(scope, "a"),
        "replace": lambda: repo.replace(
            scope, [{"id": "b", "content": "two", "status": "in_progress"}]
        ),
    }[op]()
    assert expected.version == 8
    fields = _fields(redis_target, repo.plan_key(scope))
    _assert_indexed(fields)
    again = repo.get(scope)
    assert again == expected
    kept = again.get("b")
    assert kept is not None
    assert (kept.owner, kept.metadata) == ("w", {"k": []})
    # And the plan goes on in the new layout.
    assert repo.update(scope, "b", status="completed").version == 9


def test_a_stale_index_is_not_used(repo: RedisTodoRepository, redis_target: Any) -> None:
    # A writer of the old layout wrote after this version indexed the plan: the index no
    # longer describes `items` (its version is behind), so the next mutation decodes the
    # plan and indexes it again instead of cutting at stale offsets.
    repo.replace("mixed", [{"id": "z", "content": "a much longer item than the others"}])
    _old_layout(repo, redis_target, "mixed")
    assert repo.get("mixed").ids == ["a", "b"]
    plan = repo.update("mixed", "a", status="completed")
    assert plan.ids == ["a", "b"]
    a = plan.get("a")
    assert a is not None
    assert a.status == "completed"
    _assert_indexed(_fields(redis_target, repo.plan_key("mixed")))


def test_an_index_that_does_not_match_items_is_not_used(
    repo: RedisTodoRepository, redis_target: Any
) -> None:
    import json

    # Something other than the script rewrote the index (same version, lengths that still
    # add up, but cut in the wrong places): the script decodes the plan whole instead.
    repo.replace("bad", [{"id": "a", "content": "one"}, {"id": "b", "content": "two, longer"}])
    key = repo.plan_key("bad")
    index = json.loads(redis_target.client.hget(key, "index"))
    index["lens"] = [index["lens"][1], index["lens"][0]]
    redis_target.client.hset(key, "index", json.dumps(index))
    plan = repo.update("bad", "b", status="completed")
    assert [(i.id, i.status) for i in plan.items] == [("a", "pending"), ("b", "completed")]
    _assert_indexed(_fields(redis_target, key))
    redis_target.client.hset(key, "index", json.dumps(index | {"v": plan.version}))
    plan = repo.add("bad", "zero", item_id="z", index=1)
    assert plan.ids == ["a", "z", "b"]
    _assert_indexed(_fields(redis_target, key))


async def test_async_operations(arepo: RedisTodoRepository) -> None:
    plan = await arepo.areplace("s", [{"id": "a", "content": "one"}])
    assert plan.version == 1
    plan = await arepo.aadd("s", "two", item_id="b", index=0)
    assert plan.ids == ["b", "a"]
    plan = await arepo.aupdate("s", "a", status="in_progress")
    plan = await arepo.aclaim("s", "b", "w", 30)
    with pytest.raises(ItemClaimedError):
        await arepo.aclaim("s", "b", "other", 30)
    plan = await arepo.acomplete("s", "b")
    plan = await arepo.aremove("s", "a")
    assert plan.version == 6
    assert plan.ids == ["b"]
    assert (await arepo.aget("s")).version == 6
    assert [c.op for c in await arepo.ahistory("s")] == [
        "replace",
        "add",
        "update",
        "claim",
        "complete",
        "remove",
    ]
    with pytest.raises(ConflictError):
        await arepo.aadd("s", "x", expected_version=1)


def test_infrastructure_failure_is_unavailable() -> None:
    from deepagents_redis.core import RedisSettings, RedisUnavailableError

    settings = RedisSettings(url="redis://127.0.0.1:1/0", cluster="off", retries=0)
    repo = RedisTodoRepository(settings=settings, retries=0)
    try:
        with pytest.raises(RedisUnavailableError):
            repo.get("s")
        with pytest.raises((RedisUnavailableError, redis.exceptions.ConnectionError)):
            repo.add("s", "x")
    finally:
        repo.close()


@pytest.mark.parametrize("mode", ["warn", "refuse", "off"])
def test_eviction_policy_check(
    redis_server_factory: Any, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    import logging

    from deepagents_redis.core import ConfigurationError, RedisSettings

    server = redis_server_factory(config={"maxmemory-policy": "allkeys-lru"})
    repo = RedisTodoRepository(
        settings=RedisSettings(url=server.url, key_prefix="p"),
        eviction_check=mode,  # type: ignore[arg-type]
    )
    try:
        with caplog.at_level(logging.WARNING, logger="deepagents_redis.todos"):
            if mode == "refuse":
                with pytest.raises(ConfigurationError, match="allkeys-lru"):
                    repo.add("s", "one")
                assert repo.get("s").version == 0
            else:
                repo.add("s", "one")
                repo.add("s", "two")
        warned = [r for r in caplog.records if "can evict todo plans" in r.getMessage()]
        assert len(warned) == (1 if mode == "warn" else 0)
    finally:
        repo.close()


def test_no_eviction_warning_on_noeviction(
    repo: RedisTodoRepository, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with caplog.at_level(logging.WARNING, logger="deepagents_redis.todos"):
        repo.add("s", "one")
    assert not [r for r in caplog.records if "evict" in r.getMessage()]


def test_repository_and_middleware_share_a_connector(redis_settings: Any) -> None:
    from deepagents_redis.core import ConfigurationError, RedisConnector
    from deepagents_redis.todos import RedisTodoMiddleware

    with RedisConnector(settings=redis_settings) as shared:
        repo = RedisTodoRepository(connector=shared)
        middleware = RedisTodoMiddleware(connector=shared)
        assert middleware.repository.connector is shared
        repo.add("shared-plan", "one")
        middleware.close()
        repo.close()
        assert RedisTodoRepository(connector=shared).get("shared-plan").version == 1
        with pytest.raises(ConfigurationError, match="repository= and connector="):
            RedisTodoMiddleware(repository=repo, connector=shared)
        with pytest.raises(ConfigurationError, match="connector= and client="):
            RedisTodoRepository(connector=shared, client=shared.client())


def test_middleware_leaves_a_passed_repository_open(redis_target: Any) -> None:
    from deepagents_redis.todos import RedisTodoMiddleware

    repo = RedisTodoRepository(client=redis_target.client, settings=redis_target.settings)
    with RedisTodoMiddleware(repository=repo) as middleware:
        assert middleware.repository is repo
    assert repo.add("still-open", "works").version == 1


def _plant_index(redis_target: Any, key: str, ids: list[str], lens: list[int]) -> None:
    import json

    version = int(redis_target.client.hget(key, "version"))
    index = {"v": version, "ids": ids, "lens": lens}
    redis_target.client.hset(key, "index", json.dumps(index, separators=(",", ":")))


def test_an_index_whose_ids_or_lengths_lie_is_not_used(
    repo: RedisTodoRepository, redis_target: Any
) -> None:
    # An index at the plan's version whose lengths add up, written by something other than
    # the script, was trusted where no cut checked it: an append to '[]' under an index of
    # one 0-byte item wrote '[,{...}]' (the plan unreadable, the mutation answered with a
    # SerializationError after applying); a replace took each unchanged item's JSON from the
    # index by id, so swapped ids swapped the items; an add checked duplicates in the index's
    # ids only, so an id missing from them was added twice (and one-item ops answered
    # NotFoundError for it).
    key = repo.plan_key("lying")
    repo.replace("lying", [{"id": "a", "content": "one"}])
    repo.remove("lying", "a")
    _plant_index(redis_target, key, ["q"], [0])
    plan = repo.add("lying", "new", item_id="n")
    assert plan.ids == ["n"]
    assert repo.get("lying").ids == ["n"]
    _assert_indexed(_fields(redis_target, key))

    # Items of one length, so swapped ids still add up.
    repo.replace("lying", [{"id": "a", "content": "one"}, {"id": "b", "content": "two"}])
    length = int(json_lens(redis_target, key)[0])
    _plant_index(redis_target, key, ["b", "a"], [length, length])
    plan = repo.replace("lying", [{"id": "a", "content": "one"}, {"id": "b", "content": "two"}])
    assert [(i.id, i.content) for i in plan.items] == [("a", "one"), ("b", "two")]
    assert [(i.id, i.content) for i in repo.get("lying").items] == [("a", "one"), ("b", "two")]
    _assert_indexed(_fields(redis_target, key))

    _plant_index(redis_target, key, ["x", "y"], json_lens(redis_target, key))
    with pytest.raises(InvalidInputError, match="duplicate"):
        repo.add("lying", "again", item_id="a")
    assert repo.get("lying").ids == ["a", "b"]
    # An id missing from that index was NotFoundError; it is looked for in the whole plan.
    plan = repo.update("lying", "b", status="completed")
    assert [(i.id, i.status) for i in plan.items] == [("a", "pending"), ("b", "completed")]
    _assert_indexed(_fields(redis_target, key))


def json_lens(redis_target: Any, key: str) -> list[int]:
    import json

    return list(json.loads(redis_target.client.hget(key, "index"))["lens"])
