"""A delete whose reply is lost is retried safely (issue 8 defect 3), on a real server.

Worker A deletes a file; the server applies it but A never sees the reply. Worker B then
writes the same path and is told ok. A's retry must neither delete B's file nor answer
"File not found", and A must be told its delete succeeded: it did.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
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
