"""Todos-specific errors and the translation of the mutation script's error replies.

The script answers a rejected mutation with an error reply whose first word says why
(see ``mutate.lua``). Core's driver maps the shared words; `script_words` adds the
todos ones:

========================  ================================================================
``CONFLICT <actual>``     `ConflictError`
``CLAIMED ...``           `ItemClaimedError` (a ``ConflictError``)
``NOTFOUND <id>``         `NotFoundError`
``INVALID <why>``         `InvalidInputError`
``TOOMANY <n> <cap>``     `TooManyItemsError` (an ``InvalidInputError``)
``TOOLARGE <what> ...``   `PayloadTooLargeError` (``.size``
                          and ``.limit`` in bytes; what: content, payload or plan)
``MALFORMED <why>``       `SerializationError` (the stored plan is not what the
                          script writes)
========================  ================================================================

The item cap stays an ``InvalidInputError`` (``TooManyItemsError``) rather than a
``PayloadTooLargeError``: core documents that error's ``.size``/``.limit`` as bytes, and an
item count is not a size; too many items is a property of the request, like a duplicate id.
"""

from __future__ import annotations

from datetime import UTC, datetime

from deepagents_redis.core import (
    ConflictError,
    DeepAgentsRedisError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    ScriptErrorWords,
    SerializationError,
)

__all__ = [
    "ItemClaimedError",
    "TooManyItemsError",
    "script_words",
    "too_large",
]


_LIMIT_NAMES = {
    "content": "max_content_bytes",
    "payload": "max_plan_bytes",
    "plan": "max_plan_bytes",
}


def too_large(what: str, size: int, limit: int) -> PayloadTooLargeError:
    """The error for a todo ``content``, request ``payload`` or stored ``plan`` over its limit.

    Args:
        what: ``content``, ``payload`` or ``plan``.
        size: The size found, in bytes.
        limit: The limit, in bytes.

    Returns:
        The error (with ``.size`` and ``.limit``); the message names the setting.
    """
    setting = _LIMIT_NAMES.get(what, "max_plan_bytes")
    return PayloadTooLargeError(
        size,
        limit,
        message=(
            f"todo {what} of {size} bytes exceeds the limit of {limit} bytes "
            f"(TodosSettings.{setting}); nothing was changed"
        ),
    )


class ItemClaimedError(ConflictError):
    """Another owner holds the item and its lease has not expired.

    Attributes:
        item_id: The contested item.
        owner: The current owner.
        lease_expires_at: When the current owner's lease lapses (server clock).
    """

    def __init__(
        self, item_id: str, owner: str, lease_expires_at: datetime, *, version: int
    ) -> None:
        self.item_id = item_id
        self.owner = owner
        self.lease_expires_at = lease_expires_at
        super().__init__(
            None,
            version,
            message=(
                f"todo {item_id!r} is claimed by {owner!r} until {lease_expires_at.isoformat()}"
            ),
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_claimed,
            (self.item_id, self.owner, self.lease_expires_at, self.actual),
        )


def _rebuild_claimed(
    item_id: str, owner: str, lease_expires_at: datetime, version: int
) -> ItemClaimedError:
    return ItemClaimedError(item_id, owner, lease_expires_at, version=version)


class TooManyItemsError(InvalidInputError):
    """The mutation would leave more items in the plan than the configured cap.

    Attributes:
        count: How many items the plan would hold.
        limit: The cap (``TodosSettings.max_items``).
    """

    def __init__(self, count: int, limit: int) -> None:
        self.count = count
        self.limit = limit
        super().__init__(f"a plan holds at most {limit} items; this change would make {count}")

    def __reduce__(self) -> tuple[object, ...]:
        return (TooManyItemsError, (self.count, self.limit))


def script_words(item_id: str | None = None) -> ScriptErrorWords:
    """The todos words of the one script-error vocabulary (core maps ``CONFLICT``/``INVALID``).

    Args:
        item_id: The item the operation is about (for ``ItemClaimedError``).

    Returns:
        Each word mapped to a factory of its typed error (core's driver calls it with the
        rest of the reply).
    """

    def claimed(rest: str) -> DeepAgentsRedisError:
        version, lease_ms, owner = rest.split(" ", 2)
        lease = datetime.fromtimestamp(int(float(lease_ms)) / 1000, tz=UTC)
        return ItemClaimedError(item_id or "?", owner, lease, version=int(version))

    def too_many(rest: str) -> DeepAgentsRedisError:
        count, limit = rest.split(" ")
        return TooManyItemsError(int(count), int(limit))

    def too_big(rest: str) -> DeepAgentsRedisError:
        what, size, limit = rest.split(" ")
        return too_large(what, int(size), int(limit))

    return {
        "CLAIMED": claimed,
        "NOTFOUND": lambda rest: NotFoundError(f"no todo with id {rest!r}"),
        "TOOMANY": too_many,
        "TOOLARGE": too_big,
        "MALFORMED": lambda rest: SerializationError(f"stored todo plan is malformed: {rest}"),
    }
