"""Flows over repository calls: written once, run on the sync or the async methods.

A flow (the middleware's `write_todos`, reconciliation, backfill) is a generator that yields
`RepoCall`s, `("replace", args, kwargs)`, and receives each call's result. Core's generic
driver runs it with `repo_step` (the repository's sync methods) or `arepo_step` (its
`a`-methods), so the decisions a flow makes exist once and behave the same on both paths.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["RepoCall", "arepo_step", "repo_step"]

RepoCall = tuple[str, tuple[Any, ...], dict[str, Any]]
"""A repository call: method name (sync form), args, kwargs."""


def repo_step(
    repository: Any, expected: tuple[type[BaseException], ...]
) -> Callable[[RepoCall], Any]:
    """Run each call on the repository's sync methods.

    Args:
        repository: A `RedisTodoRepository`.
        expected: Errors the flow handles itself: they come back to it as the result
            instead of being raised.

    Returns:
        A step for `drive_operation`.
    """

    def step(call: RepoCall) -> Any:
        name, args, kwargs = call
        try:
            return getattr(repository, name)(*args, **kwargs)
        except expected as exc:
            return exc

    return step


def arepo_step(
    repository: Any, expected: tuple[type[BaseException], ...]
) -> Callable[[RepoCall], Awaitable[Any]]:
    """Async `repo_step`: each call on the repository's `a`-method of the same name."""

    async def step(call: RepoCall) -> Any:
        name, args, kwargs = call
        try:
            return await getattr(repository, f"a{name}")(*args, **kwargs)
        except expected as exc:
            return exc

    return step
