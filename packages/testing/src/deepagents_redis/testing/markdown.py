"""Run the Python examples of a Markdown page as written, and check what they print.

A page's ```` ```python ```` blocks run top to bottom in one namespace (a later block sees
what an earlier one defined), like a reader pasting them into one interpreter. A
```` ```text ```` block that directly follows a python block (only blank lines between) is
that block's output: what the block prints must be exactly those lines. Blocks fenced as
```` ```py ```` are shown, never run (they need an API key or a service the reader has).

From a test (each page in its own interpreter, so one page's global state, an LLM cache set
with `set_llm_cache` or an OpenTelemetry provider, cannot leak into the next):

    python -m deepagents_redis.testing.markdown docs/packages/cache.md

exits 0 when every block ran and printed its output, 1 with the page, line and a diff
otherwise. The examples reach Redis the way a reader's would, through
`DEEPAGENTS_REDIS_URL` (and `DEEPAGENTS_REDIS_KEY_PREFIX`): point them at a test server.
Because a page is run against whatever that variable names, `run_page` refuses to start
without it, and refuses a block that names a server on this machine's default port
(`redis://localhost:6379`, `127.0.0.1`, no port) other than as the reader's fallback in
`os.environ.get("DEEPAGENTS_REDIS_URL", ...)`: an example must never write to a server the
test did not start.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Example", "ExampleFailed", "examples", "main", "run_page"]

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
# The reader's fallback (used only when the variable is unset, which run_page refuses).
_ENV_FALLBACK = re.compile(r"os\.environ\.get\(\s*[\"']DEEPAGENTS_REDIS_URL[\"'][^)]*\)")
# A literal URL of the default local server: localhost/127.0.0.1/[::1], port 6379 or none.
_LOCAL_DEFAULT = re.compile(
    r"rediss?://(?:[^@/\s\"']*@)?(?:localhost|127\.0\.0\.1|\[::1\])(?::6379)?(?![:\d])"
)


@dataclass(frozen=True, slots=True)
class Example:
    """One ```` ```python ```` block of a page."""

    code: str
    """The block's source."""
    line: int
    """The page line of the block's first code line (1-based), for error messages."""
    output: str | None
    """The ```` ```text ```` block right after it (what it prints), or None (not checked)."""


class ExampleFailed(AssertionError):
    """A block raised, or printed something other than its output block."""


def examples(text: str) -> list[Example]:
    """The python blocks of a page, each with the output block that follows it.

    Args:
        text: The Markdown source.

    Returns:
        The examples in page order.
    """
    fences = list(_FENCE.finditer(text))
    found: list[Example] = []
    for i, fence in enumerate(fences):
        if fence.group(1) != "python":
            continue
        output = None
        after = fences[i + 1] if i + 1 < len(fences) else None
        if (
            after is not None
            and after.group(1) == "text"
            and not text[fence.end() : after.start()].strip()
        ):
            output = after.group(2)
        line = text.count("\n", 0, fence.start(2)) + 1
        found.append(Example(code=fence.group(2), line=line, output=output))
    return found


def run_page(path: str | Path) -> int:
    """Run every example of the page at `path`; check each one's output block.

    Args:
        path: The Markdown file.

    Returns:
        How many examples ran.

    Raises:
        ExampleFailed: The first example that raised or printed something else.
    """
    page = Path(path)
    if not os.environ.get("DEEPAGENTS_REDIS_URL"):
        raise ExampleFailed(f"{page}: set DEEPAGENTS_REDIS_URL to a server the test started")
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    found = examples(page.read_text(encoding="utf-8"))
    for example in found:
        where = f"{page}:{example.line}"
        for number, line in enumerate(example.code.splitlines(), start=example.line):
            code_part = _ENV_FALLBACK.sub("", line.split("#", 1)[0])
            if _LOCAL_DEFAULT.search(code_part):
                raise ExampleFailed(
                    f"{page}:{number}: the example names the default local server; read "
                    "DEEPAGENTS_REDIS_URL instead (a test must not touch a server it did "
                    "not start)"
                )
        # Line numbers in a traceback point into the page: pad the code down to its line.
        code = compile("\n" * (example.line - 1) + example.code, str(page), "exec")
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(code, namespace)  # noqa: S102 - running the page is the point
        except Exception as exc:
            raise ExampleFailed(f"{where}: the example raised {type(exc).__name__}: {exc}") from exc
        if example.output is not None:
            want = example.output.rstrip("\n").splitlines()
            got = printed.getvalue().rstrip("\n").splitlines()
            if got != want:
                diff = "\n".join(
                    difflib.unified_diff(want, got, "page shows", "example printed", lineterm="")
                )
                raise ExampleFailed(f"{where}: the output differs from the page\n{diff}")
        else:
            sys.stdout.write(printed.getvalue())
    return len(found)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the examples of each page given on the command line.

    Args:
        argv: Page paths (default: `sys.argv[1:]`).

    Returns:
        0 when every page passed, 1 otherwise (the failure is printed on stderr).
    """
    pages = list(sys.argv[1:] if argv is None else argv)
    for page in pages:
        try:
            count = run_page(page)
        except ExampleFailed as failed:
            print(failed, file=sys.stderr)
            return 1
        print(f"{page}: {count} examples passed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
