"""deepagents-redis checkpoint: a LangGraph checkpointer on plain Redis, Valkey and Cluster.

`RedisSaver` implements every method of `BaseCheckpointSaver` natively, sync and async (get,
list, put, put_writes, delete_thread, delete_for_runs, copy_thread, prune), with no Redis
modules: one thread's keys share a hash tag and each write is one script in one slot.
"""

from deepagents_redis.checkpoint._migrate import CopyReport, copy_threads, thread_ids
from deepagents_redis.checkpoint._saver import RedisSaver
from deepagents_redis.checkpoint._serde import default_serde
from deepagents_redis.checkpoint._settings import CheckpointOptions, CheckpointSettings

__all__ = [
    "CheckpointOptions",
    "CheckpointSettings",
    "CopyReport",
    "RedisSaver",
    "copy_threads",
    "default_serde",
    "thread_ids",
]
