"""A hypothesis state machine: the repository against an in-memory model of it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from deepagents_redis.core import ConflictError, InvalidInputError, NotFoundError
from deepagents_redis.todos import (
    ItemClaimedError,
    RedisTodoRepository,
    TodosSettings,
    TooManyItemsError,
)
from deepagents_redis.todos._models import content_is_blank
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

pytestmark = pytest.mark.integration

CAP = 8
STATUSES = st.sampled_from(["pending", "in_progress", "completed"])
CONTENT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12
)
OWNERS = st.sampled_from(["alice", "bob"])


class Model:
    """What the plan should be: a version and ordered items (id, content, status, owner)."""

    def __init__(self) -> None:
        self.version = 0
        self.items: list[dict[str, Any]] = []

    def find(self, item_id: str) -> dict[str, Any] | None:
        return next((i for i in self.items if i["id"] == item_id), None)


class RepositoryMachine(RuleBasedStateMachine):
    def __init__(self, repo: RedisTodoRepository) -> None:
        super().__init__()
        self.repo = repo
        self.scope = f"sm-{uuid.uuid4().hex[:8]}"
        self.model = Model()
        self.counter = 0

    def pick(self, index: int) -> str:
        if not self.model.items or index < 0:
            return "no-such-item"
        return str(self.model.items[index % len(self.model.items)]["id"])

    def expected(self, stale: bool) -> int | None:
        if stale:
            return self.model.version + 1  # never right: must conflict
        return None

    def check_stale(self, stale: bool, fn: Any) -> bool:
        if stale:
            with pytest.raises(ConflictError) as info:
                fn(self.model.version + 1)
            assert info.value.actual == self.model.version
            return True
        return False

    @rule(
        content=CONTENT,
        status=STATUSES,
        index=st.integers(-1, 10),
        stale=st.booleans(),
        replay=st.booleans(),
    )
    def add(self, content: str, status: str, index: int, stale: bool, replay: bool) -> None:
        self.counter += 1
        item_id = f"i{self.counter}"

        def call(expected: int | None) -> Any:
            return self.repo.add(
                self.scope,
                content,
                status=status,  # type: ignore[arg-type]
                index=None if index < 0 else index,
                item_id=item_id,
                expected_version=expected,
            )

        if content_is_blank(content):
            with pytest.raises(InvalidInputError):
                call(None)
            return
        if self.check_stale(stale, call):
            return
        if len(self.model.items) >= CAP:
            with pytest.raises(TooManyItemsError):
                call(None)
            return
        op_id = f"op-{item_id}"
        first = self.repo.add(
            self.scope,
            content,
            status=status,  # type: ignore[arg-type]
            index=None if index < 0 else index,
            item_id=item_id,
            expected_version=self.model.version,
            op_id=op_id,
        )
        if replay:  # a client retry of the same operation: replies the same, applies once
            again = self.repo.add(self.scope, content, item_id=item_id, op_id=op_id)
            assert again == first
        new = {"id": item_id, "content": content, "status": status, "owner": None}
        if 0 <= index < len(self.model.items):
            self.model.items.insert(index, new)
        else:
            self.model.items.append(new)
        self.model.version += 1

    @rule(
        index=st.integers(-1, 10),
        status=st.none() | STATUSES,
        content=st.none() | CONTENT,
        stale=st.booleans(),
    )
    def update(self, index: int, status: str | None, content: str | None, stale: bool) -> None:
        item_id = self.pick(index)

        def call(expected: int | None) -> Any:
            return self.repo.update(
                self.scope,
                item_id,
                status=status,  # type: ignore[arg-type]
                content=content,
                expected_version=expected,
            )

        nothing = status is None and content is None  # refused: it would change nothing
        if nothing or (content is not None and content_is_blank(content)):
            with pytest.raises(InvalidInputError):
                call(None)
            return
        if self.check_stale(stale, call):
            return
        item = self.model.find(item_id)
        if item is None:
            with pytest.raises(NotFoundError):
                call(None)
            return
        call(None)
        if status is not None:
            item["status"] = status
        if content is not None:
            item["content"] = content
        self.model.version += 1

    @rule(index=st.integers(-1, 10), stale=st.booleans())
    def remove(self, index: int, stale: bool) -> None:
        item_id = self.pick(index)

        def call(expected: int | None) -> Any:
            return self.repo.remove(self.scope, item_id, expected_version=expected)

        if self.check_stale(stale, call):
            return
        item = self.model.find(item_id)
        if item is None:
            with pytest.raises(NotFoundError):
                call(None)
            return
        call(self.model.version)
        self.model.items.remove(item)
        self.model.version += 1

    @rule(index=st.integers(-1, 10), owner=OWNERS)
    def claim(self, index: int, owner: str) -> None:
        item_id = self.pick(index)
        item = self.model.find(item_id)
        call = lambda: self.repo.claim(self.scope, item_id, owner, 3600)  # noqa: E731
        if item is None:
            with pytest.raises(NotFoundError):
                call()
            return
        if item["status"] == "completed":
            with pytest.raises(InvalidInputError):
                call()
            return
        if item.get("leased") and item["owner"] != owner:
            with pytest.raises(ItemClaimedError):
                call()
            return
        call()
        item["owner"] = owner
        item["leased"] = True  # leases are an hour: none expires during a test
        if item["status"] == "pending":
            item["status"] = "in_progress"
        self.model.version += 1

    @rule(index=st.integers(-1, 10), owner=st.none() | OWNERS)
    def complete(self, index: int, owner: str | None) -> None:
        item_id = self.pick(index)
        item = self.model.find(item_id)
        call = lambda: self.repo.complete(self.scope, item_id, owner=owner)  # noqa: E731
        if item is None:
            with pytest.raises(NotFoundError):
                call()
            return
        # Only a live lease protects an item; completing ends the lease (the owner stays).
        if owner is not None and item.get("leased") and item["owner"] != owner:
            with pytest.raises(ItemClaimedError):
                call()
            return
        call()
        item["status"] = "completed"
        item["leased"] = False
        self.model.version += 1

    @rule(data=st.data(), stale=st.booleans())
    def replace(self, data: st.DataObject, stale: bool) -> None:
        kept = data.draw(st.permutations(self.model.items)) if self.model.items else []
        kept = kept[: data.draw(st.integers(0, len(kept)))]
        extra = data.draw(st.lists(st.tuples(CONTENT, STATUSES), max_size=3))
        payload: list[dict[str, Any]] = [
            {"id": i["id"], "content": i["content"], "status": i["status"]} for i in kept
        ]
        for content, status in extra:
            self.counter += 1
            payload.append({"id": f"i{self.counter}", "content": content, "status": status})

        def call(expected: int | None) -> Any:
            return self.repo.replace(self.scope, payload, expected_version=expected)

        if any(content_is_blank(p["content"]) for p in payload):
            with pytest.raises(InvalidInputError):
                call(None)
            return
        if len(payload) > CAP:  # checked by the client (and the script) before the version
            with pytest.raises(TooManyItemsError):
                call(self.model.version + 1 if stale else None)
            return
        if self.check_stale(stale, call):
            return
        call(self.model.version)
        kept_by_id = {i["id"]: i for i in self.model.items}
        self.model.items = [
            {
                **p,
                "owner": kept_by_id.get(p["id"], {}).get("owner"),
                "leased": kept_by_id.get(p["id"], {}).get("leased", False),
            }
            for p in payload
        ]
        self.model.version += 1

    @invariant()
    def matches_model(self) -> None:
        plan = self.repo.get(self.scope)
        assert plan.version == self.model.version
        assert [
            {"id": i.id, "content": i.content, "status": i.status, "owner": i.owner}
            for i in plan.items
        ] == [{k: v for k, v in i.items() if k != "leased"} for i in self.model.items]
        assert [i.lease_expires_at is not None for i in plan.items] == [
            bool(i.get("leased")) for i in self.model.items
        ]


def test_repository_matches_model(redis_target: Any) -> None:
    repo = RedisTodoRepository(
        client=redis_target.client,
        settings=redis_target.settings,
        todos_settings=TodosSettings(max_items=CAP),
    )
    run_state_machine_as_test(
        lambda: RepositoryMachine(repo),
        settings=settings(
            max_examples=20,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
