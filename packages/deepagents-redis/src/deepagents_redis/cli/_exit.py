"""Exit statuses shared by every subcommand.

===  =====================================================================================
 0   success (``health``: reachable and no warnings, or warnings without ``--strict``)
 1   the command ran but found a problem (``health``: the report is not ok, or
     ``--strict`` with warnings; ``migrate status``: the schema marker is absent or
     differs from the code's version; any command: the server lacks a command we need,
     or another deepagents-redis error, printed as one line)
 2   Redis could not be reached (connection refused/reset, timeout, breaker open)
64   usage or configuration error (bad arguments, no URL and no embedded fallback)
===  =====================================================================================
"""

__all__ = [
    "EXIT_OK",
    "EXIT_PROBLEM",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
]


EXIT_OK = 0
"""Success."""
EXIT_PROBLEM = 1
"""The command ran and found a problem it reports."""
EXIT_UNREACHABLE = 2
"""Redis could not be reached."""
EXIT_USAGE = 64
"""Usage or configuration error (``EX_USAGE`` from ``sysexits.h``)."""
