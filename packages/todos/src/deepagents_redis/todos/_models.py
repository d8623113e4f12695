"""The todo data model: `Todo`, `TodoList` and `TodoChange`.

Statuses are langchain's (``TodoListMiddleware``): ``pending``, ``in_progress``,
``completed``. Times are timezone-aware UTC datetimes taken from the Redis server clock
(``TIME`` inside the mutation script), never from a client clock.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, get_args

from deepagents_redis.core import SerializationError
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

_STATUS_SET = frozenset(TODO_STATUSES)


def malformed(why: str) -> SerializationError:
    """The error for stored plan data that is not what the mutation script writes.

    Data in Redis is untrusted (another writer, a restore, a bug): a plan that does not
    decode to valid items raises this typed error instead of building invalid models.

    Args:
        why: What is wrong.

    Returns:
        The error.
    """
    return SerializationError(f"stored todo plan is malformed: {why}")


def _stored_time(ms: Any) -> datetime | None:
    """A stored time (server ms) as a UTC datetime, through `_DATETIMES` (cleared when large).

    Raises:
        SerializationError: ``ms`` is not a number of milliseconds a datetime can hold.
    """
    if ms is None:
        return None
    if type(ms) is not int and type(ms) is not float:
        raise malformed(f"a time is not a number: {ms!r}")
    when = _DATETIMES.get(ms)
    if when is None:
        try:
            when = datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise malformed(f"a time is out of range: {ms!r}") from exc
        if len(_DATETIMES) >= 1024:
            _DATETIMES.clear()
        _DATETIMES[ms] = when
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
    """A fresh item id (12 hex characters: 48 random bits, as the first 12 of a UUID4's hex).

    Returns:
        The id.
    """
    return os.urandom(6).hex()


_M = TypeVar("_M", bound=BaseModel)


def _trusted(cls: type[_M], values: dict[str, Any]) -> _M:
    """`cls.model_construct(**values)` for data already validated, with every field given.

    What pydantic's `model_construct` ends with, without its per-field loop (aliases,
    defaults) that cost ~10 µs per object: a plan of 10 items spent a quarter of `get` there
    (profiled: 116 µs of 450 µs). Only for these frozen models without aliases, extras,
    private attributes or post-init hooks; `test_models.py` checks the result equals
    `model_validate` of the same data, field by field.
    """
    obj = _new(cls)
    _set_attr(obj, "__dict__", values)
    # The slots' own descriptors: ~0.35 µs per object less than `object.__setattr__` by
    # name (an item of every plan parsed, measured in the performance pass).
    _set_fields_set(obj, set(values))
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


_new = object.__new__
_set_attr = object.__setattr__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


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
    def from_stored(cls, raw: Any) -> Todo:
        """Build an item from its stored JSON object, checked field by field.

        The stored item is untrusted, so every field is checked against what the model
        allows (the checks of ``model_validate`` for this data, written out: a pydantic pass
        cost ~10 µs per item, these checks well under one); the object is then built without
        a second validation pass (see `_trusted`).

        Args:
            raw: One element of the stored ``items`` array.

        Returns:
            The item.

        Raises:
            SerializationError: The stored item is not a valid item.
        """
        return _todo_from_stored(raw)


def _todo_from_stored(raw: Any) -> Todo:
    """`Todo.from_stored` (a plain function: the parse loop calls it once per item)."""
    if type(raw) is not dict:
        raise malformed(f"an item is not an object: {type(raw).__name__}")
    get = raw.get
    item_id = get("id")
    content = get("content")
    status = get("status")
    owner = get("owner")
    metadata_raw = get("metadata")
    if type(item_id) is not str or not item_id:
        raise malformed("an item has no valid id")
    if type(content) is not str:
        raise malformed(f"item {item_id!r} has no content")
    if type(status) is not str or status not in _STATUS_SET:
        raise malformed(f"item {item_id!r} has an unknown status")
    if owner is not None and type(owner) is not str:
        raise malformed(f"item {item_id!r} has an owner that is not a string")
    if metadata_raw is None:
        metadata: Any = {}
    elif type(metadata_raw) is str:
        try:
            metadata = json.loads(metadata_raw)
        except (ValueError, RecursionError) as exc:
            raise malformed(f"item {item_id!r} has metadata that is not JSON") from exc
        if type(metadata) is not dict:
            raise malformed(f"item {item_id!r} has metadata that is not an object")
    else:
        raise malformed(f"item {item_id!r} has metadata that is not encoded JSON")
    return _trusted(
        Todo,
        {
            "id": item_id,
            "content": content,
            "status": status,
            "owner": owner or None,
            "lease_expires_at": _stored_time(get("lease_until")),
            "updated_at": _stored_time(get("updated_at")),
            "metadata": metadata,
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
