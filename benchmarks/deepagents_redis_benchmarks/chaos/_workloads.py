"""The workloads of the chaos suite: each phase's typical write, with its acknowledgements.

A workload performs operation ``i`` (``op(i)``; it raises on failure). The runner retries each
failed operation once after the fault, as a caller would, and then ``verify(acked)`` says how
many acknowledged operations were lost and how many were applied twice. Every operation is
written the way the docs recommend for retries (an item id for todos, an idempotency key for
coord, the checkpoint's own id). The cache has nothing to lose: its row measures misses and
latency.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

__all__ = ["WORKLOADS", "Workload"]


class Workload:
    """One phase's operation under a fault."""

    name = ""

    def __init__(self, connector: Any) -> None:
        self.connector = connector
        self.tag = uuid.uuid4().hex[:8]

    def op(self, i: int) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def hot_key(self) -> str:  # pragma: no cover - overridden
        """A key in the slot the workload writes to now."""
        raise NotImplementedError

    def verify(self, acked: list[Any]) -> tuple[int, int]:
        """``(lost, duplicated)`` among the acknowledged operations."""
        return 0, 0

    def close(self) -> None:
        """Release what the workload built."""


class CacheWorkload(Workload):
    """`RedisLLMCache`: update then look up a rotating key (fails open: misses, never errors)."""

    name = "cache"

    def __init__(self, connector: Any) -> None:
        super().__init__(connector)
        from deepagents_redis.cache import RedisLLMCache

        self.cache = RedisLLMCache(connector=connector, namespace=f"chaos-{self.tag}")

    def op(self, i: int) -> Any:
        from langchain_core.outputs import Generation

        key = f"prompt {i % 50}"
        self.cache.update(key, "llm", [Generation(text=f"answer {i}")])
        return self.cache.lookup(key, "llm") is not None

    def hot_key(self) -> str:
        return self.cache.redis_keys("prompt 0", "llm")["entry"]  # a namespace is one slot

    def close(self) -> None:
        self.cache.close()


class TodosWorkload(Workload):
    """`RedisTodoRepository.add`: one item per operation, 50 per plan."""

    name = "todos"

    def __init__(self, connector: Any) -> None:
        super().__init__(connector)
        from deepagents_redis.todos import RedisTodoRepository

        self.repo = RedisTodoRepository(connector=connector)
        self.last = 0
        """The latest operation: its plan is the one being filled now."""

    def _scope(self, i: int) -> str:
        return f"chaos-{self.tag}-{i // 50}"

    def op(self, i: int) -> Any:
        # an item id makes the caller's retry after a lost reply apply once
        self.last = i
        self.repo.add(self._scope(i), f"item {i}", item_id=f"i{i}")
        return i

    def hot_key(self) -> str:
        # the plan being filled now (and the next few operations')
        return self.repo.keyspace.key("todos", self._scope(self.last + 5), "plan")

    def verify(self, acked: list[Any]) -> tuple[int, int]:
        seen: Counter[str] = Counter()
        for scope in {self._scope(i) for i in acked}:
            seen.update(item.content for item in self.repo.get(scope).items)
        lost = sum(1 for i in acked if seen[f"item {i}"] == 0)
        return lost, sum(1 for n in seen.values() if n > 1)

    def close(self) -> None:
        self.repo.close()


class FsWorkload(Workload):
    """`RedisBackend.write` of a new 1 KB file per operation."""

    name = "fs"

    def __init__(self, connector: Any) -> None:
        super().__init__(connector)
        from deepagents_redis.fs import RedisBackend

        self.backend = RedisBackend(connector=connector, namespace=f"chaos-{self.tag}")

    def op(self, i: int) -> Any:
        result = self.backend.write(f"/chaos/f{i}.txt", f"file {i}\n" + "x" * 1000)
        if result.error and "already exists" not in result.error:
            # (a retry of a write whose reply was lost finds its own file: that is success)
            raise RuntimeError(result.error)
        return i

    def hot_key(self) -> str:
        return self.connector.keyspace.key("fs", f"chaos-{self.tag}", "idx")  # one slot

    def verify(self, acked: list[Any]) -> tuple[int, int]:
        lost = 0
        for i in acked:
            read = self.backend.read(f"/chaos/f{i}.txt")
            if read.file_data is None or not str(read.file_data["content"]).startswith(f"file {i}"):
                lost += 1
        return lost, 0

    def close(self) -> None:
        self.backend.close()


class CoordWorkload(Workload):
    """`TaskClient.submit` with an idempotency key per operation (no worker: records only)."""

    name = "coord"

    def __init__(self, connector: Any) -> None:
        super().__init__(connector)
        from deepagents_redis.coord import TaskClient

        self.tasks = TaskClient(
            connector=connector, namespace=f"chaos-{self.tag}", check_agents=False
        )

    def op(self, i: int) -> Any:
        return (i, self.tasks.submit("chaos", {"i": i}, idempotency_key=f"op-{i}"))

    def hot_key(self) -> str:
        return str(self.tasks.keys.queue("chaos").stream)  # every submit appends to it

    def verify(self, acked: list[Any]) -> tuple[int, int]:
        lost = 0
        for _i, task_id in acked:
            try:
                self.tasks.get(task_id)
            except Exception:
                lost += 1
        # every task created is on the queue once: more entries than keys is a duplicate
        queued = self.tasks.active("chaos", count=100_000)
        return lost, max(0, len(queued) - len({i for i, _task in acked}))

    def close(self) -> None:
        self.tasks.close()


class CheckpointWorkload(Workload):
    """`RedisSaver.put`: a chain of checkpoints on one thread, one per operation."""

    name = "checkpoint"

    def __init__(self, connector: Any) -> None:
        super().__init__(connector)
        from deepagents_redis.checkpoint import RedisSaver

        self.saver = RedisSaver(connector=connector)
        self.thread = f"chaos-{self.tag}"
        self.parent: str | None = None
        self.attempts: dict[int, Any] = {}

    def op(self, i: int) -> Any:
        from langgraph.checkpoint.base import empty_checkpoint

        if i not in self.attempts:  # a retry puts the same checkpoint again, as LangGraph does
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"i": i}
            checkpoint["channel_versions"] = {"i": f"{i + 1:032}.0"}
            conf: dict[str, Any] = {"thread_id": self.thread, "checkpoint_ns": ""}
            if self.parent:
                conf["checkpoint_id"] = self.parent
            self.attempts[i] = ({"configurable": conf}, checkpoint)
        config, checkpoint = self.attempts[i]
        self.saver.put(config, checkpoint, {"step": i}, {"i": f"{i + 1:032}.0"})
        self.parent = checkpoint["id"]
        return checkpoint["id"]

    def hot_key(self) -> str:
        return self.saver.keys.thread(self.thread).index  # a thread is one slot

    def verify(self, acked: list[Any]) -> tuple[int, int]:
        stored = Counter(
            t.checkpoint["id"]
            for t in self.saver.list({"configurable": {"thread_id": self.thread}})
        )
        return sum(1 for cid in acked if not stored[cid]), sum(1 for n in stored.values() if n > 1)

    def close(self) -> None:
        self.saver.close()


WORKLOADS: dict[str, type[Workload]] = {
    w.name: w for w in (CacheWorkload, TodosWorkload, FsWorkload, CoordWorkload, CheckpointWorkload)
}
