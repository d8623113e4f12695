"""The ``deepagents-redis`` command line.

Run ``deepagents-redis --help``. Subcommands live in one module each (``_health.py``,
``_migrate.py``, ``_demo.py``, ...) and are registered in `deepagents_redis.cli._app`.
Exit statuses are documented in `deepagents_redis.cli._exit`.
"""

from deepagents_redis.cli._app import build_parser, main, reference

__all__ = ["build_parser", "main", "reference"]
