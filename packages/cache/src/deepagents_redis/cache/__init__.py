"""deepagents_redis.cache."""
