"""``python -m deepagents_redis_benchmarks``."""

import sys

from deepagents_redis_benchmarks._runner import main

sys.exit(main())
