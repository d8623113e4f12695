"""`checkpoint copy` with a checkpointer that cannot be opened: one line, exit 64, no secret."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from deepagents_redis.cli import main
from deepagents_redis.cli._exit import EXIT_USAGE

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    monkeypatch.delenv("DEEPAGENTS_REDIS_KEY_PREFIX", raising=False)


@pytest.mark.skipif(
    importlib.util.find_spec("langgraph.checkpoint.postgres") is None,
    reason="needs langgraph-checkpoint-postgres (the checkpoint 'postgres' extra; the whole "
    "suite has it)",
)
def test_a_postgres_url_psycopg_cannot_parse_is_a_usage_error_without_the_password(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: a psycopg.ProgrammingError traceback ending in the URL, password included.
    status = main(
        ["checkpoint", "copy", "--url", redis_url, "--from", "postgresql://u:sekret@[::1/db"]
    )
    out, err = capsys.readouterr()
    assert status == EXIT_USAGE, err
    assert "invalid PostgreSQL URL" in err
    assert "sekret" not in out + err


@pytest.mark.skipif(
    importlib.util.find_spec("langgraph.checkpoint.postgres") is None,
    reason="needs langgraph-checkpoint-postgres (the checkpoint 'postgres' extra; the whole "
    "suite has it)",
)
@pytest.mark.parametrize(
    "option",
    [
        "sslmode=bogus",  # libpq: invalid sslmode value
        "target_session_attrs=bad",
        "gssencmode=xx",
        "port=abc",  # invalid integer value "abc" for connection option "port"
        "keepalives=zz",
        "",  # and the URL's port is 99999 (libpq: invalid port number)
        "bad_option=1",  # psycopg: invalid URI query parameter
    ],
)
@pytest.mark.parametrize("where", ["--from", "--to", "--checkpointer"])
def test_a_postgres_option_libpq_refuses_is_a_usage_error_not_unreachable(
    redis_url: str, capsys: pytest.CaptureFixture[str], option: str, where: str
) -> None:
    # Before: libpq's refusals of an option value came back as psycopg.OperationalError and
    # exited 2 ("PostgreSQL is unreachable"), which tells a script to retry; only an option
    # name psycopg cannot parse was a usage error (64). Nothing listens on port 1: libpq
    # refuses these before connecting.
    url = f"postgresql://u:sekret@127.0.0.1:{1 if option else 99999}/db?{option}"
    argv = {
        "--from": ["checkpoint", "copy", "--from", url],
        "--to": ["checkpoint", "copy", "--from", "redis", "--to", url],
        "--checkpointer": ["todos", "backfill", "--checkpointer", url],
    }[where]
    status = main(["-q", *argv, "--url", redis_url])
    out, err = capsys.readouterr()
    assert status == EXIT_USAGE, err
    assert err.startswith("error: invalid PostgreSQL URL: "), err
    assert err.count("\n") == 1
    assert "sekret" not in out + err


@pytest.mark.postgres
@pytest.mark.skipif(
    importlib.util.find_spec("langgraph.checkpoint.postgres") is None,
    reason="needs langgraph-checkpoint-postgres (the checkpoint 'postgres' extra; the whole "
    "suite has it)",
)
def test_a_setting_the_postgres_server_refuses_is_a_usage_error(
    redis_url: str, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The server answers FATAL: invalid value for parameter "statement_timeout": the URL's
    # fault, not an unreachable server (it answered).
    url = f"{postgres_url}?options=-cstatement_timeout%3Dabc"
    status = main(["-q", "checkpoint", "copy", "--from", url, "--url", redis_url])
    err = capsys.readouterr().err
    assert status == EXIT_USAGE, err
    assert err.startswith("error: invalid PostgreSQL URL: "), err
    assert "statement_timeout" in err


def test_a_sqlite_target_in_a_missing_directory_is_a_usage_error(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: sqlite3.OperationalError traceback, exit 1.
    target = tmp_path / "no-such-dir" / "threads.db"
    status = main(
        ["checkpoint", "copy", "--url", redis_url, "--from", "redis", "--to", f"sqlite:{target}"]
    )
    err = capsys.readouterr().err
    assert status == EXIT_USAGE, err
    assert f"cannot open the SQLite database at {target}" in err
    assert not target.parent.exists()


@pytest.mark.parametrize(
    ("message", "bad_input"),
    [
        # libpq 18 (psycopg-binary 3.3) and libpq 16 (3.2.1, the extra's floor) word the
        # same refused value differently; both are the user's input
        ('invalid integer value "zz" for connection option "keepalives"', True),
        (
            'connection to server at "127.0.0.1", port 1 failed: keepalives parameter must be '
            "an integer",
            True,
        ),
        ('invalid sslmode value: "bogus"', True),
        ('invalid port number: "99999"', True),
        ('invalid value for parameter "statement_timeout": "abc"', True),
        # network failures: unreachable, retry may help
        ('connection to server at "127.0.0.1", port 1 failed: Connection refused', False),
        ('could not translate host name "nohost" to address: Name or service not known', False),
        ("connection timeout expired", False),
        ("server closed the connection unexpectedly", False),
    ],
)
def test_libpq_words_for_a_refused_option_value_in_every_libpq_we_install(
    message: str, bad_input: bool
) -> None:
    # The CI step on the extra's oldest psycopg found libpq 16's wording exiting 2
    # ("unreachable"): the case above runs on whichever libpq is installed, this one on both.
    from deepagents_redis.cli._checkpointers import _BAD_OPTION

    assert bool(_BAD_OPTION.search(message)) is bad_input
