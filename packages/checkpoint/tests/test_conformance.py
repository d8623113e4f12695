"""LangGraph's checkpointer conformance suite, every capability, standalone and Cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.core import RedisConnector
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES


async def test_every_capability_passes(connector: RedisConnector) -> None:
    @checkpointer_test(name="RedisSaver")
    async def factory() -> AsyncIterator[RedisSaver]:
        yield RedisSaver(connector=connector)

    report = await validate(factory)
    failures: dict[str, Any] = {
        name: result.failures for name, result in report.results.items() if not result.passed
    }
    assert not failures, failures
    # every capability was detected and ran (none skipped as "not implemented")
    assert {name for name, r in report.results.items() if r.detected} == {
        c.value for c in ALL_CAPABILITIES
    }
    assert all(r.tests_passed > 0 for r in report.results.values())


async def test_sync_methods_pass_too(connector: RedisConnector) -> None:
    """The suite drives the async methods; the same suite through the sync ones (threads)."""
    import asyncio

    class SyncOnly(RedisSaver):
        async def aget_tuple(self, config):  # type: ignore[no-untyped-def]
            return await asyncio.to_thread(self.get_tuple, config)

        async def aput(self, *args):  # type: ignore[no-untyped-def]
            return await asyncio.to_thread(self.put, *args)

        async def aput_writes(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return await asyncio.to_thread(self.put_writes, *args, **kwargs)

        async def alist(self, config, **kwargs):  # type: ignore[no-untyped-def]
            for tup in await asyncio.to_thread(lambda: list(self.list(config, **kwargs))):
                yield tup

        async def adelete_thread(self, thread_id):  # type: ignore[no-untyped-def]
            return await asyncio.to_thread(self.delete_thread, thread_id)

        async def adelete_for_runs(self, run_ids):  # type: ignore[no-untyped-def]
            return await asyncio.to_thread(self.delete_for_runs, run_ids)

        async def acopy_thread(self, src, dst):  # type: ignore[no-untyped-def]
            return await asyncio.to_thread(self.copy_thread, src, dst)

        async def aprune(self, thread_ids, **kwargs):  # type: ignore[no-untyped-def]
            return await asyncio.to_thread(self.prune, thread_ids, **kwargs)

    @checkpointer_test(name="RedisSaver (sync)")
    async def factory() -> AsyncIterator[RedisSaver]:
        yield SyncOnly(connector=connector)

    report = await validate(factory)
    failures = {n: r.failures for n, r in report.results.items() if not r.passed}
    assert not failures, failures


@pytest.mark.parametrize("ttl", [3600])
async def test_conformance_with_a_ttl(connector: RedisConnector, ttl: int) -> None:
    @checkpointer_test(name="RedisSaver ttl")
    async def factory() -> AsyncIterator[RedisSaver]:
        yield RedisSaver(connector=connector, ttl_seconds=ttl, refresh_on_read=True)

    report = await validate(factory)
    failures = {n: r.failures for n, r in report.results.items() if not r.passed}
    assert not failures, failures
