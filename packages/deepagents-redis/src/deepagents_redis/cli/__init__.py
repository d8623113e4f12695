"""deepagents_redis.cli."""
