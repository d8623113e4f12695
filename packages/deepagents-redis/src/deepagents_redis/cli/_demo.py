"""Run a demo: a health check, then one section per installed phase.

Sections: core (keys, codec, Lua, an idempotent write, the circuit breaker), cache (an agent
run twice, the second served from the Redis LLM cache), todos (a plan resumed by a new
process that sees an outside update), fs (an agent writes files, another process edits
them), coord (a planner delegates to two worker processes, one is killed), handoff (an
agent's process is killed mid-run and another finishes the thread). Agents run on a scripted
model: no API key is needed. A section whose phase is not installed is skipped, naming the
extra to install (pip install 'deepagents-redis[demo]' installs every phase).

Where it connects: --url, else $DEEPAGENTS_REDIS_URL, else a private embedded redis-server
(or fakeredis when there is no redis-server binary) that is stopped afterwards. The demo
prints which. On a server you point it at, it writes only under its key prefix ('demo'
unless --prefix or $DEEPAGENTS_REDIS_KEY_PREFIX says otherwise) and deletes every key it
wrote before it exits.

Exit status: 0 at least one section ran; 1 no section ran; 2 Redis is unreachable; 64 usage
or configuration error (an unknown section).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deepagents_redis.cli._exit import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE
from deepagents_redis.cli._parsers import add_command
from deepagents_redis.cli._target import add_target_arguments, resolve_target

__all__ = [
    "SECTIONS",
    "DemoContext",
    "Section",
    "register",
    "run",
    "run_sections",
    "server_runs_lua",
]


@dataclass
class DemoContext:
    """What a demo section gets.

    Attributes:
        connector: A connected `RedisConnector`; the demo
            closes it after the last section. Do not close it yourself.
        url: The Redis URL (may contain a password: never print it; print ``source``).
        source: Where the URL came from (``--url``, ``DEEPAGENTS_REDIS_URL``, ``embedded ...``).
        out: Print one line of demo output.
        facts: Free-form results sections may record (tests read them).
        lua: Whether the server runs Lua scripts. False on the fakeredis fallback without
            ``lupa``; sections declared with ``needs_lua=True`` are then skipped, saying so.
    """

    connector: Any
    url: str
    source: str
    out: Callable[[str], None] = print
    facts: dict[str, Any] = field(default_factory=dict)
    lua: bool = True
    scopes: set[str] = field(default_factory=set)

    def scratch(self, scope: str) -> str:
        """Register a scope the section writes under; the demo deletes all its keys at the end.

        Args:
            scope: A scope (plan, fs namespace, cache namespace) unique to this run.

        Returns:
            The scope.
        """
        self.scopes.add(scope)
        return scope

    @property
    def settings(self) -> Any:
        """The `RedisSettings` in use."""
        return self.connector.settings


@dataclass(frozen=True)
class Section:
    """One demo section.

    Attributes:
        name: Short name, used by ``--only``.
        module: Dotted module name exposing ``run(ctx) -> None``.
        requires: Import name(s) that must be installed (``None``: always available).
        extra: The ``deepagents-redis[...]`` extra that installs ``requires``.
        needs_lua: Skip (with a message) when the server cannot run Lua scripts.
    """

    name: str
    module: str
    requires: str | tuple[str, ...] | None = None
    extra: str | None = None
    needs_lua: bool = False

    def missing(self) -> str | None:
        """The first module of ``requires`` that is not installed, if any."""
        names = (self.requires,) if isinstance(self.requires, str) else self.requires or ()
        return next((name for name in names if not _installed(name)), None)


_SCRIPTED = "deepagents_redis.testing.chat"
"""The scripted chat model every agent-driving section runs on (no API key)."""

SECTIONS: list[Section] = [
    Section("core", "deepagents_redis.cli._demo_core"),
    Section(
        "cache",
        "deepagents_redis.cli._demo_cache",
        requires=("deepagents_redis.cache", _SCRIPTED),
        extra="demo",
        needs_lua=True,
    ),
    Section(
        "todos",
        "deepagents_redis.cli._demo_todos",
        requires=("deepagents_redis.todos", _SCRIPTED),
        extra="demo",
        needs_lua=True,
    ),
    Section(
        "fs",
        "deepagents_redis.cli._demo_fs",
        requires=("deepagents_redis.fs", _SCRIPTED),
        extra="demo",
        needs_lua=True,
    ),
    Section(
        "coord",
        "deepagents_redis.cli._demo_coord",
        requires=("deepagents_redis.coord", _SCRIPTED),
        extra="demo",
        needs_lua=True,
    ),
    Section(
        "handoff",
        "deepagents_redis.cli._demo_handoff",
        requires=(
            "deepagents_redis.checkpoint",
            "deepagents_redis.fs",
            "deepagents_redis.todos",
            _SCRIPTED,
        ),
        extra="demo",
        needs_lua=True,
    ),
    # phase helpers: Section("cache", "deepagents_redis.cli._demo_cache",
    #                        requires="deepagents_redis.cache", extra="cache", needs_lua=True),
]
"""The sections, in the order they run.

Adding a section (phase helpers: this is your extension point):

1. Write ``cli/_demo_<phase>.py`` with a function ``run(ctx: DemoContext) -> None``. Use
   ``ctx.out(...)`` for every line you print (tests capture it), ``ctx.connector`` for Redis
   (``.client()``, ``await .aclient()``, ``.keyspace``, ``.settings``), and ``ctx.url`` if
   you need to start another process. Raise on failure: the demo exits non-zero and prints
   the error; it does not swallow exceptions.
