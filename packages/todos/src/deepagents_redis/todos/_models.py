"""The todo data model: `Todo`, `TodoList` and `TodoChange`.

Statuses are langchain's (``TodoListMiddleware``): ``pending``, ``in_progress``,
``completed``. Times are timezone-aware UTC datetimes taken from the Redis server clock
(``TIME`` inside the mutation script), never from a client clock.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "TODO_STATUSES",
    "Todo",
    "TodoChange",
    "TodoList",
    "TodoStatus",
    "content_is_blank",
    "new_item_id",
]


TodoStatus = Literal["pending", "in_progress", "completed"]
"""The status of a todo item, exactly as langchain's ``TodoListMiddleware`` spells it."""

TODO_STATUSES: tuple[str, ...] = get_args(TodoStatus)
"""Every valid status, in workflow order."""


_DATETIMES: dict[Any, datetime] = {}
"""Recent stored times -> datetime: the items of a plan mostly share a few (a replace stamps
every changed item with one time), and a datetime is immutable, so one object serves all."""


def _stored_time(ms: Any) -> datetime | None:
    """A stored time (server ms) as a UTC datetime, through `_DATETIMES` (cleared when large)."""
    if ms is None:
        return None
    when = _DATETIMES.get(ms)
    if when is None:
        if len(_DATETIMES) >= 1024:
            _DATETIMES.clear()
        when = _DATETIMES[ms] = datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    return when


def content_is_blank(content: str) -> bool:
    """Whether ``content`` is empty or only ASCII whitespace.

    The Lua scripts apply the same rule (``%S`` matches ASCII non-space), so the client and
    the server agree on what "empty content" means.

    Args:
        content: The candidate content.

    Returns:
        True when the content would be rejected.
    """
    return content.strip(" \t\n\r\f\v") == ""


def new_item_id() -> str:
    """A fresh item id (12 hex characters of a random UUID).

    Returns:
        The id.
    """
    return uuid.uuid4().hex[:12]


_M = TypeVar("_M", bound=BaseModel)


def _trusted(cls: type[_M], values: dict[str, Any]) -> _M:
    """`cls.model_construct(**values)` for data already validated, with every field given.

    What pydantic's `model_construct` ends with, without its per-field loop (aliases,
    defaults) that cost ~10 µs per object: a plan of 10 items spent a quarter of `get` there
    (profiled: 116 µs of 450 µs). Only for these frozen models without aliases, extras,
    private attributes or post-init hooks; `test_models.py` checks the result equals
    `model_validate` of the same data, field by field.
    """
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


class Todo(BaseModel):
    """One item of a plan.

    Build new items with `RedisTodoRepository.add` (which assigns the id) or pass
    them to `RedisTodoRepository.replace`; fields you leave unset in a ``replace``
    (``owner``, ``lease_expires_at``, ``metadata``) keep their stored values.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    """Stable identifier: survives edits of content and status, and reordering."""

    content: str
    """What to do (non-empty)."""

    status: TodoStatus = "pending"
    """``pending``, ``in_progress`` or ``completed``."""

    owner: str | None = None
    """Who holds the item (set by `RedisTodoRepository.claim`), if anyone."""

    lease_expires_at: datetime | None = None
    """When the owner's claim lapses (server clock); after it, others may claim the item."""

    updated_at: datetime | None = None
    """When the item last changed (server clock)."""

    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form JSON-serializable data (stored as opaque JSON; Lua never parses it)."""

    def as_langchain(self) -> dict[str, str]:
        """The item as langchain's ``Todo`` TypedDict (``content`` and ``status`` only).

        Returns:
            ``{"content": ..., "status": ...}``.
        """
        return {"content": self.content, "status": self.status}

    @classmethod
    def from_stored(cls, raw: dict[str, Any]) -> Todo:
        """Build an item from its stored JSON object.

        The mutation script validated the item before storing it, so this skips pydantic
        validation (``model_construct``): parsing a plan costs microseconds, not a
        noticeable share of the round trip.

        Args:
            raw: One element of the stored ``items`` array.

        Returns:
            The item.
        """
        get = raw.get
        metadata_raw = get("metadata")
        return _trusted(
            cls,
            {
                "id": str(raw["id"]),
                "content": str(raw["content"]),
                "status": raw["status"],
                "owner": get("owner") or None,
                "lease_expires_at": _stored_time(get("lease_until")),
                "updated_at": _stored_time(get("updated_at")),
                "metadata": json.loads(metadata_raw) if isinstance(metadata_raw, str) else {},
            },
        )


class TodoList(BaseModel):
    """A plan: a scope, a version and ordered items."""

    model_config = ConfigDict(frozen=True)

    scope: str
    """The plan's scope: a thread id, or a name shared by several threads."""

    version: int = 0
    """Monotonic: 0 for a plan never written, +1 for every applied mutation."""

    items: list[Todo] = Field(default_factory=list)
    """The items, in plan order."""

    updated_at: datetime | None = None
    """When the plan last changed (server clock)."""

    @classmethod
    def trusted(
        cls, *, scope: str, version: int, items: list[Todo], updated_at: datetime | None
    ) -> TodoList:
        """A plan from data the mutation script validated (no second validation pass).

        Args:
            scope: The plan's scope.
            version: Its version.
            items: Its items (from `Todo.from_stored`).
            updated_at: When it last changed.

        Returns:
            The plan.
        """
        return _trusted(
            cls, {"scope": scope, "version": version, "items": items, "updated_at": updated_at}
        )

    def get(self, item_id: str) -> Todo | None:
        """The item with this id, or None.

        Args:
            item_id: The item's id.

        Returns:
            The item, if present.
        """
        return next((item for item in self.items if item.id == item_id), None)

    def as_langchain(self) -> list[dict[str, str]]:
        """The items as langchain's ``todos`` state value (``content`` and ``status``).

        Returns:
            A list of ``{"content": ..., "status": ...}`` dicts, in plan order.
        """
        return [item.as_langchain() for item in self.items]

    @property
    def ids(self) -> list[str]:
        """The item ids, in plan order."""
        return [item.id for item in self.items]


class TodoChange(BaseModel):
    """One entry of a plan's change log (a capped Redis stream)."""

    model_config = ConfigDict(frozen=True)

    entry_id: str
    """The stream entry id (``<ms>-<seq>``)."""

    version: int
    """The plan version this change produced."""

    op: str
    """``replace``, ``add``, ``update``, ``claim``, ``complete`` or ``remove``."""

    actor: str
    """Who made the change (free-form; the middleware uses ``agent:<scope>``)."""

    op_id: str
    """The operation id that made the change (retries share it)."""

    item_id: str | None = None
    """The item the change is about (None for ``replace``)."""

    detail: dict[str, Any] = Field(default_factory=dict)
    """What changed (for example the new status)."""

    at: datetime
    """When (server clock, from the stream entry id)."""
