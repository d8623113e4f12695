"""One connector per component, and who closes it (issue 9 §1), on a real server."""

from __future__ import annotations

import time
from typing import Any, Unpack

import pytest
from deepagents_redis.core import (
    ConfigurationError,
    Connection,
    RedisComponent,
    RedisConnector,
    RedisSettings,
    resolve_connector,
    split_connection,
)

pytestmark = pytest.mark.integration


class Widget(RedisComponent):
    """The smallest component: what every phase component does with its connection."""

    def __init__(self, **connection: Unpack[Connection]) -> None:
        self.released = 0
        self._attach(**connection)

    def _close_resources(self) -> None:
        self.released += 1


def _connected(observer: Any, client_id: int) -> bool:
    return any(int(c["id"]) == client_id for c in observer.client_list())


def _dropped(observer: Any, client_id: int) -> bool:
    # The server sees a closed socket on its next event-loop turn: poll, bounded.
    for _ in range(100):
        if not _connected(observer, client_id):
            return True
        time.sleep(0.02)
    return False


def test_a_component_closes_the_connector_it_built(redis_url: str, redis_client: Any) -> None:
    widget = Widget.from_url(redis_url)  # returns the object, like redis-py's from_url
    assert isinstance(widget, Widget)
    assert widget.owns_connector
    client_id = widget.connector.client().client_id()
    assert _connected(redis_client, client_id)
    widget.close()
    assert widget.released == 1
    assert _dropped(redis_client, client_id)


def test_a_component_never_closes_a_shared_connector(redis_settings: RedisSettings) -> None:
    with RedisConnector(settings=redis_settings) as shared:
        client = shared.client()
        client_id = client.client_id()
        with Widget(connector=shared) as first, Widget(connector=shared) as second:
            assert first.connector is second.connector is shared
            assert not first.owns_connector
        # Both components closed; the shared client is still the connector's, connected.
        assert shared.client() is client
        assert client.client_id() == client_id


async def test_async_close_follows_the_same_rule(redis_settings: RedisSettings) -> None:
    shared = RedisConnector(settings=redis_settings)
    aclient = await shared.aclient()
    async with Widget(connector=shared):
        pass
    assert await aclient.ping()
    own = Widget(settings=redis_settings)
    await (await own.connector.aclient()).ping()
    await own.aclose()
    assert own.released == 1
    await shared.aclose()


@pytest.mark.parametrize("extra", ["url", "settings", "client", "async_client"])
def test_connector_and_a_convenience_is_a_configuration_error(
    redis_settings: RedisSettings, extra: str
) -> None:
    shared = RedisConnector(settings=redis_settings)
    value: Any = {"url": "redis://h:1/0", "settings": redis_settings}.get(extra, object())
    with pytest.raises(ConfigurationError, match=f"connector= and {extra}="):
        Widget(connector=shared, **{extra: value})


def test_connector_must_be_a_connector() -> None:
    with pytest.raises(ConfigurationError, match="must be a RedisConnector"):
        resolve_connector("Widget", connector="redis://h:1/0")  # type: ignore[arg-type]


def test_an_unknown_keyword_is_a_type_error_as_with_an_explicit_signature() -> None:
    with pytest.raises(TypeError, match="Widget\\(\\) got an unexpected keyword argument 'ulr'"):
        Widget(ulr="redis://h:1/0")  # type: ignore[call-arg]


def test_split_connection_separates_the_connection_from_overrides() -> None:
    connection, rest = split_connection({"url": "redis://h:1/0", "namespace": "n", "client": None})
    assert connection == {"url": "redis://h:1/0", "client": None}
    assert rest == {"namespace": "n"}
