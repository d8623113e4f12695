"""One connection per component, and who closes it (issue 9 §1).

Every component (`RedisLLMCache`, `RedisNodeCache`, `RedisTodoRepository`, `RedisBackend`,
and what comes later) takes `connector=`, a `RedisConnector` that may be shared by many
components, or the conveniences `url=`, `settings=`, `client=`, `async_client=` from which
it builds its own. The rule, in one place:

* The five keywords are declared once, as the `Connection` TypedDict; components take them
  as `**connection: Unpack[Connection]`.
* `connector=` excludes the conveniences: passing both is a `ConfigurationError` that names
  them (which one should win is not ours to guess).
* A connector the component built is the component's: `close()`/`aclose()` and the `with` /
  `async with` forms close it (and, through it, only the clients it created).
* A connector the caller passed is the caller's: the component never closes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self, TypedDict, Unpack, cast

from deepagents_redis.core._clients import AsyncClient, SyncClient
from deepagents_redis.core._connector import RedisConnector
from deepagents_redis.core._errors import ConfigurationError
from deepagents_redis.core._settings import RedisSettings

__all__ = ["Closing", "Connection", "RedisComponent", "resolve_connector", "split_connection"]


class Connection(TypedDict, total=False):
    """How a component connects: the keyword arguments every component accepts.

    Components take them as `**connection: Unpack[Connection]`, so the five names are
    declared once, type-checked at every call site, and checked again at run time (an
    unknown keyword is a `TypeError`, as with an explicit signature).

    Attributes:
        connector: A shared `RedisConnector` (the caller keeps and closes it; excludes the
            four conveniences).
        url: Redis URL (else `settings`, `client`/`async_client`, or `DEEPAGENTS_REDIS_URL`).
        settings: Connection settings (key prefix included).
        client: A ready sync client (never closed by the component).
        async_client: A ready asyncio client (never closed by the component).
    """

    connector: RedisConnector | None
    url: str | None
    settings: RedisSettings | None
    client: SyncClient | None
    async_client: AsyncClient | None


CONNECTION_KEYS: frozenset[str] = frozenset(Connection.__annotations__)


def split_connection(kwargs: Mapping[str, Any]) -> tuple[Connection, dict[str, Any]]:
    """Separate the connection arguments from a component's other keyword arguments.

    For components that take keyword overrides of their phase settings next to the
    connection (`RedisSaver(url=..., ttl_seconds=...)`).

    Args:
        kwargs: Every keyword argument the component got.

    Returns:
        `(connection, rest)`.
    """
    connection = cast(Connection, {k: v for k, v in kwargs.items() if k in CONNECTION_KEYS})
    rest = {k: v for k, v in kwargs.items() if k not in CONNECTION_KEYS}
    return connection, rest


def resolve_connector(owner: str, **connection: Unpack[Connection]) -> tuple[RedisConnector, bool]:
    """The connector a component uses, and whether the component owns it.

    Args:
        owner: The component's name, for the error message.
        **connection: `connector=`, or the conveniences `url=`, `settings=`, `client=`,
            `async_client=` (see `Connection`).

    Returns:
        `(connector, owned)`: `owned` is True when the connector was built here.

    Raises:
        ConfigurationError: `connector=` together with a convenience argument, or nothing
            to connect with.
        TypeError: A keyword that is not a connection argument.
    """
    unknown = sorted(set(connection) - CONNECTION_KEYS)
    if unknown:
        raise TypeError(f"{owner}() got an unexpected keyword argument {unknown[0]!r}")
    connector = connection.get("connector")
    url = connection.get("url")
    settings = connection.get("settings")
    client = connection.get("client")
    async_client = connection.get("async_client")
    if connector is not None:
        given = [
            name
            for name, value in (
                ("url", url),
                ("settings", settings),
                ("client", client),
                ("async_client", async_client),
            )
            if value is not None
        ]
        if given:
            listed = ", ".join(f"{name}=" for name in given)
            raise ConfigurationError(
                f"{owner} got connector= and {listed}: pass the connector alone (it carries "
                f"the settings and clients), or the conveniences without a connector"
            )
        if not isinstance(connector, RedisConnector):
            raise ConfigurationError(
                f"{owner}: connector= must be a RedisConnector, not {type(connector).__name__}"
            )
        return connector, False
    return (
        RedisConnector(url=url, settings=settings, client=client, async_client=async_client),
        True,
    )


class Closing:
    """`with obj:` closes `obj` on the way out: `__exit__` calls `close()`, once per class.

    `__enter__` returns the object; a class that must start first (a server, a cluster)
    overrides it to return `self.start()`.
    """

    def close(self) -> None:  # pragma: no cover - every subclass defines it
        """Release what the object holds."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RedisComponent(Closing):
    """Lifecycle shared by every component: `close`, `aclose`, `with`, `async with`.

    A subclass calls `_attach(...)` in its `__init__` and, when it holds more than the
    connector (a background thread, say), overrides `_close_resources()`, which runs before the
    connector is closed, on both the sync and the async path.
    """

    _connector: RedisConnector
    _owns_connector: bool

    def _attach(self, **connection: Unpack[Connection]) -> RedisConnector:
        """Resolve and keep the connector (see `resolve_connector`).

        Args:
            **connection: The component's connection arguments (see `Connection`).

        Returns:
            The connector.
        """
        self._connector, self._owns_connector = resolve_connector(type(self).__name__, **connection)
        return self._connector

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Self:
        """Build the component on `url` (like redis-py's `from_url`, it returns the object).

        Close it with `close()`/`aclose()` or use it in a `with` block.

        Args:
            url: Redis URL.
            **kwargs: Any other keyword argument of the constructor.

        Returns:
            The component, owning its connector.
        """
        factory: Any = cls  # subclasses take url=; the mixin itself has no __init__
        return cast(Self, factory(url=url, **kwargs))

    @property
    def connector(self) -> RedisConnector:
        """The connection this component uses (shared, or built from the conveniences)."""
        return self._connector

    @property
    def owns_connector(self) -> bool:
        """Whether `close()` closes the connector (True when this component built it)."""
        return self._owns_connector

    def _close_resources(self) -> None:
        """Release what the component holds besides the connector (default: nothing)."""

    def close(self) -> None:
        """Release this component; close its connector if it built it (yours stays open)."""
        self._close_resources()
        if self._owns_connector:
            self._connector.close()

    async def aclose(self) -> None:
        """Async twin of `close` (closes the asyncio client of a connector it built)."""
        self._close_resources()
        if self._owns_connector:
            await self._connector.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
