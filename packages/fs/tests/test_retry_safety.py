"""A delete whose reply is lost is retried safely (issue 8 defect 3), on a real server.

Worker A deletes a file; the server applies it but A never sees the reply. Worker B then
writes the same path and is told ok. A's retry must neither delete B's file nor answer
"File not found", and A must be told its delete succeeded: it did.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.exceptions as rexc
from deepagents_redis.core import RedisSettings
from deepagents_redis.fs import RedisBackend
from deepagents_redis.fs._common import _DELETE

pytestmark = pytest.mark.integration


class _LosesFirstReply(redis.Redis):
    """Applies the first call of one script, then raises a timeout as if the reply was lost."""

    sha: str = ""
    lost = False
    on_lost: Callable[[], None] = staticmethod(lambda: None)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        reply = super().execute_command(*args, **options)
        ours = args[0] in ("EVALSHA", "EVAL") and args[1] in (self.sha, _DELETE.source)
        if ours and not self.lost:
            self.lost = True
            self.on_lost()
            raise rexc.TimeoutError("Timeout reading from socket (reply dropped by the test)")
        return reply


def test_retried_delete_after_lost_reply_keeps_a_later_write(redis_url: str) -> None:
    # Standalone only: the lossy client and worker B must share one server.
    namespace = f"lost-reply-{uuid.uuid4().hex[:8]}"
    settings = RedisSettings(url=redis_url, cluster="off", key_prefix="rs")
    worker_b = RedisBackend(settings=settings, namespace=namespace)
    lossy = _LosesFirstReply.from_url(redis_url)
    lossy.sha = _DELETE.sha
    worker_a = RedisBackend(client=lossy, settings=settings, namespace=namespace)
    try:
        assert worker_a.write("/f.txt", "from A").error is None
        lossy.on_lost = lambda: worker_b.write("/f.txt", "from B")  # lands before A's retry

        result = worker_a.delete("/f.txt")

        assert lossy.lost
        assert result.error is None, result.error  # it was deleted: say so
        assert worker_b.read("/f.txt").file_data["content"] == "from B"  # type: ignore[index]
        worker_b.delete("/f.txt")
    finally:
        worker_b.close()
        lossy.close()


def _injected(args: tuple[Any, ...], failing: bool) -> None:
    if failing and args[0] == "ZRANGE":  # the purge a write runs after finding expired files
        raise rexc.ConnectionError("Connection reset by peer (injected by the test)")


class _PurgeFails(redis.Redis):
    failing = False

    def execute_command(self, *args: Any, **options: Any) -> Any:
        _injected(args, self.failing)
        return super().execute_command(*args, **options)


class _APurgeFails(redis.asyncio.Redis):
    failing = False

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        _injected(args, self.failing)
        return await super().execute_command(*args, **options)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_failed_purge_after_a_committed_write_does_not_fail_the_write(
    redis_url: str, mode: str
) -> None:
    """A write that finds expired index entries purges a batch of them; that purge failing
    (a reset, a failover) raised from the write after it had committed, so a caller that
    retried its `expected_version=0` write was told it conflicted with itself."""
    namespace = f"purge-fails-{uuid.uuid4().hex[:8]}"
    settings = RedisSettings(url=redis_url, cluster="off", key_prefix="rs")
    flaky = _PurgeFails.from_url(redis_url)
    aflaky = _APurgeFails.from_url(redis_url)
    raw = redis.Redis.from_url(redis_url)
    b = RedisBackend(
        client=flaky,
        async_client=aflaky,
        settings=settings,
        namespace=namespace,
        ttl_rules={"/tmp/": 0.05},
    )
    try:
        assert b.write("/tmp/old.txt", "x").error is None
        for _ in range(500):  # bounded: until the server has expired it
            if b.stat("/tmp/old.txt") is None:
                break
            await asyncio.sleep(0.02)
        assert b.stat("/tmp/old.txt") is None
        flaky.failing = aflaky.failing = True
        if mode == "sync":
            result = b.write("/new.txt", "y", expected_version=0)
        else:
            result = await b.awrite("/new.txt", "y", expected_version=0)
        assert result.error is None, result.error
        assert b.read("/new.txt").file_data["content"] == "y"  # type: ignore[index]
        head = b._head(namespace)
        assert raw.zcard(f"{head}:exp") == 1  # not purged: left for the next write
        flaky.failing = aflaky.failing = False
        assert b.write("/other.txt", "z").error is None
        assert raw.zcard(f"{head}:exp") == 0
        assert sorted(raw.hkeys(f"{head}:files")) == [b"/new.txt", b"/other.txt"]
    finally:
        b.close()
        flaky.close()
        await aflaky.aclose()
        raw.close()
