"""Show or advance the key-schema version of a key prefix.

Every key carries the schema version (<prefix>:v<N>:...), and the marker key <prefix>:schema
records which version the data under that prefix was written with. 'status' compares the
marker with this release's version (--json for one JSON object); 'up' writes the marker when
it is absent and applies pending migrations. Version 1 is the first schema, so there is
nothing else to migrate yet.

Exit status: 0 up to date (or marker written); 1 marker absent (status), migrations pending
(status), written by a newer release, or not a version number (changed by hand; fix or
delete it); 2 Redis is unreachable; 64 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from deepagents_redis.cli._exit import EXIT_OK, EXIT_PROBLEM
from deepagents_redis.cli._parsers import add_actions, add_command
from deepagents_redis.cli._target import add_target_arguments, connect

__all__ = [
    "MIGRATIONS",
    "register",
    "run_status",
    "run_up",
]


MIGRATIONS: dict[int, Callable[[Any, Any], None]] = {}
"""Steps keyed by the version they migrate *to* (``fn(client, keyspace)``). Empty: v1 is first.

A release with schema version N adds its step here as ``MIGRATIONS[N]``; ``up`` runs the
steps from the stored version to the code's, moving the marker after each.
"""


def register(subparsers: Any) -> None:
    """Add the ``migrate`` subcommand with ``status`` and ``up``."""
    parser = add_command(
        subparsers, "migrate", help="Show or advance the key-schema version.", doc=__doc__
    )
    actions = add_actions(parser)
    for name, help_text, handler in (
        ("status", "Compare the stored schema marker with the code's version.", run_status),
        ("up", "Write the marker when absent; apply pending migrations.", run_up),
    ):
        action = actions.add_parser(name, help=help_text)
        add_target_arguments(action)
        if name == "status":
            action.add_argument(
                "--json",
                action="store_true",
                help="Print {target, key, stored, code, status} as one JSON object.",
            )
        action.set_defaults(handler=handler)


def _read_marker(client: Any, key: str) -> int | None:
    """The stored schema version; None when the marker is absent.

    Raises:
        SerializationError: The marker holds something other than a version number (a
            hand edit, another tool's key): one line and exit 1, not a `ValueError`
            traceback, and `up` changes nothing.
    """
    from deepagents_redis.core import SerializationError, redis_errors

    with redis_errors():
        raw = client.get(key)
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if not text.isascii() or not text.isdigit():
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise SerializationError(
            f"the schema marker {key} holds {shown!r}, not a version number; "
            "fix or delete it by hand (migrate never overwrites it)"
        )
    return int(text)


def run_status(args: argparse.Namespace) -> int:
    """Print the stored and the code's schema version.

    Args:
        args: Parsed arguments (``url``, ``prefix``).

    Returns:
        0 when they match, 1 otherwise.
    """
    as_json = getattr(args, "json", False)
    with connect(args, announce=not as_json) as (target, connector):
        keyspace = connector.keyspace
        key = keyspace.schema_marker_key()
        stored = _read_marker(connector.client(), key)
        described = target.describe()
    code = keyspace.schema_version
    if stored is None:
        status = "absent"
        advice = "status: no marker yet; run `deepagents-redis migrate up` to write it"
    elif stored > code:
        status = "newer"
        advice = "status: the data was written by a newer version; upgrade deepagents-redis"
    elif stored < code:
        status = "pending"
        advice = f"status: {code - stored} migration(s) pending; run `deepagents-redis migrate up`"
    else:
        status, advice = "up-to-date", "status: up to date"
    if as_json:
        print(
            json.dumps(
                {"target": described, "key": key, "stored": stored, "code": code, "status": status}
            )
        )
    else:
        from deepagents_redis.cli._render import print_table

        rows = [
            ("marker key", key),
            ("stored version", "absent" if stored is None else stored),
            ("code schema version", code),
        ]
        print_table(("field", "value"), rows, header=False)
        print(advice)
    return EXIT_OK if status == "up-to-date" else EXIT_PROBLEM


def run_up(args: argparse.Namespace) -> int:
    """Write the schema marker if absent and apply pending migrations.

    Args:
        args: Parsed arguments (``url``, ``prefix``).

    Returns:
        0 when the marker is at the code's version afterwards, 1 when the data is newer.
    """
    from deepagents_redis.core import redis_errors

    with connect(args) as (_target, connector):
        keyspace = connector.keyspace
        key = keyspace.schema_marker_key()
        code = keyspace.schema_version
        client = connector.client()
        # A marker deleted between the SET NX and the read (another operator's hand, a
        # flush) is written again: up to 3 tries, then one line and exit 1 (it was an
        # assertion's traceback).
        for _ in range(3):
            with redis_errors():
                # NX: two operators running `up` at once both end with the same marker.
                created = client.set(key, str(code), nx=True)
            if created:
                print(f"wrote marker {key} = {code}; there is nothing else to migrate yet")
                return EXIT_OK
            stored = _read_marker(client, key)
            if stored is not None:
                break
        else:
            print(f"marker {key} keeps vanishing between its write and its read; refusing")
            return EXIT_PROBLEM
        if stored > code:
            print(f"marker {key} = {stored} is newer than this code ({code}); refusing")
            return EXIT_PROBLEM
        for version in range(stored + 1, code + 1):
            step = MIGRATIONS.get(version)
            if step is None:
                print(f"no migration step to v{version} in this release; refusing")
                return EXIT_PROBLEM
            print(f"migrating to v{version}")
            step(client, keyspace)
            with redis_errors():
                client.set(key, str(version))
        print(f"marker {key} = {code}: up to date, nothing to migrate")
        return EXIT_OK
