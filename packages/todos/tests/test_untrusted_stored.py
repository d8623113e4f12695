"""Stored plans are untrusted: hostile bytes in Redis give a typed error, never a bad model.

`parse_plan` / `Todo.from_stored` build models without a pydantic pass (it cost ~10 µs per
item); these tests hold them to what validation guarantees: whatever is stored, the result
is either a valid plan or `SerializationError`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from deepagents_redis.core import DeepAgentsRedisError, InvalidInputError, SerializationError
from deepagents_redis.todos import RedisTodoRepository, Todo, TodoList
from deepagents_redis.todos._repository import parse_plan
from hypothesis import given
from hypothesis import strategies as st

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
FIELD = st.one_of(
    JSON,
    st.sampled_from(["pending", "in_progress", "completed", "", "x"]),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.dictionaries(st.text(max_size=4), JSON, max_size=2).map(json.dumps),
)
HOSTILE_ITEM = st.one_of(
    JSON,
    st.dictionaries(
        st.sampled_from(
            ["id", "content", "status", "owner", "lease_until", "updated_at", "metadata", "x"]
        ),
        FIELD,
    ),
)


def _is_valid(todo: Todo) -> bool:
    return Todo.model_validate(todo.model_dump()) == todo


@given(HOSTILE_ITEM)
def test_from_stored_gives_a_valid_item_or_a_typed_error(raw: Any) -> None:
    try:
        todo = Todo.from_stored(raw)
    except SerializationError:
        return
    assert _is_valid(todo)


@given(st.binary(max_size=64) | st.lists(HOSTILE_ITEM, max_size=3).map(json.dumps))
def test_parse_plan_gives_a_valid_plan_or_a_typed_error(items: Any) -> None:
    for version, updated in ((b"3", b"1700000000000"), (b"x", b"1"), (b"1", b"nan")):
        try:
            plan = parse_plan("s", version, items, updated)
        except SerializationError:
            continue
        assert TodoList.model_validate(plan.model_dump()) == plan


HOSTILE_PLANS = {
    "not utf-8": b"\xff\x00garbage",
    "not json": b"[{",
    "an object": b'{"a":1}',
    "items not objects": b"[1,2]",
    "no id": b'[{"content":"x","status":"pending"}]',
    "unknown status": b'[{"id":"a","content":"x","status":"evil"}]',
    "content not a string": b'[{"id":"a","content":5,"status":"pending"}]',
    "owner not a string": b'[{"id":"a","content":"x","status":"pending","owner":[1]}]',
    "metadata not json": b'[{"id":"a","content":"x","status":"pending","metadata":"{bad"}]',
    "metadata a list": b'[{"id":"a","content":"x","status":"pending","metadata":"[1]"}]',
    "metadata not encoded": b'[{"id":"a","content":"x","status":"pending","metadata":{}}]',
    "time a string": b'[{"id":"a","content":"x","status":"pending","updated_at":"zz"}]',
    "time a bool": b'[{"id":"a","content":"x","status":"pending","updated_at":true}]',
    "time out of range": b'[{"id":"a","content":"x","status":"pending","lease_until":1e300}]',
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.integration
@pytest.mark.parametrize("items", HOSTILE_PLANS.values(), ids=list(HOSTILE_PLANS))
def test_hostile_stored_plan_gives_typed_errors(
    repo: RedisTodoRepository, redis_target: Any, items: bytes
) -> None:
    key = repo.plan_key("hostile")
    for call in (
        lambda: repo.get("hostile"),
        lambda: repo.add("hostile", "more", item_id="new"),
        lambda: repo.update("hostile", "a", status="completed"),
        lambda: repo.remove("hostile", "zz"),
    ):
        redis_target.client.delete(key)
        redis_target.client.hset(key, mapping={"version": 3, "items": items, "updated_ms": 1})
        try:
            plan = call()
        except DeepAgentsRedisError:
            continue
        # A mutation may repair the plan (an update rewrites the item it cuts out); what
        # it returns is then valid.
        assert TodoList.model_validate(plan.model_dump()) == plan
    redis_target.client.delete(key)
    redis_target.client.hset(key, mapping={"version": 3, "items": items, "updated_ms": 1})
    with pytest.raises(SerializationError):
        repo.get("hostile")


def _spoil_log(client: Any, log_key: str, how: str) -> None:
    client.delete(log_key)
    if how == "a string":
        client.set(log_key, b"not a stream")
    elif how == "a hash":
        client.hset(log_key, "f", "v")
    else:  # a stream whose last id is the largest possible: XADD * has no id left to give
        client.xadd(log_key, {"f": "v"}, id="18446744073709551615-18446744073709551615")


HOSTILE_LOGS = ["a string", "a hash", "an exhausted stream"]


def _mutations(repo: RedisTodoRepository, first: str, op_id: str) -> list[Any]:
    return [
        lambda: repo.add("spoiled", "more", op_id=op_id),
        lambda: repo.update("spoiled", first, status="completed", op_id=op_id),
        lambda: repo.claim("spoiled", first, owner="w", lease_seconds=60, op_id=op_id),
        lambda: repo.complete("spoiled", first, op_id=op_id),
        lambda: repo.remove("spoiled", first, op_id=op_id),
        lambda: repo.replace("spoiled", [{"content": "other"}], op_id=op_id),
    ]


def _amutations(repo: RedisTodoRepository, first: str, op_id: str) -> list[Any]:
    return [
        lambda: repo.aadd("spoiled", "more", op_id=op_id),
        lambda: repo.aupdate("spoiled", first, status="completed", op_id=op_id),
        lambda: repo.aclaim("spoiled", first, owner="w", lease_seconds=60, op_id=op_id),
        lambda: repo.acomplete("spoiled", first, op_id=op_id),
        lambda: repo.aremove("spoiled", first, op_id=op_id),
        lambda: repo.areplace("spoiled", [{"content": "other"}], op_id=op_id),
    ]


def _expected_error(how: str) -> type[DeepAgentsRedisError]:
    return SerializationError if how != "an exhausted stream" else DeepAgentsRedisError


@pytest.mark.integration
@pytest.mark.parametrize("how", HOSTILE_LOGS)
def test_a_log_that_refuses_the_entry_changes_nothing(
    repo: RedisTodoRepository, redis_target: Any, how: str
) -> None:
    # The mutation wrote the plan, then its XADD failed: the caller got an error for a change
    # that was applied, without an op record, so each retry with the same op id applied it
    # again (two retries of an add: three items).
    client = redis_target.client
    first = repo.add("spoiled", "first").items[0].id
    before = client.hgetall(repo.plan_key("spoiled"))
    _spoil_log(client, repo.log_key("spoiled"), how)
    for n, mutation in enumerate(_mutations(repo, first, f"op-{how}")):
        for _retry in range(2):
            with pytest.raises(_expected_error(how)):
                mutation()
            assert client.hgetall(repo.plan_key("spoiled")) == before, n
    assert repo.get("spoiled").version == 1


@pytest.mark.integration
@pytest.mark.parametrize("how", HOSTILE_LOGS)
async def test_a_log_that_refuses_the_entry_changes_nothing_async(
    arepo: RedisTodoRepository, redis_target: Any, how: str
) -> None:
    client = redis_target.client
    first = (await arepo.aadd("spoiled", "first")).items[0].id
    before = client.hgetall(arepo.plan_key("spoiled"))
    _spoil_log(client, arepo.log_key("spoiled"), how)
    for n, mutation in enumerate(_amutations(arepo, first, f"op-{how}")):
        for _retry in range(2):
            with pytest.raises(_expected_error(how)):
                await mutation()
            assert client.hgetall(arepo.plan_key("spoiled")) == before, n
    assert (await arepo.aget("spoiled")).version == 1


HOSTILE_ENTRIES = {
    "no version": {"op": "add"},
    "version not a number": {"v": "x", "op": "add"},
    "no op": {"v": "1"},
    "detail not json": {"v": "1", "op": "add", "detail": "{bad"},
    "detail a list": {"v": "1", "op": "add", "detail": "[1]"},
    "detail deeply nested": {"v": "1", "op": "add", "detail": "[" * 100_000 + "]" * 100_000},
    "not utf-8": {"v": "1", "op": b"\xff\xfe"},
}


@pytest.mark.integration
@pytest.mark.parametrize("fields", HOSTILE_ENTRIES.values(), ids=list(HOSTILE_ENTRIES))
async def test_a_hostile_change_log_entry_is_a_serialization_error(
    repo: RedisTodoRepository, arepo: RedisTodoRepository, redis_target: Any, fields: Any
) -> None:
    # Another writer's XADD to the log: history raised KeyError, ValueError, a pydantic
    # ValidationError or RecursionError.
    repo.add("logged", "first")
    redis_target.client.xadd(repo.log_key("logged"), fields)
    with pytest.raises(SerializationError):
        repo.history("logged")
    with pytest.raises(SerializationError):
        await arepo.ahistory("logged")


@pytest.mark.integration
async def test_a_change_log_entry_at_the_largest_id_is_a_serialization_error(
    repo: RedisTodoRepository, arepo: RedisTodoRepository, redis_target: Any
) -> None:
    # Its id's milliseconds are past any datetime: fromtimestamp raised ValueError.
    repo.add("logged", "first")
    redis_target.client.xadd(
        repo.log_key("logged"),
        {"v": "2", "op": "add"},
        id="18446744073709551615-18446744073709551615",
    )
    with pytest.raises(SerializationError):
        repo.history("logged")
    with pytest.raises(SerializationError):
        await arepo.ahistory("logged")


@pytest.mark.integration
@pytest.mark.parametrize("limit", [-1, 1.5, True, "3"])
async def test_history_refuses_a_limit_that_is_not_a_count(
    repo: RedisTodoRepository, arepo: RedisTodoRepository, limit: Any
) -> None:
    repo.add("logged", "first")
    with pytest.raises(InvalidInputError):
        repo.history("logged", limit=limit)
    with pytest.raises(InvalidInputError):
        await arepo.ahistory("logged", limit=limit)


@pytest.mark.integration
async def test_history_of_zero_entries_is_empty(
    repo: RedisTodoRepository, arepo: RedisTodoRepository
) -> None:
    # XREVRANGE ... COUNT 0 answers a null reply: history raised TypeError.
    repo.add("logged", "first")
    assert repo.history("logged", limit=0) == []
    assert await arepo.ahistory("logged", limit=0) == []


LONE = "\ud800"
"""A lone surrogate: what a model's JSON escape "\\ud800" decodes to; no UTF-8 encoder takes it."""


