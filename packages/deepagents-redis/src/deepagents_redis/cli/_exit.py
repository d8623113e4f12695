"""Exit statuses shared by every subcommand.

===  =====================================================================================
 0   success (``health``: reachable and no warnings, or warnings without ``--strict``)
 1   the command ran but found a problem (``health``: the report is not ok, or
     ``--strict`` with warnings; ``migrate status``: the schema marker is absent or
     differs from the code's version; any command: the server lacks a command we need,
     or another deepagents-redis error, printed as one line)
 2   Redis could not be reached (connection refused/reset, timeout, breaker open), or
     another server the command needs (``checkpoint copy``: a PostgreSQL checkpointer)
64   usage or configuration error (bad arguments, no URL and no embedded fallback)
130  interrupted (Ctrl-C), as shells report a process ended by SIGINT
===  =====================================================================================
"""

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PROBLEM",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "UnreachableError",
]


EXIT_OK = 0
"""Success."""
EXIT_PROBLEM = 1
"""The command ran and found a problem it reports."""
EXIT_UNREACHABLE = 2
"""Redis could not be reached."""
EXIT_USAGE = 64
"""Usage or configuration error (``EX_USAGE`` from ``sysexits.h``)."""
EXIT_INTERRUPTED = 130
"""Interrupted by Ctrl-C (128 + SIGINT, what a shell reports for a process SIGINT ended)."""


class UnreachableError(Exception):
    """A server a command needs besides Redis (a PostgreSQL checkpointer) cannot be reached.

    `deepagents_redis.cli.main` prints the message as one line and exits `EXIT_UNREACHABLE`;
    the message must not hold the server's URL (it may carry a password).
    """
