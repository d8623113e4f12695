"""The CLI's rich tables and progress: plain text off a terminal, user data never markup."""

from __future__ import annotations

import io

import pytest
from deepagents_redis.cli._progress import progress_bar
from deepagents_redis.cli._render import PLAIN_WIDTH, print_table, table_lines

HOSTILE = ["[bold]x[/]", "[red]alert[/red] :smile:", "[link=http://evil]y[/link]"]


class Tty(io.StringIO):
    """A stream that says it is a terminal (rich then draws colour and redraws in place)."""

    def isatty(self) -> bool:
        return True


def test_a_plain_table_is_aligned_text_without_colour_or_trailing_spaces() -> None:
    out = io.StringIO()
    print_table(("name", "size"), [("a", 1), ("longer name", 22)], stream=out)
    assert out.getvalue() == "name         size\na            1\nlonger name  22\n"


def test_a_table_without_header_keeps_multi_line_cells_in_their_column() -> None:
    lines = table_lines(("check", "result"), [("warnings", "one\ntwo"), ("ok", True)], header=False)
    assert lines == ["warnings  one", "          two", "ok        True"]


def test_plain_tables_do_not_wrap_long_cells() -> None:
    # A log line must stay one line: the plain console is PLAIN_WIDTH wide.
    reason = "because " * 60
    lines = table_lines(("phase", "reason"), [("todos", reason.strip())])
    assert len(lines) == 2
    assert len(lines[1]) < PLAIN_WIDTH
    assert lines[1].endswith("because")


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_print_literally_off_a_terminal(name: str) -> None:
    out = io.StringIO()
    print_table(("thread", "state"), [(name, "missing")], stream=out)
    text = out.getvalue()
    assert f"{name}  missing" in text
    assert "\x1b[" not in text


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_print_literally_on_a_terminal(name: str) -> None:
    tty = Tty()
    print_table(("thread", "state"), [(name, "missing")], stream=tty)
    text = tty.getvalue()
    assert name in text  # not styled, not a link, no emoji: the characters as given
    assert "\x1b]8;" not in text  # no terminal hyperlink
    assert "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}" not in text


def test_progress_on_a_terminal_is_a_rich_bar_stopped_with_the_block() -> None:
    tty = Tty()

    def copy_failing_half_way() -> None:
        with progress_bar("copy", tty) as progress:
            progress(1, 4)
            progress(2, 4)
            raise RuntimeError("the copy failed half-way")

    with pytest.raises(RuntimeError):
        copy_failing_half_way()
    drawn = tty.getvalue()
    assert "copy" in drawn
    assert "2/4" in drawn
    assert drawn.endswith("\x1b[?25h")  # the live display stopped and gave the cursor back


def test_progress_off_a_terminal_is_plain_periodic_lines() -> None:
    log = io.StringIO()
    with progress_bar("copy", log) as progress:
        for done in range(0, 1001):
            progress(done, 1000)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines[0] == "copy: 0/1000"
    assert lines[-1] == "copy: 1000/1000"
    assert len(lines) == 11  # one per tenth


def test_progress_defaults_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar("backfill") as progress:
        progress(1, 1)
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "backfill: 1/1\n")


ESCAPES = [
    "t\x1b]0;owned\x07",  # retitle the terminal (OSC)
    "t\x1b[2J\x1b[H",  # clear the screen
    "t\x1b]52;c;cHduZWQ=\x07",  # write the clipboard (OSC 52)
    "t\u202egnp.exe",  # right-to-left override: shows as 'exe.png'
    "t\x9b31m",  # a C1 control sequence introducer
]


@pytest.mark.parametrize("name", ESCAPES)
@pytest.mark.parametrize("stream", [io.StringIO, Tty])
def test_control_characters_in_data_never_reach_the_terminal(
    name: str, stream: type[io.StringIO]
) -> None:
    # rich keeps ESC: a thread id or agent name holding a terminal control sequence was
    # written to the operator's terminal as a command.
    out = stream()
    print_table(("thread", "state"), [(name, "missing\nsecond line")], stream=out)
    text = out.getvalue()
    for bad in ("\x07", "\x1b]", "\x1b[2J", "\u202e", "\x9b"):
        assert bad not in text
    assert "t\\x1b" in text or "t\\u202e" in text or "t\\x9b" in text
    assert "second line" in text  # newlines in a cell still make lines
