"""Helpers shared by the fs tests (importable: conftest puts this folder on sys.path)."""

from __future__ import annotations

import dataclasses
from typing import Any

from deepagents.backends import StoreBackend
from langgraph.store.memory import InMemoryStore

_STAMPS = ("created_at", "modified_at")


def normalize(value: Any) -> Any:
    """A result as plain data, with timestamps reduced to "present and non-empty or not".

    Two backends run the same operations at different instants, so timestamp values can
    never agree; everything else (content, errors, pagination, sizes, order) must.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, normalize(dataclasses.asdict(value)))
    if isinstance(value, dict):
        return {
            k: (bool(v) if k in _STAMPS and isinstance(v, str) else normalize(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    return value


def grep_key(value: Any) -> Any:
    """A grep result with matches in (path, line) order.

    deepagents' `StoreBackend` reports files in its store's iteration order (insertion order
    for `InMemoryStore`, something else for `PostgresStore`); `RedisBackend` reports them in
    path order. The middleware sorts by path before showing them, so only the set matters.
    """
    data = normalize(value)
    name, fields = data
    if fields.get("matches") is not None:
        fields = {
            **fields,
            "matches": sorted(fields["matches"], key=lambda m: (m["path"], m["line"])),
        }
    return name, fields


def assert_same(name: str, got: Any, expected: Any, *, full_grep: Any = None) -> None:
    """Assert RedisBackend's result equals StoreBackend's (see `grep_key` for grep order)."""
    if name != "grep":
        assert normalize(got) == normalize(expected)
        return
    if not expected.truncated:
        assert grep_key(got) == grep_key(expected)
        return
    # capped: same count and flag; our matches are real matches (a prefix in path order)
    assert got.truncated
    assert expected.truncated
    assert len(got.matches) == len(expected.matches)
    everything = grep_key(full_grep)[1]["matches"]
    assert grep_key(got)[1]["matches"] == everything[: len(got.matches)]


def store_backend() -> StoreBackend:
    """The reference: deepagents' StoreBackend over an InMemoryStore."""
    return StoreBackend(store=InMemoryStore(), namespace=lambda _rt: ("fs",))