2. Append a `Section` here (one line), with ``requires`` set to the phase's import name so
   the section is skipped, with an install hint, when the optional package is not
   installed, and ``needs_lua=True`` if it runs scripts (the fakeredis fallback has no Lua;
   ``ctx.lua`` says whether the server has it). A section that drives an agent uses
   ``deepagents_redis.testing.chat``'s scripted model (no API key): require it too, with
   the ``demo`` extra, which installs it and every phase.
3. Register every scope the section writes under with ``ctx.scratch(scope)`` and build
   every key through ``ctx.connector.keyspace``: the demo deletes the scopes' keys at the
   end, and the tests check that the server is empty afterwards.
4. Describe the section in one phrase in the module docstring (the ``demo --help`` text).
"""


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser = add_command(
        subparsers,
        "demo",
        help="Run a demo of every installed phase (embedded server by default).",
        doc=__doc__,
    )
    add_target_arguments(parser, default_prefix="demo")
    parser.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help=(
            f"Run only these sections ({', '.join(s.name for s in SECTIONS)}), "
            "e.g. 'demo handoff'; same as --only (default: every section)."
        ),
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[s.name for s in SECTIONS],
        help="Run only this section (repeatable).",
    )
    parser.set_defaults(handler=run)


_NO_LUA = (
    "this server cannot run Lua scripts (the fakeredis fallback without lupa); "
    "install redis-server for the full demo"
)


def server_runs_lua(client: Any) -> bool:
    """Probe whether the server runs Lua (one ``EVAL`` of ``return 1``).

    Args:
        client: A sync client.

    Returns:
        False when the server answers "unknown command".
    """
    from deepagents_redis.core import CapabilityError, redis_errors

    try:
        with redis_errors():
            client.eval("return 1", 0)
    except CapabilityError:
        return False
    return True


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def run_sections(ctx: DemoContext, *, only: list[str] | None = None) -> list[str]:
    """Run the selected sections against ``ctx``.

    Args:
        ctx: The demo context.
        only: Section names to run; all when None.

    Returns:
        Names of the sections that ran (skipped ones are not listed).
    """
    ran = []
    for section in SECTIONS:
        if only and section.name not in only:
            continue
        ctx.out("")
        ctx.out(f"== {section.name} ==")
        missing = section.missing()
        if missing is not None:
            ctx.out(
                f"skipped: {missing} is not installed "
                f"(pip install 'deepagents-redis[{section.extra or section.name}]')"
            )
            continue
        if section.needs_lua and not ctx.lua:
            ctx.out(f"skipped: {_NO_LUA}")
            continue
        importlib.import_module(section.module).run(ctx)
        ran.append(section.name)
    return ran


def run(args: argparse.Namespace, *, out: Callable[[str], None] = print) -> int:
    """Run the demo.

    Args:
        args: Parsed arguments (``url``, ``prefix``, ``only``).
        out: Where lines go.

    Returns:
        The exit status.
    """
    from deepagents_redis.cli._render import table_lines
    from deepagents_redis.core import RedisConnector, check_health

    named = list(getattr(args, "sections", None) or [])
    unknown = sorted(set(named) - {s.name for s in SECTIONS})
    if unknown:
        print(
            f"deepagents-redis demo: unknown section(s) {', '.join(unknown)}; "
            f"choose from {', '.join(s.name for s in SECTIONS)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if named:
        args.only = [*(args.only or []), *named]
    if args.prefix is None and not os.environ.get("DEEPAGENTS_REDIS_KEY_PREFIX"):
        args.prefix = "demo"
    with resolve_target(args, allow_embedded=True) as target:
        out(f"target: {target.describe()}")
        connector = RedisConnector(settings=target.settings)
        try:
            out("")
            out("== health ==")
            report = check_health(connector.client())
            for line in table_lines(("check", "result"), report.to_rows(), header=False):
                out(line)
            ctx = DemoContext(
                connector=connector,
                url=target.url,
                source=target.source,
                out=out,
                lua=server_runs_lua(connector.client()),
            )
            if not ctx.lua:
                out(f"note: {_NO_LUA}")
            try:
                ran = run_sections(ctx, only=args.only)
            finally:
                removed = _delete_scratch(connector, ctx.scopes)
                if removed:
                    out(f"cleanup: deleted the demo's {removed} key(s)")
        finally:
            connector.close()
    out("")
    out(f"demo finished: {', '.join(ran) or 'no sections ran'}")
    return EXIT_OK if ran else EXIT_PROBLEM


def _delete_scratch(connector: Any, scopes: set[str]) -> int:
    """Delete every key of the demo's scopes (a SCAN per scope: the demo's own keys only).

    Every key of a scope carries its hash tag, so ``<prefix>:v*:*:{<scope>}*`` matches the
    scope's data, logs and op records and nothing else (the encoded scope has no glob
    characters).
    """
    client = connector.client()
    keyspace = connector.keyspace
    removed = 0
    for scope in sorted(scopes):
        pattern = f"{keyspace.prefix}:v*:*:{keyspace.scope_tag(scope)}*"
        keys = list(client.scan_iter(match=pattern, count=1000))
        for key in keys:  # one by one: on Cluster every scope is one slot, but stay simple
            removed += int(client.delete(key))
    return removed
