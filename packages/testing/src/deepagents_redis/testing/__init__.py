"""deepagents_redis.testing."""