def _unencodable(repo: RedisTodoRepository, first: str, aio: bool) -> list[Any]:
    p = "a" if aio else ""
    call = lambda name, *a, **k: lambda: getattr(repo, p + name)(*a, **k)  # noqa: E731
    return [
        call("add", "u", f"x{LONE}"),
        call("add", "u", "x", item_id=LONE),
        call("add", "u", "x", metadata={"k": LONE}),
        call("add", "u", "x", metadata={LONE: 1}),
        call("add", "u", "x", op_id=LONE),
        call("add", "u", "x", actor=LONE),
        call("update", "u", first, content=LONE),
        call("replace", "u", [{"content": LONE}]),
        call("claim", "u", first, owner=LONE, lease_seconds=60),
        call("complete", "u", first, owner=LONE),
    ]


@pytest.mark.integration
async def test_text_redis_cannot_carry_is_invalid_input_and_changes_nothing(
    repo: RedisTodoRepository, arepo: RedisTodoRepository, redis_target: Any
) -> None:
    # It raised UnicodeEncodeError from the packer (not one of our errors).
    first = repo.add("u", "first").items[0].id
    before = redis_target.client.hgetall(repo.plan_key("u"))
    for mutation in _unencodable(repo, first, aio=False):
        with pytest.raises(InvalidInputError, match="Unicode"):
            mutation()
    for mutation in _unencodable(arepo, first, aio=True):
        with pytest.raises(InvalidInputError, match="Unicode"):
            await mutation()
    assert redis_target.client.hgetall(repo.plan_key("u")) == before


