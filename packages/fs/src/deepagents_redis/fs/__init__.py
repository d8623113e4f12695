"""deepagents_redis.fs."""
