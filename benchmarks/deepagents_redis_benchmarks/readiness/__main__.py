"""``python -m deepagents_redis_benchmarks.readiness``."""

from deepagents_redis_benchmarks.readiness import main

raise SystemExit(main())
