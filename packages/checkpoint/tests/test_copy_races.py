"""copy_thread against deletes that run at the same time (another process's)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator
from typing import Any

import pytest
from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.checkpoint._scripts import PUT
from deepagents_redis.core import RedisConnector, Script
from langgraph.checkpoint.base import empty_checkpoint


def _interleaved(
    op: Generator[Any, Any, Any], before: Callable[[Any], bool], action: Callable[[], None]
) -> Generator[Any, Any, Any]:
    """`op` as the driver runs it, with `action` run once before its first request that
    `before` picks."""
    reply: Any = None
    done = False
    while True:
        try:
            request = op.send(reply)
        except StopIteration as stop:
            return stop.value
        if not done and before(request):
            done = True
            action()
        reply = yield request


@pytest.mark.parametrize("how", ["sync", "async"])
async def test_a_run_copied_while_it_is_deleted_stays_findable(
    connector: RedisConnector, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """copy_thread names the target in each run's index before it puts the run's first
    checkpoint there. A delete_for_runs of that run in between (it reads the run's threads,
    finds none of the run in the target yet, and takes the name off) left the copied
    checkpoint in no run index: a second delete_for_runs could not find it. As put does,
    the copy names the run again after a put that was the target's first of the run."""
    tag = uuid.uuid4().hex[:6]
    run, source, target = f"run-{tag}", f"src-{tag}", f"dst-{tag}"
    copier = RedisSaver(connector=connector)
    deleter = RedisSaver(connector=connector)  # another process
    copier.put(
        {"configurable": {"thread_id": source, "checkpoint_ns": ""}},
        empty_checkpoint(),
        {"source": "loop", "step": 0, "run_id": run},
        {},
    )
    original = RedisSaver._copy_page_op

    def is_put(request: Any) -> bool:
        return isinstance(request, Script) and request.script is PUT

    def racing(self: RedisSaver, copy: Any) -> Any:
        return _interleaved(original(self, copy), is_put, lambda: deleter.delete_for_runs([run]))

    monkeypatch.setattr(RedisSaver, "_copy_page_op", racing)
    try:
        if how == "sync":
            copier.copy_thread(source, target)
        else:
            await copier.acopy_thread(source, target)
    finally:
        monkeypatch.undo()
    assert copier.get_tuple({"configurable": {"thread_id": target}}) is not None
    assert connector.client().sismember(copier.keys.run(run), target)
    deleter.delete_for_runs([run])
    assert copier.get_tuple({"configurable": {"thread_id": target}}) is None


@pytest.mark.parametrize("how", ["sync", "async"])
async def test_a_target_deleted_while_it_is_copied_stays_in_the_thread_index(
    connector: RedisConnector, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """copy_thread named the target in the thread index before its first put, and again
    after it when that put created the thread. A delete_thread of the target after that
    (another process resetting it) took the name off, and the copy's next put created the
    thread again without naming it: threads(), list(None) and the migration missed it. As
    put does, every put that creates the target names it after."""
    tag = uuid.uuid4().hex[:6]
    source, target = f"src-{tag}", f"dst-{tag}"
    copier = RedisSaver(connector=connector)
    deleter = RedisSaver(connector=connector)  # another process
    parent: str | None = None
    for step in range(2):
        checkpoint = empty_checkpoint()
        conf: dict[str, Any] = {"thread_id": source, "checkpoint_ns": ""}
        if parent:
            conf["checkpoint_id"] = parent
        stored = copier.put({"configurable": conf}, checkpoint, {"step": step}, {})
        parent = stored["configurable"]["checkpoint_id"]
    original = RedisSaver._copy_page_op
    puts = [0]

    def second_put(request: Any) -> bool:
        if isinstance(request, Script) and request.script is PUT:
            puts[0] += 1
        return puts[0] == 2

    def racing(self: RedisSaver, copy: Any) -> Any:
        return _interleaved(original(self, copy), second_put, lambda: deleter.delete_thread(target))

    monkeypatch.setattr(RedisSaver, "_copy_page_op", racing)
    try:
        if how == "sync":
            copier.copy_thread(source, target)
        else:
            await copier.acopy_thread(source, target)
    finally:
        monkeypatch.undo()
    assert puts[0] == 2  # the delete ran between the two puts
    assert copier.get_tuple({"configurable": {"thread_id": target}}) is not None
    assert target in list(copier.threads())
