"""Plan limits and small op records (issue 8 defect 5), on a real server.

Before the fix a plan had no size limit (one 100 MB item made every later add take 2.6 s and
stalled other clients), and every op record held the whole plan JSON for a day.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from deepagents_redis.core import (
    MAX_OP_TTL_MS,
    ConfigurationError,
    InvalidInputError,
    KeySpace,
    PayloadTooLargeError,
    RedisSettings,
)
from deepagents_redis.todos import MAX_LEASE_SECONDS, RedisTodoRepository, TodosSettings
from deepagents_redis.todos._repository import MAX_TAG_CHARS

pytestmark = pytest.mark.integration


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


LIMITS = TodosSettings(max_items=50, max_content_bytes=1_024, max_plan_bytes=8_192)


def _repo(redis_target: Any, todos_settings: TodosSettings = LIMITS) -> RedisTodoRepository:
    return RedisTodoRepository(
        client=redis_target.client, settings=redis_target.settings, todos_settings=todos_settings
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.add("s", "x" * 1_025),
        lambda r: r.add("s", "é" * 513),  # 1,026 bytes in UTF-8, 513 characters
        lambda r: r.update("s", "a", content="x" * 2_000),
        lambda r: r.replace("s", [{"id": "a", "content": "y" * 5_000}]),
        lambda r: r.replace("s", [{"content": f"{n:04d}" + "z" * 900} for n in range(10)]),
    ],
)
def test_over_a_limit_is_refused_before_anything_is_sent(call: Any) -> None:
    # Nothing listens on this port: a request that reached the wire would raise
    # RedisUnavailableError, so PayloadTooLargeError proves the check ran first.
    settings = RedisSettings(url=f"redis://127.0.0.1:{_unused_port()}/0", retries=0)
    repo = RedisTodoRepository(settings=settings, todos_settings=LIMITS)
    with pytest.raises(PayloadTooLargeError) as info:
        call(repo)
    assert info.value.size > info.value.limit
    assert "nothing was changed" in str(info.value)
    repo.close()


def test_limits_hold_on_a_real_server_and_change_nothing(redis_target: Any) -> None:
    repo = _repo(redis_target)
    repo.replace("s", [{"id": "a", "content": "one"}])
    before = repo.get("s")
    with pytest.raises(PayloadTooLargeError) as info:
        repo.update("s", "a", content="x" * 1_025)
    assert (info.value.size, info.value.limit) == (1_025, 1_024)
    # Many items each under the content limit, together over the plan limit.
    added = 0
    while added < 20:
        try:
            repo.add("s", f"{added:02d} " + "w" * 1_000)
        except PayloadTooLargeError:
            break
        added += 1
    assert 0 < added < 20  # refused once the plan would pass max_plan_bytes
    grown = repo.get("s")
    assert len(json.dumps([i.content for i in grown.items])) < 8_192
    # The add that failed changed nothing: the plan is as the last accepted add left it.
    assert repo.history("s")[-1].version == grown.version
    assert before.version < grown.version


def test_the_script_refuses_what_the_client_did_not_check(redis_target: Any) -> None:
    # A writer with generous limits (another deployment, an older version) grew the plan;
    # a writer with the documented limits must refuse to grow it further, server-side.
    big = _repo(redis_target, TodosSettings(max_items=50, max_plan_bytes=1_048_576))
    for n in range(12):
        big.add("grown", f"{n:02d} " + "v" * 1_000)
    small = _repo(redis_target)
    version = small.get("grown").version
    with pytest.raises(PayloadTooLargeError) as info:
        small.add("grown", "tiny")
    assert "plan" in str(info.value)
    assert small.get("grown").version == version
    # Shrinking it is still allowed: a replace with a small plan fits.
    assert small.replace("grown", [{"content": "start over"}]).version == version + 1
    # And the script's own content check, bypassing the client's.
    with pytest.raises(PayloadTooLargeError):
        small._mutate(
            "grown",
            "add",
            {"item": {"id": "q", "content": "c" * 2_000, "status": "pending"}, "index": -1},
            expected_version=None,
            actor=None,
            op_id=None,
        )
    assert small.get("grown").version == version + 1


def test_op_records_hold_a_version_and_digest_not_the_plan(redis_target: Any) -> None:
    repo = _repo(redis_target, TodosSettings(max_items=50, max_plan_bytes=1_048_576))
    plan = repo.replace("rec", [{"id": f"i{n}", "content": "p" * 900} for n in range(30)])
    assert len(json.dumps([i.content for i in plan.items])) > 27_000
    op_key = KeySpace(redis_target.settings.key_prefix).op_key("rec", "small-record")
    repo.update("rec", "i0", status="in_progress", op_id="small-record")
    client = redis_target.client
    assert client.exists(op_key) == 1
    # Before the fix the record held the whole plan (27 KB here).
    assert client.strlen(op_key) < 128


def test_a_replay_after_the_plan_moved_applies_nothing_and_returns_the_plan(
    redis_target: Any,
) -> None:
    repo = _repo(redis_target)
    repo.replace("mv", [{"id": "a", "content": "one"}])
    first = repo.update("mv", "a", status="completed", op_id="op-1")
    repo.update("mv", "a", status="pending")  # a person reopens it
    replay = repo.update("mv", "a", status="completed", op_id="op-1")
    assert replay.version == first.version + 1  # the newer plan, nothing re-applied
    item = replay.get("a")
    assert item is not None
    assert item.status == "pending"
    assert len(repo.history("mv")) == 3


async def test_async_limits_match_sync(redis_target: Any) -> None:
    repo = RedisTodoRepository(
        async_client=redis_target.async_client,
        settings=redis_target.settings,
        todos_settings=LIMITS,
    )
    await repo.areplace("as", [{"id": "a", "content": "one"}])
    with pytest.raises(PayloadTooLargeError):
        await repo.aadd("as", "x" * 1_025)
    with pytest.raises(PayloadTooLargeError):
        await repo.aupdate("as", "a", content="x" * 1_025)
    assert (await repo.aget("as")).version == 1
    await repo.aclose()


BAD_LEASES = [float("nan"), float("inf"), -1.0, 0, True, "60", 1e12, 1e30, MAX_LEASE_SECONDS + 1]


@pytest.mark.parametrize("lease", BAD_LEASES, ids=repr)
async def test_a_lease_that_is_not_a_bounded_number_changes_nothing(
    redis_target: Any, lease: Any
) -> None:
    # A lease of 1e12 s was applied and its end (past any datetime) made every later read
    # of the plan a SerializationError; nan and inf raised ValueError / OverflowError.
    repo = _repo(redis_target)
    arepo = RedisTodoRepository(
        async_client=redis_target.async_client,
        settings=redis_target.settings,
        todos_settings=LIMITS,
    )
    item = repo.add("lease", "x").items[0].id
    with pytest.raises(InvalidInputError):
        repo.claim("lease", item, owner="w", lease_seconds=lease)
    with pytest.raises(InvalidInputError):
        await arepo.aclaim("lease", item, owner="w", lease_seconds=lease)
    plan = repo.get("lease")
    assert (plan.version, plan.items[0].owner) == (1, None)
    await arepo.aclose()


def test_the_longest_lease_reads_back(redis_target: Any) -> None:
    repo = _repo(redis_target)
    item = repo.add("lease", "x").items[0].id
    plan = repo.claim("lease", item, owner="w", lease_seconds=MAX_LEASE_SECONDS)
    assert repo.get("lease") == plan
    held = plan.items[0]
    assert held.lease_expires_at is not None
    assert held.updated_at is not None
    assert (held.lease_expires_at - held.updated_at).total_seconds() == MAX_LEASE_SECONDS


def test_the_script_refuses_a_longer_lease_from_another_writer(
    redis_target: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client that skips the check (an older version, another language) must not be able
    # to write a lease the plan cannot be read back with.
    repo = _repo(redis_target)
    item = repo.add("lease", "x").items[0].id
    monkeypatch.setattr(
        RedisTodoRepository,
        "_claim_payload",
        staticmethod(lambda i, o, s: {"id": i, "owner": o, "lease_ms": 10**15}),
    )
    with pytest.raises(InvalidInputError, match="lease"):
        repo.claim("lease", item, owner="w", lease_seconds=1)
    assert repo.get("lease").version == 1


def test_an_op_ttl_redis_cannot_hold_is_a_configuration_error(redis_target: Any) -> None:
    # op_ttl_seconds=10**15 was accepted; each add then applied, failed on the op record's
    # SET ... PX, and applied again when retried with the same op id.
    with pytest.raises(ConfigurationError, match="op_ttl_seconds"):
        TodosSettings(op_ttl_seconds=10**15)
    longest = TodosSettings(op_ttl_seconds=MAX_OP_TTL_MS // 1000)
    repo = _repo(redis_target, longest)
    for _ in range(2):
        repo.add("ttl", "x", op_id="same")
    assert repo.get("ttl").version == 1


async def test_an_op_id_or_actor_past_the_limit_changes_nothing(redis_target: Any) -> None:
    # Neither counted against any limit: a 1 MB actor grew the change log by 1 MB per
    # mutation (up to log_maxlen entries), a 1 MB op id named a key and stayed in the plan.
    repo = _repo(redis_target)
    arepo = RedisTodoRepository(
        async_client=redis_target.async_client,
        settings=redis_target.settings,
        todos_settings=LIMITS,
    )
    item = repo.add("tags", "x").items[0].id
    long = "a" * (MAX_TAG_CHARS + 1)
    calls = [
        lambda: repo.add("tags", "y", op_id=long),
        lambda: repo.add("tags", "y", actor=long),
        lambda: repo.update("tags", item, status="completed", op_id=long),
        lambda: repo.claim("tags", item, owner=long, lease_seconds=5),
        lambda: repo.replace("tags", [{"content": "z"}], actor=long),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="at most"):
            call()
    with pytest.raises(InvalidInputError, match="at most"):
        await arepo.aadd("tags", "y", actor=long)
    with pytest.raises(InvalidInputError, match="at most"):
        await arepo.aremove("tags", item, op_id=long)
    assert repo.get("tags").version == 1
    assert len(repo.history("tags")) == 1
    edge = "b" * MAX_TAG_CHARS
    assert repo.add("tags", "y", op_id=edge, actor=edge).version == 2
    await arepo.aclose()


def test_write_todos_keeps_long_thread_and_call_ids_within_the_limit(redis_target: Any) -> None:
    from deepagents_redis.todos import RedisTodoMiddleware
    from langgraph.prebuilt.tool_node import ToolRuntime

    mw = RedisTodoMiddleware(
        client=redis_target.client, settings=redis_target.settings, todos_settings=LIMITS
    )
    thread = "t" * 5_000
    runtime = ToolRuntime(
        state={"messages": [], "todos_version": 0},
        context=None,
        config={"configurable": {"thread_id": thread, "__pregel_task_id": "task"}},
        stream_writer=lambda _: None,
        tool_call_id="c" * 5_000,
        store=None,
    )
    command = mw.write(runtime, [{"content": "x", "status": "pending"}])
    (msg,) = command.update["messages"]  # type: ignore[index]
    assert msg.status != "error"
    assert mw.repository.get(thread).version == 1
    mw.close()


def test_a_log_cap_redis_cannot_take_is_a_configuration_error(redis_target: Any) -> None:
    # 2**63 was accepted; every mutation then failed on XADD ... MAXLEN ~ 2**63 (an
    # "ERR value is not an integer or out of range", the root error).
    with pytest.raises(ConfigurationError, match="log_maxlen"):
        TodosSettings(log_maxlen=2**63)
    repo = _repo(redis_target, TodosSettings(log_maxlen=2**63 - 1))
    assert repo.add("cap", "x").version == 1


async def test_an_op_record_outlives_the_retries_of_its_call(redis_target: Any) -> None:
    # op_ttl_seconds=1 is accepted, while a call re-sends its mutation (same op id) until its
    # deadline: with the default 2 s socket timeout, a reply lost to a timeout was re-sent
    # after the record had expired and the mutation applied twice. The record now lives at
    # least twice the deadline (a deadline of 1,000 s here: the PTTL bound leaves ~1,000 s of
    # slack, so it holds on any machine).
    settings = redis_target.settings.with_overrides(deadline_seconds=1_000)
    short = TodosSettings(op_ttl_seconds=1)
    client = redis_target.client
    sync_repo = RedisTodoRepository(client=client, settings=settings, todos_settings=short)
    async_repo = RedisTodoRepository(
        async_client=redis_target.async_client, settings=settings, todos_settings=short
    )
    keys = KeySpace(redis_target.settings.key_prefix)
    sync_repo.add("ttl", "x", op_id="sync-op")
    await async_repo.aadd("ttl", "y", op_id="async-op")
    for op_id in ("sync-op", "async-op"):
        assert client.pttl(keys.op_key("ttl", op_id)) > 1_000_000
    # A longer configured TTL is kept as it is.
    long_repo = RedisTodoRepository(
        client=client, settings=settings, todos_settings=TodosSettings(op_ttl_seconds=86_400)
    )
    long_repo.add("ttl", "z", op_id="long-op")
    assert client.pttl(keys.op_key("ttl", "long-op")) > 2_000_000
    await async_repo.aclose()
