"""Run remote subagents (worker), look after their tasks (tasks), follow events (events).

'worker --agent NAME=MODULE:ATTR' serves agents until SIGTERM or SIGINT; then it stops
taking work, lets runs finish for --grace seconds, hands the rest back, and exits 0 (an
agent that ignores its cancel is handed back too, and left behind). ATTR is a compiled deep
agent or another runnable, a function f(input) or f(input, ctx), or a function without
arguments that returns one of those.

Exit status: 0 success (worker: stopped gracefully); 2 Redis is unreachable; 64 usage or
configuration error (a bad --agent).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import sys
from typing import Any

from deepagents_redis.cli._exit import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE
from deepagents_redis.cli._parsers import add_actions, add_command, grace_seconds, nonempty
from deepagents_redis.cli._target import add_target_arguments, connect

__all__ = ["load_agent", "register"]


_TASKS_HELP = """Inspect and steer the tasks of remote subagents.

'list' shows the tasks waiting, running or waiting for a retry; 'show' one task with its
attempts and events; 'dlq' the dead letters (tasks out of attempts, malformed entries);
'retry' gives a failed task fresh attempts; 'cancel' cancels a task. The listing commands
print tables, or JSON with --json.

Exit status: 0 success; 1 a problem (show: the task failed; retry: it cannot be retried);
2 Redis is unreachable; 64 usage or configuration error.
"""

_EVENTS_HELP = """Follow the coord event log live (task and subagent lifecycle events).

'tail' prints the namespace's events as they happen, or one task's events from its start
(--task); Ctrl-C stops. --json prints one JSON object per line.

Exit status: 0 success; 2 Redis is unreachable; 64 usage or configuration error.
"""


def _common(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument(
        "--namespace",
        type=nonempty,
        default=None,
        help="Coord namespace (default: $DEEPAGENTS_REDIS_COORD_NAMESPACE or 'default').",
    )


def _at_least_one(text: str) -> int:
    """`--count`: a whole number, at least 1 (else exit 64, before anything is opened).

    `events tail --count 0` (or -1) printed one event and stopped; `tasks dlq --count 0`
    connected and then failed with exit 1 (`InvalidInputError`).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the count must be at least 1")
    return value


_TASK_ID = re.compile(r"[0-9a-f]{32}")
"""coord's task id rule (`check_task_id` in coord, which does not export it)."""

_STREAM_ID = re.compile(r"\$|[0-9]+(-[0-9]+)?")


def _stream_id(text: str) -> str:
    """`events tail --from`: `$` or a stream id `MS[-SEQ]` (else exit 64).

    Anything else went to Redis, which refused it: exit 1 with a Redis error.
    """
    if not _STREAM_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a stream id: give $ (now), MS or MS-SEQ (e.g. 0-0 for the start)"
        )
    return text


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")


def _task_id_text(text: str) -> str:
    """A task id argument, checked as coord checks it (else exit 64, before connecting).

    A malformed id connected first and then failed with exit 1, which for `tasks show`
    means "the task failed": a typo read as a failed task.
    """
    if not _TASK_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a task id (32 lower-case hex digits, as 'tasks list' prints)"
        )
    return text


def _task_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "task_id",
        metavar="TASK_ID",
        type=_task_id_text,
        help="The task's id, as 'tasks list' prints it.",
    )


