"""deepagents_redis.core."""
