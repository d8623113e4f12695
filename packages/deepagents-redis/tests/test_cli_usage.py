"""What a CLI user meets: help texts, --json, -v/-q, and failures as one line, not a traceback."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deepagents_redis.cli import build_parser, main
from deepagents_redis.cli._exit import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)

CLI_SOURCES = Path(importlib.util.find_spec("deepagents_redis.cli").origin).parent  # type: ignore[arg-type, union-attr]
NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    monkeypatch.delenv("DEEPAGENTS_REDIS_KEY_PREFIX", raising=False)


def _parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    def walk(
        prog: str, parser: argparse.ArgumentParser
    ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
        yield prog, parser
        for action in parser._actions:  # argparse has no public accessor for subcommands
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(f"{prog} {name}", child)

    yield from walk("deepagents-redis", build_parser())


def _options() -> set[str]:
    return {o for _, p in _parsers() for a in p._actions for o in a.option_strings}


def test_help_texts_are_written_for_users() -> None:
    # Before: `demo --help` printed the developers' "Adding a section" steps, and most
    # commands showed reStructuredText (``--strict``, `MIGRATIONS`) verbatim.
    for prog, parser in _parsers():
        text = parser.format_help()
        assert "`" not in text, prog
        for note in ("phase helpers", "extension point", "HealthReport", "RedisSaver"):
            assert note not in text, (prog, note)


def test_every_option_with_a_default_says_which() -> None:
    for prog, parser in _parsers():
        for action in parser._actions:
            quiet_default = action.default in (None, False, 0, argparse.SUPPRESS)
            if not action.option_strings or action.required or quiet_default:
                continue
            default = action.default
            if isinstance(default, float) and default.is_integer():
                default = int(default)  # printed with %(default)g: 3600, not 3600.0
            assert f"(default: {default})" in " ".join(parser.format_help().split()), (
                prog,
                action.option_strings,
            )


def test_demo_help_names_its_own_default_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "$DEEPAGENTS_REDIS_KEY_PREFIX or 'demo'" in out


def test_advice_names_options_the_cli_has() -> None:
    # Every "--option" a message, help text or docstring of the CLI mentions must exist.
    options = _options()
    mentioned: set[tuple[str, str]] = set()
    for path in sorted(CLI_SOURCES.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", node.value):
                    mentioned.add((path.name, option))
    assert mentioned  # the scan found the messages
    unknown = sorted((name, option) for name, option in mentioned if option not in options)
    assert unknown == []


@pytest.mark.parametrize(
    "command",
    [
        "health",
        "migrate status",
        "todos reconcile --checkpointer sqlite:x",
        "todos backfill --checkpointer sqlite:x",
        "fs copy a b",
        "fs gc redis:#a",
        "tasks list",
        "tasks show 0123456789abcdef0123456789abcdef",
        "tasks dlq",
        "events tail",
        "checkpoint copy --from redis",
        "checkpoint threads",
        "checkpoint sweep",
    ],
)
def test_every_data_command_has_json(command: str) -> None:
    args = build_parser().parse_args([*command.split(), "--json"])
    assert args.json is True


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == EXIT_OK
    assert re.search(r"^deepagents-redis \d", capsys.readouterr().out, re.M)


@pytest.fixture
def _restore_log_level() -> Iterator[None]:
    logger = logging.getLogger("deepagents_redis")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.mark.usefixtures("_restore_log_level")
@pytest.mark.parametrize(
    ("flags", "level"),
    [
        ([], logging.WARNING),
        (["-v"], logging.INFO),
        (["-vv"], logging.DEBUG),
        (["-q"], logging.ERROR),
    ],
)
def test_verbosity_flags_set_the_log_level(
    flags: list[str], level: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*flags, "health"]) == EXIT_USAGE  # no URL: fails before any I/O
    assert logging.getLogger("deepagents_redis").level == level
    capsys.readouterr()


def test_verbose_and_quiet_together_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["-v", "-q", "health"])
    assert exit_info.value.code == EXIT_USAGE
    assert "not allowed with" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "module", "extra"),
    [
        (["todos", "backfill", "--checkpointer", "sqlite:x"], "deepagents_redis.todos", "todos"),
        (["todos", "reconcile", "--checkpointer", "sqlite:x"], "deepagents_redis.todos", "todos"),
        (["fs", "copy", f"{NOWHERE}#a", "./out"], "deepagents_redis.fs", "fs"),
        (["fs", "gc", f"{NOWHERE}#a"], "deepagents_redis.fs", "fs"),
        (["checkpoint", "copy", "--from", "sqlite:x"], "deepagents_redis.checkpoint", "checkpoint"),
        (["checkpoint", "threads"], "deepagents_redis.checkpoint", "checkpoint"),
        (["worker", "--agent", "a=json:dumps"], "deepagents_redis.coord", "coord"),
        (["tasks", "list"], "deepagents_redis.coord", "coord"),
        (["tasks", "dlq"], "deepagents_redis.coord", "coord"),
        (["events", "tail"], "deepagents_redis.coord", "coord"),
    ],
)
def test_a_missing_phase_names_the_extra_to_install(
    command: list[str],
    module: str,
    extra: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # None in sys.modules: importing the phase raises ModuleNotFoundError, as when the
    # extra is not installed.
    monkeypatch.setitem(sys.modules, module, None)
    status = main(["-q", *command, *(["--url", NOWHERE] if command[0] != "fs" else [])])
    err = capsys.readouterr().err
    assert status == EXIT_USAGE, err
    assert err == (
        f"error: this command needs the {extra} phase, which is not installed: "
        f"pip install 'deepagents-redis[{extra}]'\n"
    )


postgres = pytest.mark.skipif(
    importlib.util.find_spec("langgraph.checkpoint.postgres") is None,
    reason="needs langgraph-checkpoint-postgres (the checkpoint 'postgres' extra)",
)


@postgres
@pytest.mark.parametrize(
    "command",
    [
        ["checkpoint", "copy", "--from", "postgresql://someone:s3cret@127.0.0.1:1/x"],
        ["todos", "backfill", "--checkpointer", "postgresql://someone:s3cret@127.0.0.1:1/x"],
    ],
)
def test_an_unreachable_postgres_checkpointer_is_one_line_and_exit_2(
    command: list[str], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: exit 64, as if the user had typed the command wrong.
    status = main(["-q", *command, "--url", redis_url])
    err = capsys.readouterr().err
    assert status == EXIT_UNREACHABLE
    assert err.startswith("error: PostgreSQL is unreachable: ")
    assert err.count("\n") == 1
    assert "s3cret" not in err


def test_ctrl_c_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from deepagents_redis.cli import _migrate

    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(_migrate, "run_status", interrupted)
    assert main(["migrate", "status", "--url", NOWHERE]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted\n"


def test_fs_copy_shows_progress_as_plain_lines_off_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(25):
        (src / f"f{i}.txt").write_text(f"file {i}\n")
    assert main(["fs", "copy", str(src), f"dir:{tmp_path / 'dst'}", "--batch", "5"]) == EXIT_OK
    captured = capsys.readouterr()
    assert "copied 25 files" in captured.out
    assert "\r" not in captured.err
    lines = captured.err.splitlines()
    assert lines[-1] == "copy: 25/25"
    assert all(re.fullmatch(r"copy: \d+/25", line) for line in lines)
    assert (tmp_path / "dst" / "f7.txt").read_text() == "file 7\n"
    assert main(["fs", "copy", str(src), f"dir:{tmp_path / 'dst2'}", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["copied"] == 25


@pytest.mark.parametrize(
    "argv",
    [
        # --count 0 and -1 printed one event and stopped (seen >= count after the first)
        ["events", "tail", "--count", "0"],
        ["events", "tail", "--count", "-1"],
        # a stream id Redis refuses: exit 1 with 'Redis error: ResponseError ...'
        ["events", "tail", "--from", "garbage"],
        ["events", "tail", "--from", "1-x"],
        # a negative grace handed runs back at once; NaN reached the worker's waits
        ["worker", "--agent", "x=json:dumps", "--grace", "-5"],
        ["worker", "--agent", "x=json:dumps", "--grace", "nan"],
        ["worker", "--agent", "x=json:dumps", "--grace", "inf"],
        # exit 1 (InvalidInputError) after connecting, not a usage error
        ["tasks", "dlq", "--count", "0"],
        ["tasks", "dlq", "--count", "-5"],
    ],
)
def test_coord_numbers_and_stream_ids_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Checked by the parser: exit 64 and one line, before anything is opened (the URL is
    # unreachable: had the command connected, it would have exited 2).
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--url", NOWHERE])
    assert exited.value.code == EXIT_USAGE
    captured = capsys.readouterr()
    assert "target:" not in captured.out
    assert "Traceback" not in captured.err
    assert argv[-2] in captured.err


@pytest.mark.parametrize("start", ["$", "0", "0-0", "1700000000000", "1700000000000-3"])
def test_events_tail_accepts_stream_ids(start: str) -> None:
    args = build_parser().parse_args(["events", "tail", "--from", start, "--count", "1"])
    assert (args.start, args.count) == (start, 1)


@pytest.mark.parametrize(
    "argv",
    [
        # an empty --url (a script's "$STAGING_URL" unset) fell back to $DEEPAGENTS_REDIS_URL,
        # or for the demo to an embedded server, and ran there
        ["health", "--url", ""],
        ["demo", "--url", ""],
        ["tasks", "list", "--url", ""],
        # an empty --namespace silently meant the 'default' namespace
        ["tasks", "list", "--url", NOWHERE, "--namespace", ""],
        ["checkpoint", "threads", "--url", NOWHERE, "--namespace", ""],
        ["checkpoint", "sweep", "--url", NOWHERE, "--namespace", ""],
    ],
)
def test_empty_url_or_namespace_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", NOWHERE)  # what an empty --url fell back to
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == EXIT_USAGE
    captured = capsys.readouterr()
    assert "target:" not in captured.out
    assert "must not be empty" in captured.err


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (["--concurrency", "0"], "error: --concurrency must be at least 1"),
        (["--concurrency", "-3"], "error: --concurrency must be at least 1"),
        (["--agent", "broken"], "error: --agent 'broken': expected NAME=MODULE:ATTR"),
        # the same name twice: the worker served only the last one, silently
        (
            ["--agent", "a=other:agent"],
            "error: --agent 'a=other:agent': the agent 'a' is given twice",
        ),
    ],
)
def test_worker_usage_errors_come_before_any_agent_module_is_imported(
    more: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The --agent modules were imported first (slow, and they may build models, open
    # connections or start threads), and only then was --concurrency 0 refused.
    module = f"agent_module_{tmp_path.name}"
    (tmp_path / f"{module}.py").write_text("agent = object()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["worker", "--agent", f"a={module}:agent", *more, "--url", NOWHERE]
    assert main(argv) == EXIT_USAGE
    assert module not in sys.modules
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [message]
    assert captured.out == ""
