"""Pure plan arithmetic used by the middleware: id matching, three-way merge, diffs.

The model writes whole lists of ``{content, status}`` (langchain's ``write_todos``) without
ids; Redis keeps stable ids. `assign_ids` maps one onto the other, `merge`
re-applies the agent's edits on top of a plan that moved, and `describe_changes`
says in words what changed between two views.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deepagents_redis.todos._models import TodoList, new_item_id

__all__ = [
    "Item",
    "assign_ids",
    "describe_changes",
    "format_plan",
    "merge",
    "one_line",
    "view_from_plan",
    "view_from_state",
]


@dataclass(frozen=True)
class Item:
    """An item as the agent sees it: an id, content and status."""

    id: str
    """Stable id."""
    content: str
    """What to do."""
    status: str
    """``pending``, ``in_progress`` or ``completed``."""

    def as_payload(self) -> dict[str, str]:
        """The item as a ``replace`` payload (owner/lease/metadata are kept by id).

        Returns:
            ``{"id", "content", "status"}``.
        """
        return {"id": self.id, "content": self.content, "status": self.status}


def view_from_state(state: Mapping[str, Any]) -> list[Item]:
    """The agent's current view of the plan, from its state.

    Args:
        state: Agent state with ``todos`` and the private ``todo_ids``.

    Returns:
        The items; ids missing from the state (a thread written before this middleware)
        are left empty, so they match by content only.
    """
    todos = state.get("todos") or []
    ids = state.get("todo_ids") or []
    out = []
    for i, todo in enumerate(todos):
        item_id = ids[i] if i < len(ids) else ""
        out.append(Item(item_id, str(todo.get("content", "")), str(todo.get("status", ""))))
    return out


def view_from_plan(plan: TodoList) -> list[Item]:
    """The plan's items as `Item`.

    Args:
        plan: A plan read from Redis.

    Returns:
        The items.
    """
    return [Item(t.id, t.content, t.status) for t in plan.items]


def assign_ids(base: Sequence[Item], todos: Sequence[Mapping[str, Any]]) -> list[Item]:
    """Give each item the model wrote the id of the item it continues, or a new one.

    Matching: first identical content (in order, each base item used once), then the
    unmatched base item at the same position (an edited wording), else a fresh id.

    Args:
        base: The items the agent saw (with ids).
        todos: What the model wrote (``content`` and ``status``).

    Returns:
        The written items with ids.
    """
    used: set[int] = set()
    by_content: dict[str, list[int]] = {}
    for i, item in enumerate(base):
        if item.id:
            by_content.setdefault(item.content, []).append(i)
    chosen: list[int | None] = []
    for todo in todos:
        candidates = [i for i in by_content.get(str(todo.get("content", "")), []) if i not in used]
        if candidates:
            used.add(candidates[0])
            chosen.append(candidates[0])
        else:
            chosen.append(None)
    out: list[Item] = []
    for pos, todo in enumerate(todos):
        match = chosen[pos]
        if match is None and pos < len(base) and pos not in used and base[pos].id:
            used.add(pos)
            match = pos
        item_id = base[match].id if match is not None else new_item_id()
        out.append(Item(item_id, str(todo.get("content", "")), str(todo.get("status", ""))))
    return out


def merge(base: Sequence[Item], desired: Sequence[Item], latest: Sequence[Item]) -> list[Item]:
    """Re-apply the agent's edits (``base`` -> ``desired``) on top of ``latest``.

    * an item the agent removed is removed (if still there);
    * an item the agent kept takes, per field, the agent's value if the agent changed that
      field, else the latest value; if someone else removed it and the agent did not
      change it, it stays removed;
    * items the agent added are added;
    * items added by others (in ``latest`` but not in ``base``) are kept, placed after
      the item they followed in ``latest``.

    Args:
        base: What the agent saw.
        desired: What the agent wrote (ids assigned by `assign_ids`).
        latest: The plan as it stands now.

    Returns:
        The merged items, in order.
    """
    base_by_id = {item.id: item for item in base if item.id}
    latest_by_id = {item.id: item for item in latest}
    desired_ids = {item.id for item in desired}
    out: list[Item] = []
    for item in desired:
        old = base_by_id.get(item.id)
        now = latest_by_id.get(item.id)
        if old is None:
            out.append(item)
            continue
        changed = item.content != old.content or item.status != old.status
        if now is None:
            if changed:
                out.append(item)
            continue
        out.append(
            Item(
                item.id,
                item.content if item.content != old.content else now.content,
                item.status if item.status != old.status else now.status,
            )
        )
    # Items others added: keep them, after their predecessor in the latest plan.
    for pos, item in enumerate(latest):
        if item.id in base_by_id or item.id in desired_ids:
            continue
        placed_ids = [x.id for x in out]
        insert_at = 0
        for prev in reversed(latest[:pos]):
            if prev.id in placed_ids:
                insert_at = placed_ids.index(prev.id) + 1
                break
        out.insert(insert_at, item)
    return out


def one_line(text: str) -> str:
    r"""`text` as it is rendered inside a plan note or tool reply: always one line.

    langchain's ``write_todos`` accepts any string as content (its ``Todo`` is a plain
    TypedDict) and renders the list with ``repr``; our notes put content on a line of its
    own, so a raw newline in one item forged further items, a "Current plan:" section or an
    instruction. Every non-printable character (each line break ``str.splitlines`` knows:
    ``\n \r \v \f \x1c-\x1e \x85 \u2028 \u2029``, other controls, lone surrogates) is shown
    as its Python escape (``\n``, ``\x85``, ``\u2028``); printable text stays as written. The
    stored text is never changed.

    Args:
        text: Content, an id, an owner or a status.

    Returns:
        The text with no line break in it.
    """
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def describe_changes(before: Sequence[Item], after: Sequence[Item]) -> list[str]:
    """Say in words how ``after`` differs from ``before`` (matched by id).

    Args:
        before: The old view.
        after: The new view.

    Returns:
        One line per change (empty when nothing differs); content and statuses go through
        `one_line`, so each change is exactly one line whatever they hold.
    """
    old = {item.id: item for item in before if item.id}
    new_ids = {item.id for item in after}
    lines: list[str] = []
    for item in after:
        prev = old.get(item.id)
        content, status = one_line(item.content), one_line(item.status)
        if prev is None:
            lines.append(f'- added: "{content}" ({status})')
            continue
        if prev.content != item.content:
            lines.append(f'- reworded: "{one_line(prev.content)}" -> "{content}"')
        if prev.status != item.status:
            lines.append(f'- "{content}": {one_line(prev.status)} -> {status}')
    lines.extend(
        f'- removed: "{one_line(prev.content)}"'
        for prev in before
        if prev.id and prev.id not in new_ids
    )
    if not lines and [i.id for i in before] != [i.id for i in after]:
        lines.append("- the items were reordered")
    return lines


def format_plan(items: Sequence[Item]) -> str:
    """A numbered plan, one line per item.

    Args:
        items: The items.

    Returns:
        The text (``(empty)`` for no items); each item is one line (`one_line`).
    """
    if not items:
        return "(empty)"
    return "\n".join(
        f"{i}. [{one_line(item.status)}] {one_line(item.content)}"
        for i, item in enumerate(items, 1)
    )
