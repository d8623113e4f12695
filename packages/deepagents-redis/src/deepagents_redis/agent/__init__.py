"""deepagents_redis.agent."""