def register(subparsers: Any) -> None:
    """Add the ``worker``, ``tasks`` and ``events`` subcommands."""
    worker = add_command(
        subparsers,
        "worker",
        help="Run remote subagents: serve tasks for the given agents until SIGTERM.",
        doc=__doc__,
    )
    _common(worker)
    worker.add_argument(
        "--agent",
        action="append",
        required=True,
        metavar="NAME=MODULE:ATTR",
        help="An agent to serve (repeatable).",
    )
    worker.add_argument(
        "--concurrency", type=int, default=4, help="Most tasks run at once (default: %(default)s)."
    )
    worker.add_argument(
        "--grace",
        type=grace_seconds,
        default=10.0,
        metavar="SECONDS",
        help="How long runs may finish after SIGTERM (default: %(default)g).",
    )
    worker.set_defaults(handler=run_worker)

    tasks = add_command(
        subparsers, "tasks", help="Inspect and steer remote tasks.", doc=_TASKS_HELP
    )
    actions = add_actions(tasks)
    listing = actions.add_parser("list", help="Tasks waiting, running or waiting for a retry.")
    _common(listing)
    listing.add_argument("--agent", default=None, help="Only this agent's queue.")
    _json_flag(listing)
    listing.set_defaults(handler=run_list)
    show = actions.add_parser("show", help="One task: status, attempts, errors, events.")
    _common(show)
    _task_id(show)
    _json_flag(show)
    show.set_defaults(handler=run_show)
    dlq = actions.add_parser("dlq", help="Dead letters: tasks out of attempts, bad entries.")
    _common(dlq)
    dlq.add_argument("--agent", default=None, help="Only this agent's dead letters.")
    dlq.add_argument(
        "--count",
        type=_at_least_one,
        default=100,
        help="Most letters per agent (default: %(default)s).",
    )
    _json_flag(dlq)
    dlq.set_defaults(handler=run_dlq)
    retry = actions.add_parser("retry", help="Run a failed task again with fresh attempts.")
    _common(retry)
    _task_id(retry)
    retry.set_defaults(handler=run_retry)
    cancel = actions.add_parser("cancel", help="Cancel a task.")
    _common(cancel)
    _task_id(cancel)
    cancel.set_defaults(handler=run_cancel)

    events = add_command(subparsers, "events", help="Follow coord events live.", doc=_EVENTS_HELP)
    ev_actions = add_actions(events)
    tail = ev_actions.add_parser("tail", help="Print events as they happen (Ctrl-C stops).")
    _common(tail)
    tail.add_argument(
        "--task", type=_task_id_text, default=None, help="One task's events (from its start)."
    )
    tail.add_argument(
        "--from",
        dest="start",
        type=_stream_id,
        default=None,
        help="Replay from this stream id (default: now).",
    )
    tail.add_argument(
        "--count",
        type=_at_least_one,
        default=None,
        help="Stop after this many events (default: never).",
    )
    tail.add_argument("--json", action="store_true", help="Print one JSON object per event.")
    tail.set_defaults(handler=run_tail)


def parse_agent(spec: str) -> tuple[str, str, str]:
    """Parse ``NAME=MODULE:ATTR`` without importing anything.

    Returns:
        ``(name, module, attr)``.

    Raises:
        ConfigurationError: The spec is malformed.
    """
    from deepagents_redis.core import ConfigurationError

    name, sep, target = spec.partition("=")
    module_name, colon, attr = target.partition(":")
    if not (sep and colon and name and module_name and attr):
        raise ConfigurationError(f"--agent {spec!r}: expected NAME=MODULE:ATTR")
    return name, module_name, attr


def load_agent(spec: str) -> tuple[str, Any]:
    """Parse ``NAME=MODULE:ATTR`` and import the object.

    Returns:
        ``(name, object)``.

    Raises:
        ConfigurationError: The spec is malformed, does not import, or names something
            that is neither a runnable nor a callable.
    """
    from deepagents_redis.core import ConfigurationError

    name, module_name, attr = parse_agent(spec)
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"--agent {spec!r}: cannot import {module_name}:{attr}: {exc}"
        ) from exc
    if not callable(obj) and not hasattr(obj, "ainvoke"):
        # The Worker refuses it too, but only after the CLI had connected, and as an
        # InvalidInputError: exit 1, where a bad --agent is a usage error (64).
        raise ConfigurationError(
            f"--agent {spec!r}: {module_name}:{attr} is a {type(obj).__name__}, neither a "
            "runnable nor a callable"
        )
    return name, obj


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"namespace": args.namespace} if args.namespace else {}


def _client(connector: Any, args: argparse.Namespace) -> Any:
    from deepagents_redis.coord import TaskClient

    return TaskClient(connector=connector, check_agents=False, **_options(args))


