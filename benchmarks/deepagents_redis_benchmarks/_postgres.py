"""A throwaway PostgreSQL database for the suites that compare with a PostgreSQL baseline."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

__all__ = ["throwaway_database"]


@contextlib.contextmanager
def throwaway_database(label: str) -> Iterator[str | None]:
    """A database created on 127.0.0.1:5432 for this run and dropped afterwards.

    Tries the users ``postgres`` then ``root`` (trust auth, as on this project's machines).

    Args:
        label: Part of the database's name (which suite made it).

    Yields:
        Its URL, or None when psycopg is missing or no server answers (rows are then skipped
        with a note).
    """
    try:
        import psycopg
    except ImportError:
        yield None
        return
    admin = None
    user = ""
    for candidate in ("postgres", "root"):
        try:
            admin = psycopg.connect(
                f"postgresql://{candidate}@127.0.0.1:5432/test", autocommit=True, connect_timeout=3
            )
            user = candidate
            break
        except psycopg.Error:
            continue
    if admin is None:
        yield None
        return
    name = f"bench_{label}_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{user}@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
