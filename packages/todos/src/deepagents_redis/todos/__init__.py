"""Durable, shared todo plans on Redis for deepagents.

* `RedisTodoRepository`: versioned plans with atomic per-item operations (sync and
  async), each mutation one Lua script call with an operation id so a retry applies once.
* `RedisTodoMiddleware`: langchain's ``TodoListMiddleware`` (same name, tool and
  prompt) with the plan kept in Redis; `RedisTodoSubagentMiddleware` lets
  subagents read the plan and update their item.
* `TodoReconciler` and `TodoBackfill`: compare with / copy from LangGraph
  checkpoints.
"""

from deepagents_redis.todos._errors import ItemClaimedError, TooManyItemsError
from deepagents_redis.todos._middleware import RedisPlanningState, RedisTodoMiddleware
from deepagents_redis.todos._models import TODO_STATUSES, Todo, TodoChange, TodoList, TodoStatus
from deepagents_redis.todos._reconcile import (
    BackfillReport,
    Drift,
    DriftKind,
    ReconcileReport,
    ThreadTodos,
    TodoBackfill,
    TodoReconciler,
)
from deepagents_redis.todos._repository import (
    MAX_LEASE_SECONDS,
    MAX_TAG_CHARS,
    RedisTodoRepository,
)
from deepagents_redis.todos._settings import ConflictPolicy, TodosSettings
from deepagents_redis.todos._subagent import RedisTodoSubagentMiddleware

__all__ = [
    "MAX_LEASE_SECONDS",
    "MAX_TAG_CHARS",
    "TODO_STATUSES",
    "BackfillReport",
    "ConflictPolicy",
    "Drift",
    "DriftKind",
    "ItemClaimedError",
    "ReconcileReport",
    "RedisPlanningState",
    "RedisTodoMiddleware",
    "RedisTodoRepository",
    "RedisTodoSubagentMiddleware",
    "ThreadTodos",
    "Todo",
    "TodoBackfill",
    "TodoChange",
    "TodoList",
    "TodoReconciler",
    "TodoStatus",
    "TodosSettings",
    "TooManyItemsError",
]
