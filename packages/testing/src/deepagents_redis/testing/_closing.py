"""`Closer`: what a test builds, closed after it (the `closer` fixture hands one out)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Closer"]

T = TypeVar("T")


class Closer:
    """Collects objects a test builds and closes them, newest first, at teardown.

    After an async test each object is closed with `aclose()` when it has one, in the test's
    event loop, where its asyncio clients were created; after a sync test with `close()`
    (an asyncio client closed from another loop fails or leaks its connections, so the
    choice follows the test, not the object). Every object gets its turn even when one fails
    to close; the failure is raised after the last.

    Example:
        ```python
        @pytest.fixture
        def make_cache(redis_target, closer):
            return closer.factory(RedisLLMCache, settings=redis_target.settings)
        ```
    """

    def __init__(self, *, use_aclose: bool) -> None:
        """An empty closer.

        Args:
            use_aclose: Close with `aclose()` where available (the test is async).
        """
        self._use_aclose = use_aclose
        self._objects: list[Any] = []

    def __call__(self, obj: T) -> T:
        """Close `obj` after the test.

        Args:
            obj: Anything with `close()` (or `aclose()`).

        Returns:
            `obj`, so that `backend = closer(RedisBackend(...))` reads naturally.

        Raises:
            TypeError: `obj` has neither `close()` nor `aclose()`.
        """
        if not callable(getattr(obj, "close", None)) and not callable(getattr(obj, "aclose", None)):
            raise TypeError(f"closer: {type(obj).__name__} has no close() or aclose()")
        self._objects.append(obj)
        return obj

    def factory(self, build: Callable[..., T], /, **defaults: Any) -> Callable[..., T]:
        """A factory that builds with `defaults` (overridden by its own keywords) and closes.

        Args:
            build: A class or function; keyword arguments only.
            **defaults: Keywords every call gets unless it passes its own.

        Returns:
            `factory(**kwargs)`, returning what `build(**{**defaults, **kwargs})` returned.
        """

        def make(**kwargs: Any) -> T:
            return self(build(**{**defaults, **kwargs}))

        return make

    async def aclose_all(self) -> None:
        """Close everything collected, newest first (the fixture's teardown)."""
        async with contextlib.AsyncExitStack() as stack:
            for obj in self._objects:
                aclose = getattr(obj, "aclose", None)
                if self._use_aclose and callable(aclose):
                    stack.push_async_callback(aclose)
                elif callable(getattr(obj, "close", None)):
                    stack.callback(obj.close)
                else:  # only aclose(), after a sync test: the fixture's loop is all there is
                    stack.push_async_callback(aclose)  # type: ignore[arg-type]
            self._objects.clear()

    def __len__(self) -> int:
        return len(self._objects)
