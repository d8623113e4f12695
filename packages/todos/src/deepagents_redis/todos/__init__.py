"""deepagents_redis.todos."""
