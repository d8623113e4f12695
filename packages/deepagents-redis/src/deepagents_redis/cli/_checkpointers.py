"""Open a LangGraph checkpointer from a URI: ``sqlite:PATH`` or ``postgresql://...``.

Shared by ``todos`` (reads checkpoints) and ``checkpoint copy`` (reads and writes them).
The URI may hold a password: it is never printed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["is_sql_uri", "open_checkpointer", "require_checkpoint_table"]

# libpq's (and the server's) words for a connection option whose value it refuses: `invalid
# sslmode value: "bogus"`, `invalid port number: "99999"`, `invalid integer value "abc" for
# connection option "port"`, `invalid value for parameter "statement_timeout"` (from
# `?options=-c...`); libpq 16 (psycopg-binary 3.2.1's) says `keepalives parameter must be
# an integer` where libpq 18 says `invalid integer value "zz" for connection option
# "keepalives"`. None of its network failures (refused, timed out, no route, DNS) says it.
_BAD_OPTION = re.compile(
    r"\binvalid (?:[\w-]+ )?(?:value|port number|connection option)\b"
    r"|\b[\w-]+ parameter must be an? \w+"
)


def is_sql_uri(uri: str) -> bool:
    """Whether `uri` names a SQLite or PostgreSQL checkpointer."""
    return uri.startswith(("sqlite:", "postgres://", "postgresql://"))


@contextmanager
def open_checkpointer(uri: str, *, hint: str, create: bool = False) -> Iterator[Any]:
    """Open the checkpointer a URI names, and close it afterwards.

    Args:
        uri: ``sqlite:PATH``, ``sqlite:///PATH`` or ``postgres(ql)://...``.
        hint: The distribution whose ``sqlite``/``postgres`` extra installs the driver.
        create: Create what is missing (the SQLite file, the PostgreSQL tables): the
            checkpointer is written to.

    Yields:
        A ``BaseCheckpointSaver``.

    Raises:
        ConfigurationError: Unknown scheme, missing SQLite file, missing extra, or a
            PostgreSQL URL that psycopg cannot parse or whose option values libpq (or the
            server) refuses (``?sslmode=bogus``): bad input, exit 64.
        UnreachableError: The PostgreSQL server cannot be connected to.
    """
    from deepagents_redis.core import ConfigurationError

    if uri.startswith("sqlite:"):
        path = _sqlite_path(uri)
        if not create and not path.is_file():
            raise ConfigurationError(f"no SQLite checkpoint database at {path}")
        try:
            import sqlite3

            from langgraph.checkpoint.sqlite import SqliteSaver
        except ImportError as exc:
            raise ConfigurationError(
                f"SQLite checkpoints need langgraph-checkpoint-sqlite: pip install '{hint}[sqlite]'"
            ) from exc
        try:
            conn = sqlite3.connect(path, check_same_thread=False)
        except sqlite3.Error as exc:
            # `--to sqlite:` in a directory that does not exist (or cannot be written) was
            # a traceback with exit 1.
            raise ConfigurationError(f"cannot open the SQLite database at {path}: {exc}") from exc
        try:
            saver: Any = SqliteSaver(conn)
            if create:
                saver.setup()
            yield saver
        finally:
            conn.close()
        return
    if uri.startswith(("postgres://", "postgresql://")):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError as exc:
            raise ConfigurationError(
                "Postgres checkpoints need langgraph-checkpoint-postgres: "
                f"pip install '{hint}[postgres]'"
            ) from exc
        import psycopg
        from deepagents_redis.core import redact_text

        try:
            opened = PostgresSaver.from_conn_string(uri)
            saver = opened.__enter__()
        except psycopg.OperationalError as exc:
            # One line, not a traceback, and exit 2 like an unreachable Redis; the URI (and
            # its password) is not repeated.
            from deepagents_redis.cli._exit import UnreachableError

            lines = str(exc).replace(uri, "<the URL>").strip().splitlines()
            reason = redact_text(lines[0]) if lines else type(exc).__name__
            if _BAD_OPTION.search(reason):
                # libpq refused an option value of the URL (`?sslmode=bogus`, a port of
                # 99999, `?keepalives=zz`) or the server refused a setting it passed: the
                # user's input, like an option psycopg cannot parse (below). It exited 2,
                # "unreachable", which tells a script to retry what can never work.
                raise ConfigurationError(f"invalid PostgreSQL URL: {reason}") from exc
            raise UnreachableError(f"PostgreSQL is unreachable: {reason}") from exc
        except psycopg.ProgrammingError as exc:
            # A URL psycopg cannot parse (`[::1/db`): a traceback whose last line repeated
            # the URL, password and all. A usage error, and the URL is not repeated.
            reason = redact_text(str(exc).replace(uri, "<the URL>").strip().splitlines()[0])
            raise ConfigurationError(f"invalid PostgreSQL URL: {reason}") from exc
        try:
            if create:
                saver.setup()
            yield saver
        finally:
            opened.__exit__(None, None, None)
        return
    raise ConfigurationError("a checkpointer must be sqlite:PATH or a postgresql:// URL")


def require_checkpoint_table(uri: str) -> None:
    """Refuse a SQLite file that holds no LangGraph checkpoints, without writing to it.

    `SqliteSaver` creates its tables on first use, so pointed at the wrong file (an empty
    one, the application's own database) a command that only reads checkpoints (``todos``,
    the source of ``checkpoint copy``) added LangGraph's tables to it and reported
    "0 thread(s)", exit 0, or failed with a traceback.

    Args:
        uri: ``sqlite:PATH`` or ``sqlite:///PATH``.

    Raises:
        ConfigurationError: The file is not a SQLite database, or has no checkpoints table.
    """
    import sqlite3

    from deepagents_redis.core import ConfigurationError

    path = _sqlite_path(uri)
    if not path.is_file():
        return  # open_checkpointer says there is no database there
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ConfigurationError(f"cannot open the SQLite database at {path}: {exc}") from exc
    try:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'"
        ).fetchone()
    except sqlite3.DatabaseError as exc:  # not a database at all
        raise ConfigurationError(f"{path} is not a SQLite database: {exc}") from exc
    finally:
        conn.close()
    if found is None:
        raise ConfigurationError(
            f"{path} holds no LangGraph checkpoints (no 'checkpoints' table); "
            "is it the checkpointer's database?"
        )


def _sqlite_path(uri: str) -> Path:
    """The file of ``sqlite:PATH`` or ``sqlite:///PATH``."""
    raw = uri[len("sqlite:") :]
    return Path(raw[2:] if raw.startswith("///") else raw)
