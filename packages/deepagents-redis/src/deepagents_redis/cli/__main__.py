"""``python -m deepagents_redis.cli``."""

import sys

from deepagents_redis.cli import main

sys.exit(main())
