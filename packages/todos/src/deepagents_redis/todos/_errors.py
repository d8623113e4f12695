"""Todos-specific errors and the translation of the mutation script's error replies.

The script answers a rejected mutation with an error reply whose first word says why
(see ``mutate.lua``); :func:`script_error` turns it into a typed error from the core tree:

========================  ================================================================
``CONFLICT <actual>``     :class:`~deepagents_redis.core.ConflictError`
``CLAIMED ...``           :class:`ItemClaimedError` (a ``ConflictError``)
``NOTFOUND <id>``         :class:`~deepagents_redis.core.NotFoundError`
``INVALID <why>``         :class:`~deepagents_redis.core.InvalidInputError`
``TOOMANY <n> <cap>``     :class:`TooManyItemsError` (an ``InvalidInputError``)
``TOOLARGE <what> ...``   :class:`~deepagents_redis.core.PayloadTooLargeError` (``.size``
                          and ``.limit`` in bytes; what: content, payload or plan)
========================  ================================================================

The item cap stays an ``InvalidInputError`` (``TooManyItemsError``) rather than a
``PayloadTooLargeError``: core documents that error's ``.size``/``.limit`` as bytes, and an
item count is not a size; too many items is a property of the request, like a duplicate id.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis.exceptions as rexc
from deepagents_redis.core import (
    ConflictError,
    DeepAgentsRedisError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
)

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


def _response_error(exc: BaseException) -> rexc.ResponseError | None:
    """Find the script's error reply in ``exc`` or its cause chain."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        if isinstance(seen, rexc.ResponseError):
            return seen
        seen = seen.__cause__
    return None


def script_error(
    exc: BaseException, *, expected: int | None, item_id: str | None = None
) -> DeepAgentsRedisError | None:
    """Translate the mutation script's error reply, if ``exc`` is one.

    Args:
        exc: What the script call raised.
        expected: The expected version the caller sent (for ``ConflictError.expected``).
        item_id: The item the operation was about (for ``ItemClaimedError``).

    Returns:
        The typed error, or None when ``exc`` is not one of the script's replies.
    """
    reply = _response_error(exc)
    if reply is None:
        return None
    text = str(reply)
    word, _, rest = text.partition(" ")
    if word == "CONFLICT":
        return ConflictError(expected, int(rest))
    if word == "CLAIMED":
        version, lease_ms, owner = rest.split(" ", 2)
        lease = datetime.fromtimestamp(int(float(lease_ms)) / 1000, tz=UTC)
        return ItemClaimedError(item_id or "?", owner, lease, version=int(version))
    if word == "NOTFOUND":
        return NotFoundError(f"no todo with id {rest!r}")
    if word == "INVALID":
        return InvalidInputError(rest)
    if word == "TOOMANY":
        count, limit = rest.split(" ")
        return TooManyItemsError(int(count), int(limit))
    if word == "TOOLARGE":
        what, size, limit = rest.split(" ")
        return too_large(what, int(size), int(limit))
    return None