def run_worker(args: argparse.Namespace) -> int:
    """Serve tasks until SIGTERM/SIGINT; exit 0 after a graceful stop."""
    from deepagents_redis.coord import Worker

    # Every argument is checked before any agent module is imported: importing one can be
    # slow and do anything (build a model, open connections, start threads), and a usage
    # error (`--concurrency 0`, a malformed later --agent) was reported only after that.
    if args.concurrency < 1:
        print("error: --concurrency must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    names: set[str] = set()
    for spec in args.agent:
        name = parse_agent(spec)[0]
        if name in names:
            # A dict of the specs kept only the last: the worker silently served one of them.
            from deepagents_redis.core import ConfigurationError

            raise ConfigurationError(f"--agent {spec!r}: the agent {name!r} is given twice")
        names.add(name)
    agents = dict(load_agent(spec) for spec in args.agent)
    if _observe_enabled():
        from deepagents_redis.agent._phases import instrument_unless_instrumented

        # The global providers (configure the SDK as your deployment does), unless an agent
        # module loaded above already called instrument() with its own: that one is kept.
        instrument_unless_instrumented()
        print("worker: OpenTelemetry reporting on (DEEPAGENTS_REDIS_OBSERVE_ENABLED)", flush=True)
    with connect(args) as (_target, connector):
        worker = Worker(
            connector=connector,
            agents=agents,
            concurrency=args.concurrency,
            stop_grace_seconds=args.grace,
            **_options(args),
        )
        print(f"worker {worker.worker_id}: serving {', '.join(sorted(agents))}", flush=True)
        worker.run()
        print(f"worker {worker.worker_id}: stopped after {worker.completed} run(s)", flush=True)
    left = worker.abandoned + worker.threads_running
    if left:
        # Agents that ignored the stop (handed back already, their writes fenced off) or sync
        # calls still in their threads: the interpreter would wait for those threads at exit,
        # for as long as the agent likes. The worker's own work is done: leave now.
        print(
            f"worker {worker.worker_id}: left {left} agent call(s) behind that ignored the "
            "stop; their tasks were handed back",
            file=sys.stderr,
            flush=True,
        )
        logging.shutdown()
        os._exit(EXIT_OK)
    return EXIT_OK


def _observe_enabled() -> bool:
    from deepagents_redis.agent import resolve_flags

    # resolve_flags, not AgentRedisSettings(): a bad value is reported under its variable.
    return resolve_flags().observe_enabled


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def run_list(args: argparse.Namespace) -> int:
    """Print the tasks on the queues."""
    with connect(args, announce=not args.json) as (_target, connector):
        rows = _client(connector, args).active(args.agent)
    if args.json:
        print(json.dumps({"tasks": rows}))
        return EXIT_OK
    from deepagents_redis.cli._render import print_table

    if rows:
        print_table(
            ("task", "agent", "on"), [(r["task_id"], r["agent"], r["queued"]) for r in rows]
        )
    print(f"{len(rows)} task(s) queued or running")
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    """Print one task."""
    with connect(args, announce=not args.json) as (_target, connector):
        tasks = _client(connector, args)
        info = tasks.get(args.task_id)
        events = tasks.events(args.task_id)
    failed = info.status in ("error", "timeout")
    if args.json:
        print(
            json.dumps(
                {
                    "task_id": info.task_id,
                    "agent": info.agent,
                    "status": info.status,
                    "attempts": info.attempts,
                    "max_attempts": info.max_attempts,
                    "worker": info.worker,
                    "error": info.error,
                    "history": info.history,
                    "events": [{"id": i, "type": e.type, "time": e.time} for i, e in events],
                },
                default=str,
            )
        )
        return EXIT_PROBLEM if failed else EXIT_OK
    from deepagents_redis.cli._render import print_table, printable

    # Agent, worker and error are data anyone with Redis access can write: no escapes.
    print(printable(f"task {info.task_id}  agent {info.agent}  status {info.status}"))
    print(printable(f"attempts {info.attempts}/{info.max_attempts}  worker {info.worker or '-'}"))
    print(
        f"created {_when(info.created_at)}  started {_when(info.started_at)}  "
        f"ended {_when(info.ended_at)}"
    )
    if info.error:
        print(printable(f"error: {info.error}"))

    if info.history:
        print()
        print_table(
            ("attempt", "error", "worker"),
            [
                (entry.get("attempt"), entry.get("error") or "-", entry.get("worker") or "-")
                for entry in info.history
            ],
        )
    if events:
        print()
        print_table(
            ("time", "event"),
            [(event.time, ".".join(event.type.rsplit(".", 2)[-2:])) for _, event in events],
        )
    return EXIT_PROBLEM if failed else EXIT_OK


def run_dlq(args: argparse.Namespace) -> int:
    """Print dead letters."""
    with connect(args, announce=not args.json) as (_target, connector):
        letters = _client(connector, args).dead_letters(args.agent, count=args.count)
    if args.json:
        print(json.dumps({"dead_letters": letters}, default=str))
        return EXIT_OK
    from deepagents_redis.cli._render import print_table

    if letters:
        print_table(
            ("letter", "agent", "task", "reason", "error"),
            [
                (
                    letter["id"],
                    letter["agent"],
                    letter.get("task_id") or "-",
                    letter.get("reason") or "-",
                    letter.get("error") or "-",
                )
                for letter in letters
            ],
        )
    print(f"{len(letters)} dead letter(s)")
    return EXIT_OK


def run_retry(args: argparse.Namespace) -> int:
    """Give a failed task fresh attempts."""
    from deepagents_redis.core import InvalidInputError

    with connect(args) as (_target, connector):
        try:
            _client(connector, args).retry(args.task_id)
        except InvalidInputError as exc:
            print(f"error: cannot retry {args.task_id}: {exc}", file=sys.stderr)
            return EXIT_PROBLEM
    print(f"task {args.task_id} queued again")
    return EXIT_OK


def run_cancel(args: argparse.Namespace) -> int:
    """Cancel a task."""
    with connect(args) as (_target, connector):
        status = _client(connector, args).cancel(args.task_id)
    print(f"task {args.task_id}: {status}")
    return EXIT_OK


def _require_task(connector: Any, args: argparse.Namespace) -> None:
    """Refuse `--task` of a task that has neither a record nor events.

    Its events stream can only be written by the task: tailing an id nobody submitted (a
    typo, another namespace) waited forever, printing nothing.

    Raises:
        NotFoundError: No record and no events (exit 1, as `tasks show` says it).
    """
    from deepagents_redis.core import NotFoundError

    tasks = _client(connector, args)
    try:
        tasks.get(args.task)
    except NotFoundError:
        if not tasks.events(args.task, count=1):
            raise


def run_tail(args: argparse.Namespace) -> int:
    """Print events as they arrive."""
    from deepagents_redis.cli._render import printable
    from deepagents_redis.coord import EventBus

    with connect(args, announce=not args.json) as (_target, connector):
        bus = EventBus(connector=connector, **_options(args))
        if args.task:
            _require_task(connector, args)
            stream = bus.keys.task(args.task).events
            start = args.start or "0-0"
        else:
            stream = bus.keys.log
            start = args.start or "$"
        seen = 0
        try:
            for entry_id, event in bus.tail("", after=start, stream=stream):
                seen += 1
                if args.json:
                    print(json.dumps({"id": entry_id, **event.model_dump(mode="json")}), flush=True)
                else:
                    print(
                        printable(  # anyone who can write the stream chose these: no escapes
                            f"{event.time}  {event.type.removeprefix('dev.deepagents-redis.'):<22} "
                            f"task={event.subject or '-'} agent={event.agent or '-'}"
                        ),
                        flush=True,
                    )
                if args.count is not None and seen >= args.count:
                    break
        except KeyboardInterrupt:
            pass
    return EXIT_OK
