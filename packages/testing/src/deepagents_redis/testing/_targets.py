"""`RedisTarget`: one Redis deployment (standalone or cluster) a test runs against."""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any, Literal, Self

if TYPE_CHECKING:
    from deepagents_redis.core import RedisSettings

__all__ = ["RedisTarget", "TargetMode", "unique_key_prefix"]

TargetMode = Literal["standalone", "cluster"]


def unique_key_prefix(nodeid: str = "") -> str:
    """Return a key prefix unique to one test (and one run of it).

    Args:
        nodeid: The test's node id; hashed so that keys hint at their test without leaking
            characters that are special in keys.

    Returns:
        An alphanumeric prefix such as `dartest1a2b3c4d5e6f7a8b`.
    """
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:8]
    return f"dartest{digest}{uuid.uuid4().hex[:8]}"


class RedisTarget:
    """Settings and lazily created clients for one deployment (see the `redis_target` fixture).

    `.client` is a sync client from core's `create_client`, created on first access.
    `.async_client` is an asyncio client from `create_async_client`, created by `aopen()` in the
    running event loop (the fixture opens it in the test's loop). The fixture closes both.
    """

    def __init__(self, *, mode: TargetMode, settings: RedisSettings) -> None:
        """Wrap `settings` for `mode`.

        Args:
            mode: `"standalone"` or `"cluster"`.
            settings: Core settings with the URL, key prefix and cluster mode of the target.
        """
        self.mode: TargetMode = mode
        """`"standalone"` or `"cluster"`."""
        self.settings: RedisSettings = settings
        """Core settings (URL, unique key prefix, `cluster="on"` for the cluster)."""
        self._client: Any = None
        self._async_client: Any = None

    @property
    def is_cluster(self) -> bool:
        """Whether this target is the Redis Cluster."""
        return self.mode == "cluster"

    @property
    def url(self) -> str:
        """The server URL."""
        return str(self.settings.url)

    @property
    def key_prefix(self) -> str:
        """The test's unique key prefix."""
        return str(self.settings.key_prefix)

    @property
    def client(self) -> Any:
        """Sync client (`redis.Redis` or `redis.RedisCluster`), created on first access."""
        if self._client is None:
            from deepagents_redis.core import create_client

            self._client = create_client(self.settings)
        return self._client

    @property
    def async_client(self) -> Any:
        """Asyncio client, opened by `aopen()` (the `redis_target` fixture does that).

        It belongs to the event loop that was running at `aopen()`: the test's loop when it
        comes from the fixture. Use it only in async tests.
        """
        if self._async_client is None:
            raise RuntimeError("no async client yet: `await target.aopen()` first")
        return self._async_client

    async def aopen(self) -> Self:
        """Create the asyncio client in the running loop (no I/O with `cluster` on/off).

        Returns:
            This object.
        """
        if self._async_client is None:
            from deepagents_redis.core import create_async_client

            self._async_client = await create_async_client(self.settings)
        return self

    def command_calls(self, *commands: str) -> int:
        """Calls of `commands` this target's servers have answered so far (every primary).

        Read from ``INFO commandstats``: how tests count round trips and script calls
        (take the count before and after the calls under test; the server is shared by the
        session's tests, so only the difference means anything).

        Args:
            *commands: Command names in lower case, as INFO spells them (``"evalsha"``,
                ``"getrange"``).

        Returns:
            The sum of their calls over the target's primaries.
        """
        client = self.client
        nodes = (
            [client.get_redis_connection(n) for n in client.get_primaries()]
            if self.is_cluster
            else [client]
        )
        total = 0
        for node in nodes:
            stats = node.info("commandstats")
            total += sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in commands)
        return total

    def close(self) -> None:
        """Close the sync client if it was created."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close both clients if they were created."""
        self.close()
        client, self._async_client = self._async_client, None
        if client is not None:
            await client.aclose()

    def __repr__(self) -> str:
        return f"RedisTarget(mode={self.mode!r}, key_prefix={self.key_prefix!r})"
