"""`Todo.from_stored` / `TodoList.trusted` skip validation; they must build the same objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from deepagents_redis.todos import Todo, TodoList
from hypothesis import given
from hypothesis import strategies as st

STORED = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=12),
        "content": st.text(min_size=1, max_size=40),
        "status": st.sampled_from(["pending", "in_progress", "completed"]),
    },
    optional={
        "owner": st.one_of(st.none(), st.text(min_size=1, max_size=8)),
        "lease_until": st.integers(min_value=0, max_value=4_102_444_800_000),
        "updated_at": st.integers(min_value=0, max_value=4_102_444_800_000),
        "metadata": st.dictionaries(st.text(max_size=5), st.integers(), max_size=3).map(json.dumps),
    },
)


def _validated(raw: dict[str, Any]) -> Todo:
    def when(ms: Any) -> datetime | None:
        return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)

    return Todo.model_validate(
        {
            "id": raw["id"],
            "content": raw["content"],
            "status": raw["status"],
            "owner": raw.get("owner") or None,
            "lease_expires_at": when(raw.get("lease_until")),
            "updated_at": when(raw.get("updated_at")),
            "metadata": json.loads(raw["metadata"]) if "metadata" in raw else {},
        }
    )


@given(STORED)
def test_from_stored_builds_what_validation_builds(raw: dict[str, Any]) -> None:
    fast, slow = Todo.from_stored(raw), _validated(raw)
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_copy(update={"content": "x"}).content == "x"


@given(st.lists(STORED, max_size=5), st.integers(min_value=0, max_value=10**6))
def test_trusted_plan_equals_a_validated_one(raws: list[dict[str, Any]], version: int) -> None:
    items = [Todo.from_stored(r) for r in raws]
    when = datetime(2026, 12, 4, tzinfo=UTC)
    fast = TodoList.trusted(scope="s", version=version, items=items, updated_at=when)
    slow = TodoList.model_validate(
        {"scope": "s", "version": version, "items": items, "updated_at": when}
    )
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_dump_json() == slow.model_dump_json()