@pytest.mark.integration
@pytest.mark.parametrize("index", [-1, -5, True, 1.0, "0"], ids=repr)
async def test_an_index_that_is_not_a_position_changes_nothing(
    repo: RedisTodoRepository, arepo: RedisTodoRepository, index: Any
) -> None:
    # -1 (Python's "before the last") and True were appended silently.
    repo.replace("placed", [{"content": "a"}, {"content": "b"}])
    with pytest.raises(InvalidInputError, match="index"):
        repo.add("placed", "new", index=index)
    with pytest.raises(InvalidInputError, match="index"):
        await arepo.aadd("placed", "new", index=index)
    plan = repo.get("placed")
    assert [i.content for i in plan.items] == ["a", "b"]
    assert plan.version == 1
    assert [i.content for i in repo.add("placed", "new", index=1).items] == ["a", "new", "b"]


HOSTILE_VERSIONS = [b"abc", b"", b"1.5", b"1e3", b"-1", b" 2", b"1_0", b"0x10", b"9" * 20]


@pytest.mark.integration
@pytest.mark.parametrize("version", HOSTILE_VERSIONS, ids=repr)
async def test_a_plan_whose_version_is_not_a_count_is_refused_unchanged(
    repo: RedisTodoRepository, arepo: RedisTodoRepository, redis_target: Any, version: bytes
) -> None:
    # mutate.lua read the version with tonumber(...) or 0: 'abc' restarted the plan at
    # version 1 (versions repeated), '1e3' jumped to 1001, '1.5' wrote 2.5 (every later read
    # a SerializationError, while each mutation still applied and answered version 2), and
    # get() took '-1', ' 2' or '1_0' (Python's int()) as versions.
    client = redis_target.client
    first = repo.add("spoiled", "first").items[0].id
    client.hset(repo.plan_key("spoiled"), "version", version)
    before = client.hgetall(repo.plan_key("spoiled"))
    with pytest.raises(SerializationError):
        repo.get("spoiled")
    with pytest.raises(SerializationError):
        await arepo.aget("spoiled")
    for n, mutation in enumerate(_mutations(repo, first, "op-v")):
        with pytest.raises(SerializationError, match="version"):
            mutation()
        assert client.hgetall(repo.plan_key("spoiled")) == before, n
    for n, amutation in enumerate(_amutations(arepo, first, "op-av")):
        with pytest.raises(SerializationError, match="version"):
            await amutation()
        assert client.hgetall(repo.plan_key("spoiled")) == before, n
    assert client.xlen(repo.log_key("spoiled")) == 1


