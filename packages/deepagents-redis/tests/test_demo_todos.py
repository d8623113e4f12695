"""The todos demo section: a plan resumed by a new process, an outside update seen."""

from __future__ import annotations

import pytest
import redis
from deepagents_redis.cli._demo import DemoContext
from deepagents_redis.cli._demo_todos import REVIEW_ITEM, run
from deepagents_redis.core import RedisConnector, RedisSettings

pytestmark = pytest.mark.integration


def test_todos_demo_section(redis_url: str, key_prefix: str) -> None:
    lines: list[str] = []
    connector = RedisConnector(settings=RedisSettings(url=redis_url, key_prefix=key_prefix))
    try:
        ctx = DemoContext(connector=connector, url=redis_url, source="--url", out=lines.append)
        run(ctx)
    finally:
        connector.close()
    facts = ctx.facts["todos"]
    assert facts["child_exit"] == 0
    assert facts["resumed"]
    assert facts["saw_update"]
    assert facts["final_version"] == 3
    assert facts["final"][-1] == {"content": REVIEW_ITEM, "status": "pending"}
    assert facts["final"][0]["status"] == "completed"
    text = "\n".join(lines)
    assert "[worker 2]   | [shared todo plan] This run continues the shared plan" in text
    assert "The plan changed outside this run (version 2 -> 3)" in text
    assert redis_url not in text
    # Nothing left behind under the demo's prefix (plan, log, op-id records).
    with redis.Redis.from_url(redis_url) as raw:
        assert list(raw.scan_iter(match=f"{key_prefix}:*", count=1000)) == []