PLANTED_ITEMS = {
    "an object": b'{"a":1}',
    "an empty object": b"{}",
    "a string": b'"str"',
    "not json": b"[{",
    "items not objects": b"[1,2]",
    "no id": b'[{"content":"x","status":"pending"}]',
    "id a number": b'[{"id":5,"content":"x","status":"pending"}]',
    "content a number": b'[{"id":"a","content":5,"status":"pending"}]',
    "unknown status": b'[{"id":"a","content":"x","status":"evil"}]',
    "owner a list": b'[{"id":"a","content":"x","status":"pending","owner":[1]}]',
    "metadata a list": b'[{"id":"a","content":"x","status":"pending","metadata":"[1]"}]',
    "metadata not encoded": b'[{"id":"a","content":"x","status":"pending","metadata":{}}]',
    "time a string": b'[{"id":"a","content":"x","status":"pending","updated_at":"zz"}]',
    "time a bool": b'[{"id":"a","content":"x","status":"pending","lease_until":true}]',
    "time out of range": b'[{"id":"a","content":"x","status":"pending","updated_at":1e300}]',
}


@pytest.mark.integration
@pytest.mark.parametrize("items", PLANTED_ITEMS.values(), ids=list(PLANTED_ITEMS))
async def test_a_mutation_over_planted_items_is_refused_unchanged(
    repo: RedisTodoRepository, arepo: RedisTodoRepository, redis_target: Any, items: bytes
) -> None:
    # A plan decoded whole (no index: an older version wrote it) was taken as it came: an
    # add or a replace over '{"a":1}' read it as no items and dropped it, answering success;
    # over an item get() refuses (no id, content 5, an unknown status...) the add applied,
    # then the client's parse of the reply raised SerializationError: an error for a change
    # that was applied; others failed on a Lua runtime error (not a typed error).
    client = redis_target.client
    first = repo.add("spoiled", "first").items[0].id
    key = repo.plan_key("spoiled")
    client.hset(key, "items", items)
    client.hdel(key, "index")
    before = client.hgetall(key)
    with pytest.raises(SerializationError):
        repo.get("spoiled")
    for n, mutation in enumerate(_mutations(repo, first, "op-i")):
        with pytest.raises(SerializationError):
            mutation()
        assert client.hgetall(key) == before, n
    for n, amutation in enumerate(_amutations(arepo, first, "op-ai")):
        with pytest.raises(SerializationError):
            await amutation()
        assert client.hgetall(key) == before, n
    assert client.xlen(repo.log_key("spoiled")) == 1


def _not_json_metadata(repo: RedisTodoRepository, first: str, aio: bool) -> list[Any]:
    p = "a" if aio else ""
    call = lambda name, *a, **k: lambda: getattr(repo, p + name)(*a, **k)  # noqa: E731
    return [
        call("add", "m", "x", metadata={"k": float("nan")}),
        call("add", "m", "x", metadata={"k": [float("inf")]}),
        call("update", "m", first, metadata={"k": -float("inf")}),
        call("replace", "m", [{"content": "x", "metadata": {"k": float("nan")}}]),
        call("replace", "m", [Todo(id=first, content="x", metadata={"k": float("nan")})]),
        # keys json.dumps turned into text: {1: "a", "1": "b"} was stored with "1" twice
        call("add", "m", "x", metadata={1: "a", "1": "b"}),
        call("update", "m", first, metadata={"k": [{None: 1}]}),
        call("replace", "m", [{"content": "x", "metadata": {"k": {2.5: 0}}}]),
        call("replace", "m", [Todo(id=first, content="x", metadata={"k": ({True: 1},)})]),
        # past the interpreter's recursion limit, and a cycle (RecursionError escaped)
        # (100,000: Python 3.13's json still writes and reads a nest of 5,000)
        call("add", "m", "x", metadata={"k": _nested(100_000)}),
        call("update", "m", first, metadata={"k": _cycle()}),
    ]


def _nested(depth: int) -> list[Any]:
    top: list[Any] = []
    cur = top
    for _ in range(depth):
        cur.append([])
        cur = cur[0]
    return top


def _cycle() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


@pytest.mark.integration
async def test_metadata_that_json_cannot_carry_is_invalid_input_and_changes_nothing(
    repo: RedisTodoRepository, arepo: RedisTodoRepository, redis_target: Any
) -> None:
    # json.dumps wrote NaN and Infinity, which are not JSON: the stored metadata, documented
    # as opaque JSON, was text another language's (or a strict) JSON parser refuses. It also
    # wrote non-text keys as text (read back different, or a key twice), and a nest past
    # the recursion limit raised RecursionError.
    first = repo.add("m", "first").items[0].id
    before = redis_target.client.hgetall(repo.plan_key("m"))
    for mutation in _not_json_metadata(repo, first, aio=False):
        with pytest.raises(InvalidInputError, match="JSON"):
            mutation()
    for mutation in _not_json_metadata(arepo, first, aio=True):
        with pytest.raises(InvalidInputError, match="JSON"):
            await mutation()
    assert redis_target.client.hgetall(repo.plan_key("m")) == before


NOT_ITEMS = [None, 5, "my content", b"content", ["my content"], [5], [None], [{"content": "x"}, 3]]


@pytest.mark.integration
@pytest.mark.parametrize("items", NOT_ITEMS, ids=repr)
async def test_replace_with_items_that_are_not_todos_is_invalid_input(
    repo: RedisTodoRepository, arepo: RedisTodoRepository, redis_target: Any, items: Any
) -> None:
    # It raised AttributeError ('str' object has no attribute 'get') or TypeError.
    repo.add("typed", "first")
    before = redis_target.client.hgetall(repo.plan_key("typed"))
    with pytest.raises(InvalidInputError, match="todo"):
        repo.replace("typed", items)
    with pytest.raises(InvalidInputError, match="todo"):
        await arepo.areplace("typed", items)
    assert redis_target.client.hgetall(repo.plan_key("typed")) == before


PLANTED_OP_RECORDS = {
    "an empty array": b"\x90",
    "nil": b"\x91\xc0",
    "a string": b"\x91\xa3abc",
    "a float": b"\x91\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
    "a nested array": b"\x91\x91\x91\x05",
    "a version of 0": b"\x91\x00",
}


@pytest.mark.integration
@pytest.mark.parametrize("record", PLANTED_OP_RECORDS.values(), ids=list(PLANTED_OP_RECORDS))
async def test_a_planted_op_record_is_a_serialization_error(
    repo: RedisTodoRepository, arepo: RedisTodoRepository, redis_target: Any, record: bytes
) -> None:
    # The op record of an op id is a key under the plan's hash tag; one this package did not
    # write came back as the replay's version: TypeError or ValueError from the reply's
    # parse instead of a typed error.
    client = redis_target.client
    first = repo.add("spoiled", "first").items[0].id
    before = client.hgetall(repo.plan_key("spoiled"))
    op_key = repo.keyspace.op_key("spoiled", "planted")
    client.set(op_key, record)
    for mutation in _mutations(repo, first, "planted"):
        with pytest.raises(SerializationError, match="op record"):
            mutation()
    for amutation in _amutations(arepo, first, "planted"):
        with pytest.raises(SerializationError, match="op record"):
            await amutation()
    assert client.hgetall(repo.plan_key("spoiled")) == before
    assert client.get(op_key) == record


NULLS = (
    b'[{"id":"a","content":"x","status":"pending","owner":"w","lease_until":null,'
    b'"updated_at":null,"metadata":null}]'
)


@pytest.mark.integration
@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
async def test_json_null_fields_another_writer_stored_mean_none(
    repo: RedisTodoRepository,
    arepo: RedisTodoRepository,
    redis_target: Any,
    aio: bool,
) -> None:
    # get() reads JSON null as None (no lease, no time, no metadata), but mutate.lua read a
    # null lease with tonumber(lease_until or 0): nil, compared with a number, so claim and
    # complete failed on a Lua runtime error for a plan every reader accepts.
    key = repo.plan_key("nulls")
    client = redis_target.client

    def plant() -> None:
        client.delete(key)
        client.hset(key, mapping={"version": 1, "items": NULLS, "updated_ms": 1})

    plant()
    assert repo.get("nulls").items[0].lease_expires_at is None
    if aio:
        claimed = await arepo.aclaim("nulls", "a", owner="v", lease_seconds=60)
    else:
        claimed = repo.claim("nulls", "a", owner="v", lease_seconds=60)
    assert claimed.items[0].owner == "v"
    assert claimed.items[0].status == "in_progress"
    plant()
    if aio:
        done = await arepo.acomplete("nulls", "a", owner="v")
    else:
        done = repo.complete("nulls", "a", owner="v")
    assert done.items[0].status == "completed"


def _long_unencodable(repo: RedisTodoRepository, first: str, aio: bool) -> list[Any]:
    p = "a" if aio else ""
    call = lambda name, *a, **k: lambda: getattr(repo, p + name)(*a, **k)  # noqa: E731
    long = "x" * 2_000 + LONE  # past a quarter of max_content_bytes: its size is counted
    many = [{"content": "y" * 3_500 + LONE} for _ in range(40)]  # a payload of 140K chars
    return [
        call("add", "u", long),
        call("update", "u", first, content=long),
        call("replace", "u", [{"content": long}]),
        call("replace", "u", many),
    ]


@pytest.mark.integration
async def test_long_text_redis_cannot_carry_is_invalid_input_too(
    repo: RedisTodoRepository, arepo: RedisTodoRepository, redis_target: Any
) -> None:
    # The size checks encode long content and payloads to count their bytes, before the
    # call that turns UnicodeEncodeError into InvalidInputError: a lone surrogate in a long
    # todo raised UnicodeEncodeError (write_todos failed the agent run).
    first = repo.add("u", "first").items[0].id
    before = redis_target.client.hgetall(repo.plan_key("u"))
    for mutation in _long_unencodable(repo, first, aio=False):
        with pytest.raises(InvalidInputError, match="Unicode"):
            mutation()
    for mutation in _long_unencodable(arepo, first, aio=True):
        with pytest.raises(InvalidInputError, match="Unicode"):
            await mutation()
    assert redis_target.client.hgetall(repo.plan_key("u")) == before


def _not_text(repo: RedisTodoRepository, first: str, aio: bool) -> list[Any]:
    p = "a" if aio else ""
    call = lambda name, *a, **k: lambda: getattr(repo, p + name)(*a, **k)  # noqa: E731
    return [
        call("add", "t", "x", item_id=b"new"),
        call("add", "t", "x", item_id=0),
        call("update", "t", first.encode(), status="completed"),
        call("claim", "t", first.encode(), owner="w", lease_seconds=60),
        call("complete", "t", first.encode()),
        call("remove", "t", first.encode()),
        call("replace", "t", [{"id": first.encode(), "content": "x"}]),
        call("replace", "t", [{"id": 7, "content": "x"}]),
        call("replace", "t", [{"content": "x", "owner": b"w"}]),
        call("replace", "t", [{"content": "x", "owner": object()}]),
    ]


@pytest.mark.integration
async def test_ids_and_owners_that_are_not_text_are_invalid_input(
    repo: RedisTodoRepository, arepo: RedisTodoRepository, redis_target: Any
) -> None:
    # Bytes or objects in an id or owner reached json.dumps (TypeError: not JSON
    # serializable); replace stored str() of a non-str id (b'abc' as "b'abc'", 7 as "7") and
    # add(item_id=0) generated an id silently.
    first = repo.add("t", "first").items[0].id
    before = redis_target.client.hgetall(repo.plan_key("t"))
    for n, mutation in enumerate(_not_text(repo, first, aio=False)):
        with pytest.raises(InvalidInputError):
            mutation()
        assert redis_target.client.hgetall(repo.plan_key("t")) == before, n
    for n, mutation in enumerate(_not_text(arepo, first, aio=True)):
        with pytest.raises(InvalidInputError):
            await mutation()
        assert redis_target.client.hgetall(repo.plan_key("t")) == before, n
