"""`Worker`: runs remote tasks for named agents, with leases, fencing, retries, dead letters.

One asyncio loop per worker process (`run()` starts it; `arun()` runs in yours):

* per agent, a reader takes new entries from the agent's queue (``XREADGROUP``), never more
  than it has free slots (`concurrency`);
* each entry is claimed by ``coord_claim`` (new fencing token, lease, attempt) and run;
* every `heartbeat_seconds` the worker renews the leases of its runs, each renewal on its own
  (a lost lease, or one that ran out with no renewal landing, stops the run: another worker
  may own the task now) and notices cancellations, in a task of its own that no other upkeep
  holds up; moves retries that are due back to the queue, and takes over
  entries whose worker died (``XAUTOCLAIM``; the claim script runs them again only when the
  task's lease expired, never because a task runs long);
* a run ends with ``coord_finish`` (fenced: a stale worker writes nothing), then the entry is
  acknowledged, rescheduled with backoff, or dead-lettered, in one script on the queue's slot.

`stop()` (SIGTERM/SIGINT under `run()`) stops taking work, lets runs finish for
`stop_grace_seconds`, then cancels the rest and hands them back to the queue (the attempt does
not count). A run whose agent ignores that cancel for another grace period is handed back
anyway and left behind (`abandoned`): the stop never waits on an agent, and whatever the run
still writes is refused by the fence.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import itertools
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Unpack

import msgpack
from deepagents_redis.coord._common import CoordComponent, claimed_entries, entries, one, text
from deepagents_redis.coord._errors import LeaseLostError
from deepagents_redis.coord._event import EVENT_FIELD, LOG_TASK_FIELD, new_event_id
from deepagents_redis.coord._keys import (
    GROUP,
    QueueKeys,
    TaskKeys,
    check_name,
    check_task_id,
    is_task_id_bytes,
)
from deepagents_redis.coord._scripts import (
    ACK,
    ACK_PLAIN,
    CLAIM,
    EVENT,
    FINISH,
    HANDBACK,
    HEARTBEAT,
    LOST,
    PROMOTE,
    PRUNE,
    SWEEP,
    TAKE,
)
from deepagents_redis.coord._scripts import (
    GROUP as GROUP_SCRIPT,
)
from deepagents_redis.coord._settings import CoordOptions
from deepagents_redis.core import (
    Chain,
    Command,
    DeepAgentsRedisError,
    EvictionCheck,
    EvictionGuard,
    Idempotent,
    InvalidInputError,
    Operation,
    Pipeline,
    Script,
    SerializationError,
    arun_operation,
    get_instrumentation,
    jittered_backoff,
    traced,
)
from langchain_core.callbacks import AsyncCallbackHandler

__all__ = ["TaskContext", "Worker"]

log = logging.getLogger("deepagents_redis.coord")

_FENCED: Final = {"FENCED": lambda rest: LeaseLostError(f"lease lost (token now {rest})")}
_MAX_FOLLOW_UPS: Final = 16
# Renewals of one run's lease in flight at once: a renewal stuck on one connection (up to the
# write deadline) does not keep the next beat's, on another connection, from landing.
_MAX_RENEWALS: Final = 2


class TaskContext:
    """What a running task can see and do: who it is, cancellation, progress, follow-ups.

    A callable agent that takes two parameters receives it: `agent(input, ctx)`.
    """

    def __init__(self, worker: Worker, agent: str, task_id: str, fence: int, attempt: int) -> None:
        self._worker = worker
        self.agent = agent
        """The agent name."""
        self.task_id = task_id
        """The task id."""
        self.attempt = attempt
        """Which run this is, from 1."""
        self.fence = fence
        """The fencing token of this run (every write for the task carries it)."""
        self.cancelled = threading.Event()
        """Set when the task was cancelled, its lease lost, or this run interrupted by a
        follow-up (`TaskClient.send(..., strategy="interrupt")`): a sync agent should stop."""
        self._inbox_after = "0-0"
        self._pending: list[Any] = []

    async def aprogress(self, **data: Any) -> None:
        """Append a ``task.progress`` event (fenced: refused once the lease is lost)."""
        await self._worker._progress(self, data)

    def progress(self, **data: Any) -> None:
        """Sync twin of `aprogress`, for agents run in a thread.

        Raises:
            RuntimeError: Called on the worker's own event loop (an async agent): use
                ``await ctx.aprogress(...)`` there.
        """
        loop = self._worker._loop
        if loop is None:
            raise RuntimeError("the worker is not running")
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # no running loop: a thread, as it should be
            running = None
        if running is loop:
            # Waiting here for a write the loop itself must make blocked the loop, and every
            # run's heartbeat with it, for twice the write deadline, then raised TimeoutError:
            # leases could run out under a live worker.
            raise RuntimeError(
                "TaskContext.progress() blocks; an async agent awaits ctx.aprogress()"
            )
        asyncio.run_coroutine_threadsafe(self.aprogress(**data), loop).result(
            timeout=self._worker._deadline * 2
        )

    async def amessages(self) -> list[Any]:
        """Follow-up messages sent to the task (`TaskClient.send`) since the last call.

        A run that was interrupted (or lost its lease) gets none: they belong to the run
        that follows it.
        """
        pending, self._pending = self._pending, []
        return [*pending, *await self._worker._inbox(self)]


@dataclass(slots=True)
class _Run:
    agent: str
    task_id: str
    entry_id: str
    fence: int
    attempt: int
    ctx: TaskContext
    task: asyncio.Task[Any] | None = None
    """The asyncio task handling the entry (claim, run, finish): the run's cancels target it."""
    max_attempts: int = 1
    reason: str | None = None
    """Why the run was cancelled: 'cancel', 'lost' or 'stop'."""
    mail: int = 0
    """Follow-ups already in the inbox when the task was claimed (sent while it waited)."""
    invoking: bool = False
    """The agent part of the run is in progress: a cancel (cancel, lost lease, stop) may
    interrupt it. Once it is over the result is being written, which nothing interrupts."""
    calling: bool = False
    """An agent call is in progress: an interrupting follow-up may cancel it (the run goes
    on from the conversation so far)."""
    interrupting: bool = False
    restarting: bool = False
    """A follow-up's restart (`_restarting`: a new fencing token) is under way."""
    latest: Any = None
    """A graph call's state after its last finished step (the conversation so far)."""
    lease_until: float = float("inf")
    """When the run's lease ends at the latest, on the loop's clock: the send time of the
    last claim or renewal that the server applied, plus the lease (the server counts from
    when it ran the call, which is later). Past it, the run no longer holds the task."""
    renewing: int = 0
    """Renewals of this run's lease in flight (each in a task of its own)."""


class _Slots:
    """Free run slots: a reader reserves what it may read, and gives back what it did not use.

    A reader holds its reservation while its read blocks, so one reader never takes more
    than its share (the slots split evenly across the agents), or a busy agent's reader
    would starve the others.
    """

    def __init__(self, size: int, readers: int) -> None:
        self.free = size
        self.share = max(1, -(-size // max(1, readers)))
        self._cond = asyncio.Condition()

    async def reserve(self) -> int:
        async with self._cond:
            await self._cond.wait_for(lambda: self.free > 0)
            taken = min(self.free, self.share)
            self.free -= taken
            return taken

    async def give_back(self, n: int = 1) -> None:
        if n <= 0:
            return
        async with self._cond:
            self.free += n
            self._cond.notify_all()


def _kind(agent: Any) -> str:
    """'runnable', 'async' or 'sync' (a plain function taking the input, maybe a context)."""
    if hasattr(agent, "ainvoke"):
        return "runnable"
    if inspect.iscoroutinefunction(agent) or inspect.iscoroutinefunction(
        getattr(agent, "__call__", None)  # noqa: B004 - async callable objects
    ):
        return "async"
    return "sync"


def _takes_context(agent: Any) -> bool:
    try:
        params = inspect.signature(agent).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2


class Worker(CoordComponent):
    """Run tasks submitted to a namespace for the given agents.

    Args:
        agents: Agent name -> a LangChain runnable (a compiled deep agent), a function
            `f(input)` / `f(input, ctx)` (sync runs in a thread, async is awaited), or a
            zero-argument factory returning one of these (called once, at start).
        concurrency: Most tasks run at once (and most entries read ahead: none).
        worker_id: Name in task records and events (default: host, pid and a random suffix).
        stop_grace_seconds: After `stop()`, how long runs may finish before they are cancelled
            and handed back to the queue; a run whose agent ignores its cancel for as long
            again is handed back and left behind (see `abandoned`).
        eviction_check: What to do at start if the server may evict keys (`allkeys-*`):
            queues and running tasks have no TTL, so an eviction loses work. ``warn`` logs,
            ``refuse`` raises `ConfigurationError`, ``off`` does not look.
        **kwargs: Connection (`connector=` or `url=`...) and `CoordSettings` options.

    Example:
        >>> Worker(url=url, namespace="demo", agents={"echo": lambda x: x}).run()  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        agents: Mapping[str, Any],
        concurrency: int = 4,
        worker_id: str | None = None,
        stop_grace_seconds: float = 10.0,
        eviction_check: EvictionCheck = "warn",
        **kwargs: Unpack[CoordOptions],
    ) -> None:
        super().__init__(**kwargs)
        if not agents:
            raise InvalidInputError("a Worker needs at least one agent")
        if type(concurrency) is not int or concurrency < 1:  # a bool is no count
            raise InvalidInputError("concurrency must be an int of at least 1")
        if (
            isinstance(stop_grace_seconds, bool)
            or not isinstance(stop_grace_seconds, int | float)
            or not stop_grace_seconds >= 0  # NaN too: the stop's waits take it as given
        ):
            raise InvalidInputError(
                f"stop_grace_seconds must be zero or positive seconds, not {stop_grace_seconds!r}"
            )
        self._agents: dict[str, Any] = {}
        for name, agent in agents.items():
            check_name("agent", name)
            if not callable(agent) and not hasattr(agent, "ainvoke"):
                raise InvalidInputError(f"agent {name!r} is neither a runnable nor a callable")
            self._agents[name] = agent
        self.concurrency = concurrency
        """Most tasks run at once."""
        self.worker_id = check_name(
            "worker_id", worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        """This worker's name."""
        self.stop_grace_seconds = stop_grace_seconds
        self._runs: dict[str, _Run] = {}
        self._closing = False
        self._keeping = True
        self._log_queue: asyncio.Queue[Any] | None = None
        self._outer: set[asyncio.Future[Any]] = set()
        self._renewals: set[asyncio.Task[None]] = set()
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._eviction = EvictionGuard(
            "task queues and task records", eviction_check, logger="deepagents_redis.coord"
        )
        self._lease_ms = int(self.coord_settings.lease_seconds * 1000)
        self._shapes: dict[str, tuple[str, bool]] = {}
        self.completed = 0
        """Runs this worker finished (any outcome), for tests and the CLI."""
        self.abandoned = 0
        """Runs a stop left behind: their agent ignored the cancel (handed back anyway)."""
        self._threads = 0
        self._threads_lock = threading.Lock()
        # Claim tokens: unique per call (a random prefix per worker object, so a restarted
        # worker that reuses its worker_id never matches a token its predecessor left).
        self._claim_prefix = uuid.uuid4().hex[:12]
        self._claim_seq = itertools.count()

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> None:
        """Run until `stop()` or SIGTERM/SIGINT, then stop gracefully (blocks).

        The event loop is the worker's own: a connector the worker built is closed at the end.
        Signals are handled when this runs in the main thread (elsewhere, call `stop()`).
        It returns without waiting for agent calls a stop left behind (`abandoned`,
        `threads_running`): their tasks were handed back.
        """
        in_main = threading.current_thread() is threading.main_thread()

        async def main() -> None:
            try:
                await self.arun(handle_signals=in_main)
            finally:
                if self._owns_connector:
                    await self.aclose()

        # Not `asyncio.run`: its clean-up waits for every task to take its cancel and for
        # every executor thread to end, so one agent that ignores a stop (or a sync agent in
        # a blocking call) would hold the worker long past its grace.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        finally:
            try:
                self._close_loop(loop)
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def _close_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """`asyncio.run`'s clean-up, bounded: what is still running after it is left."""
        left = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in left:
            task.cancel()
        if left:  # what takes its cancel ends within a few loop iterations
            loop.run_until_complete(asyncio.wait(left, timeout=1.0))
        loop.run_until_complete(loop.shutdown_asyncgens())
        if not self.threads_running:
            loop.run_until_complete(loop.shutdown_default_executor())

    @property
    def threads_running(self) -> int:
        """Sync agent calls still in their threads.

        A stop does not wait for them: a sync agent stops only at its own check of
        `TaskContext.cancelled`.
        """
        with self._threads_lock:
            return self._threads

    def stop(self) -> None:
        """Ask the worker to stop: no new work; runs finish or are handed back.

        Thread-safe, and safe to call again (a signal handler and a ``finally``, say): once
        the worker's loop has ended there is nothing left to stop.
        """
        loop, stopping = self._loop, self._stopping
        if loop is None or stopping is None or loop.is_closed():
            return
        # the loop may close between the check and the call (`asyncio.run` returning)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stopping.set)

    async def arun(self, *, handle_signals: bool = False) -> None:
        """Run in the current event loop until `stop()`.

        Args:
            handle_signals: Stop gracefully on SIGTERM and SIGINT (main thread only).
        """
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._closing, self._keeping = False, True
        self._log_queue = asyncio.Queue()
        writer = asyncio.create_task(self._log_writer())
        try:
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    self._loop.add_signal_handler(sig, self._stopping.set)
            for name, agent in list(self._agents.items()):
                if _kind(agent) == "sync" and not inspect.signature(agent).parameters:
                    self._agents[name] = agent()  # a factory
            # what each agent is, looked at once (inspect.signature per run costs ~50 us)
            self._shapes = {
                name: (_kind(agent), _takes_context(agent)) for name, agent in self._agents.items()
            }
            await self._eviction.acheck(
                await self._connector.aclient(), gate=self._connector.async_gate()
            )
            slots = _Slots(self.concurrency, len(self._agents))
            await self._announce(startup=True)
        except BaseException:
            # A start that failed (Redis down, an eviction policy refused, a factory that
            # raised) must not leave the log writer pending: on a loop closed by its owner
            # it was collected later as "Event loop is closed".
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            raise
        log.info(
            "worker %s serving %s in namespace %r",
            self.worker_id,
            sorted(self._agents),
            self.namespace,
        )
        readers = [asyncio.create_task(self._reader(name, slots)) for name in self._agents]
        # Leases are renewed by a task of their own: upkeep's steps (a slow queue, a
        # deadline-long stall) must never hold up a renewal (see `_heartbeater`).
        keepers = [asyncio.create_task(self._heartbeater()), asyncio.create_task(self._keeper())]
        try:
            await self._stopping.wait()
        finally:
            log.debug("worker %s: stopping; %d run(s) in flight", self.worker_id, len(self._runs))
            # A cancellation that lands inside redis-py can come out as a connection error,
            # which the loops survive on purpose; these flags are what really end them.
            self._closing = True
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            log.debug("worker %s: readers stopped", self.worker_id)
            await self._drain()
            log.debug("worker %s: runs drained", self.worker_id)
            self._keeping = False
            renewals = list(self._renewals)
            for task in [*keepers, *renewals]:
                task.cancel()
            await asyncio.gather(*keepers, *renewals, return_exceptions=True)
            log.debug("worker %s: upkeep stopped", self.worker_id)
            try:  # the last lifecycle lines, bounded by the write deadline
                await asyncio.wait_for(self._log_queue.join(), self._deadline)
            except TimeoutError:
                log.warning("worker %s: event log lines left unwritten at stop", self.worker_id)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            await self._leave()
            log.info("worker %s stopped", self.worker_id)

    async def _drain(self) -> None:
        pending = [r.task for r in self._runs.values() if r.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=self.stop_grace_seconds)
        for run in list(self._runs.values()):
            # A run whose agent part is over is writing its result: let it (`_interrupt`
            # looks at `run.invoking`). So is a run already being cancelled (a cancel, a lost
            # lease): a second cancel would overwrite its reason and raise the task's cancel
            # count past what `_execute` takes back, which reads as the worker's teardown.
            self._interrupt(run, "stop")
        outers = list(self._outer)
        if not outers:
            return
        # A grace period for the cancelled runs to end (an agent's own clean-up), ...
        _, stuck = await asyncio.wait(outers, timeout=max(self.stop_grace_seconds, 1.0))
        if not stuck:
            return
        left = await self._abandon()
        # ... then the runs that did end get to write their outcome or hand-back, each
        # write bounded by the write deadline; the abandoned ones are not waited for.
        writing = [outer for outer in stuck if outer not in left]
        if writing:
            await asyncio.wait(writing, timeout=2 * self._deadline)

    async def _abandon(self) -> set[asyncio.Future[Any]]:
        """Hand back the runs whose agent ignored the stop's cancel, and leave them behind.

        Waiting on them would let one agent hold the stop (and SIGTERM) for as long as it
        likes. The hand-back gives the task a new fencing token, so the run can no longer
        write a result, an event or a heartbeat; the task runs again on another worker.

        Returns:
            The entry tasks of the runs left behind.
        """
        left: set[asyncio.Future[Any]] = set()
        for run in list(self._runs.values()):
            if not run.invoking or run.task is None or run.task.done():
                continue  # it is writing its outcome: that is bounded by the write deadline
            left.add(run.task)
            self.abandoned += 1
            log.error(
                "worker %s: agent %r ignored the stop of task %s for %.1f s; the task is "
                "handed back and the run left behind (what it writes now is refused)",
                self.worker_id,
                run.agent,
                run.task_id,
                max(self.stop_grace_seconds, 1.0),
            )
            try:
                await self._hand_back(run, self.keys.queue(run.agent), self.keys.task(run.task_id))
            except LeaseLostError:
                continue  # the run took its cancel meanwhile and handed the task back itself
            except DeepAgentsRedisError as exc:  # its lease runs out instead
                log.warning(
                    "worker %s: could not hand back task %s (%s); it is taken over once its "
                    "lease expires",
                    self.worker_id,
                    run.task_id,
                    exc,
                )
        return left

    # ------------------------------------------------------------------ redis calls

    async def _op(self, name: str, op: Operation[Any], **attrs: Any) -> Any:
        return await arun_operation(
            self._connector, name, op, deadline_seconds=self._deadline, words=_FENCED, **attrs
        )

    async def _announce(self, *, startup: bool = False) -> None:
        now_ms = int(time.time() * 1000)
        registry = [
            ("ZADD", self.keys.workers, now_ms, self.worker_id),
            # workers silent for a day are forgotten (the set stays bounded)
            ("ZREMRANGEBYSCORE", self.keys.workers, "-inf", now_ms - 86_400_000),
        ]
        for name in self._agents:
            registry.append(("ZADD", self.keys.registry, now_ms, name))
        await self._op("coord.announce", one(Pipeline(registry)))
        if not startup:
            return
        for name in self._agents:
            queue = self.keys.queue(name)
            await self._op("coord.group", one(Script(GROUP_SCRIPT, [queue.stream], [GROUP])))
            cutoff = now_ms - self.coord_settings.dlq_retention_seconds * 1000
            await self._op("coord.trim", one(Command(("XTRIM", queue.dlq, "MINID", "~", cutoff))))
            try:  # the consumers dead or stopped workers left, holding nothing
                await self._prune(queue, "")
            except DeepAgentsRedisError as exc:  # tidying only: never a reason not to serve
                log.warning("worker %s: could not prune consumers: %s", self.worker_id, exc)

    def _prune(self, queue: QueueKeys, own: str) -> Awaitable[Any]:
        """Delete `queue`'s consumers that hold nothing: `own`, and others silent a lease.

        Each worker start is a new consumer of every queue it is delivered from, which Redis
        keeps until it is deleted: the groups' consumer lists grew by one per worker start.
        """
        args = [GROUP, own, self._lease_ms, 1_000]
        return self._op("coord.prune", one(Script(PRUNE, [queue.stream], args)))

    async def _leave(self) -> None:
        try:
            await self._op("coord.leave", one(Command(("ZREM", self.keys.workers, self.worker_id))))
            for name in self._agents:  # its consumers, unless they still hold an entry
                await self._prune(self.keys.queue(name), self.worker_id)
        except DeepAgentsRedisError as exc:
            log.warning("worker %s: could not sign off: %s", self.worker_id, exc)

    # ------------------------------------------------------------------ reading work

    async def _reader(self, agent: str, slots: _Slots) -> None:
        """Take work for `agent`: new entries, and every heartbeat those a dead worker left.

        Both reads happen here, under the same slot reservation, so the worker never holds
        more entries than it can run.
        """
        queue = self.keys.queue(agent)
        block_ms = max(
            1,
            int(
                min(self.coord_settings.block_seconds, self._connector.settings.socket_timeout / 2)
                * 1000
            ),
        )
        # Entries idle for a heartbeat may belong to a dead worker; the claim script decides
        # from the task's lease, so a live worker's long run is looked at, never re-run.
        idle_ms = int(self.coord_settings.heartbeat_seconds * 1000)
        cursor, next_reclaim, failures = "0-0", 0.0, 0
        while not self._closing:
            free = await slots.reserve()
            reclaim = time.monotonic() >= next_reclaim
            if reclaim:
                next_reclaim = time.monotonic() + self.coord_settings.heartbeat_seconds
                cmd: tuple[Any, ...] = (
                    "XAUTOCLAIM",
                    queue.stream,
                    GROUP,
                    self.worker_id,
                    idle_ms,
                    cursor,
                    "COUNT",
                    free,
                )
            else:
                cmd = (
                    "XREADGROUP",
                    "GROUP",
                    GROUP,
                    self.worker_id,
                    "COUNT",
                    free,
                    "BLOCK",
                    block_ms,
                    "STREAMS",
                    queue.stream,
                    ">",
                )
            try:
                reply = await self._op(
                    "coord.reclaim" if reclaim else "coord.read", one(Command(cmd))
                )
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the reader must outlive any one failure
                await slots.give_back(free)
                if self._closing:
                    return
                failures += 1
                log.warning(
                    "worker %s: reading %s failed, retrying: %s", self.worker_id, agent, exc
                )
                get_instrumentation().count("coord.read_failed", agent=agent)
                if isinstance(exc, DeepAgentsRedisError) and "NOGROUP" in str(exc.__cause__ or exc):
                    # the stream or its group was deleted (a FLUSH, an operator): make it again
                    await self._op(
                        "coord.group", one(Script(GROUP_SCRIPT, [queue.stream], [GROUP]))
                    )
                await asyncio.sleep(jittered_backoff(failures, 0.1, 2.0))
                continue
            if reclaim:
                cursor = text(reply[0]) if reply else "0-0"
                taken = claimed_entries(reply)
                if taken:
                    # entries another worker took and never acknowledged (it died, or it is
                    # slow: the claim script re-runs only tasks whose lease ran out)
                    get_instrumentation().count("coord.redelivered", len(taken), agent=agent)
            else:
                taken = entries(reply)
            await slots.give_back(free - len(taken))
            sent = asyncio.get_running_loop().time()  # the batch claim's send time
            claimed = await self._claim_batch(agent, taken) if len(taken) > 1 else {}
            for entry_id, fields in taken:
                self._spawn(
                    self._handle(agent, queue, entry_id, fields, slots, claimed.get(entry_id), sent)
                )
            if taken and not claimed:
                # The entries' tasks send their claims before this reader sends its next
                # read: that send, and the server's run of the read, were on every task's
                # path ahead of its claim (pinned profile, 2026-12-07). Same loop iteration.
                await asyncio.sleep(0)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._outer.add(task)
        task.add_done_callback(self._outer.discard)

    async def _handle(
        self,
        agent: str,
        queue: QueueKeys,
        entry_id: str,
        fields: dict[bytes, bytes],
        slots: _Slots,
        claimed: tuple[Any, Any] | None = None,
        sent: float = 0.0,
    ) -> None:
        try:
            await self._handle_entry(agent, queue, entry_id, fields, claimed, sent)
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad task must not stop the worker; it is logged and counted
            log.exception("worker %s: task entry %s of %s failed", self.worker_id, entry_id, agent)
            get_instrumentation().count("coord.worker_error", agent=agent)
        finally:
            await slots.give_back(1)

    def _inline_log(self) -> bool:
        """Whether the task's scripts write the namespace log's lines themselves.

        On a single server (standalone or Sentinel) a script may touch keys of any slot, so
        the claim and finish scripts append the line in the same call: no second encoding,
        no separate pipeline, and no line lost between the task's write and the log's. On a
        Cluster the log lives in another slot, so the lines go through `_log_writer`.
        """
        return self._connector.cluster_hint is False

    def _claim_op(self) -> str:
        """A fresh token for one claim call (see claim.lua's ``claim_op``)."""
        return f"{self._claim_prefix}:{next(self._claim_seq)}"

    def _claim(
        self,
        agent: str,
        task_id: str,
        entry_id: str,
        failed: bytes = b"",
        cancelled: bytes = b"",
    ) -> tuple[Script, bytes | None]:
        """The claim of one task by this worker (``coord_claim``).

        `failed` and `cancelled`: the events that end the task in the claim, once the script
        asked for them (out of attempts; a cancel requested while an earlier attempt ran).

        Returns:
            The script, and its 'started' event as encoded for the task's stream, for the
            namespace log, or None when the script writes the log's line itself (on a single
            server: `_inline_log`).
        """
        keys = self.keys.task(task_id)
        event = self._fields("task.started", self.worker_id, task_id, agent, worker=self.worker_id)
        started = self._encode_fields(event, keys.events)
        args: list[Any] = [
            self.worker_id,
            self._lease_ms,
            started,
            self.coord_settings.events_maxlen,
            failed,
            self.coord_settings.result_ttl_seconds * 1000,
        ]
        inline = self._inline_log()
        # The log's cap and the task id (read with the log's key only), the 'cancelled' event
        # ('' = none) and this call's own token: the client's retry re-sends a call whose
        # reply was lost, and the script answers that re-send with the run it started.
        # The entry claimed: a re-delivered entry whose run ended in a retry or a hand-back
        # whose ack has not landed yet is acked, not run (claim.lua's 'retrying', 'requeue').
        args += [
            self.coord_settings.log_maxlen,
            task_id,
            cancelled,
            self._claim_op(),
            agent,
            entry_id,
        ]
        if inline:
            return Script(CLAIM, [*keys.scripted, self.keys.log], args), None
        return Script(CLAIM, keys.scripted, args), started

    async def _claim_batch(
        self, agent: str, taken: list[tuple[str, dict[bytes, bytes]]]
    ) -> dict[str, tuple[Any, Any]]:
        """Claim a read batch in one round trip on a single server.

        Returns:
            Entry id -> (claim reply, its 'started' event for the log, as `_claim` returns it);
            empty when not claimed here. When the batch call failed, the reply is the entry's
            claim script itself, for the entry to send again as it is.

        Core's `Chain` runs the claims as one script, in order. On a Cluster (tasks in other
        slots) the result is empty and each entry claims for itself; if the batch call
        fails, each entry sends its own claim of the batch again (same token, so a claim
        the failed call did make answers with its run).
        """
        if self._connector.cluster_hint is not False:
            return {}
        ids: list[str] = []
        claims: list[Script] = []
        events: list[bytes | None] = []
        for entry_id, fields in taken:
            try:
                task_id = check_task_id(text(fields.get(b"t")))
            except DeepAgentsRedisError:
                continue  # malformed: its own handler dead-letters it
            ids.append(entry_id)
            claim, event = self._claim(agent, task_id, entry_id)
            claims.append(claim)
            events.append(event)
        if len(claims) < 2:
            return {}
        try:
            replies = await self._op("coord.claim", one(Chain(claims)), agent=agent)
        except DeepAgentsRedisError as exc:
            log.warning("worker %s: claiming a batch of %s failed: %s", self.worker_id, agent, exc)
            get_instrumentation().count("coord.claim_batch_failed", agent=agent)
            # Each entry re-sends its own claim, with the same token: a claim the failed
            # call did make answers that re-send with the run it started. A new claim (a
            # new token) read such a task as held by a live worker: nobody ran it until its
            # lease ran out, and the attempt was charged to a dead worker.
            return dict(zip(ids, zip(claims, events, strict=True), strict=True))
        return dict(zip(ids, zip(replies, events, strict=True), strict=True))

    async def _handle_entry(
        self,
        agent: str,
        queue: QueueKeys,
        entry_id: str,
        fields: dict[bytes, bytes],
        claimed: tuple[Any, Any] | None = None,
        sent: float = 0.0,
    ) -> None:
        """Claim the entry's task and run it, or ack / dead-letter the entry.

        `sent`: when the batch claim in `claimed` was sent (the loop's clock): the run's
        lease counts from then at the latest.
        """
        raw = fields.get(b"t")
        clock = asyncio.get_running_loop().time
        try:
            task_id = check_task_id(text(raw))
        except DeepAgentsRedisError:
            await self._dead_letter(queue, entry_id, "", reason="malformed entry", fields=fields)
            return
        keys = self.keys.task(task_id)
        failed_line: bytes | None = None
        if claimed is not None:
            packed, started = claimed  # claimed with its read batch (`_claim_batch`)
            if isinstance(packed, Script):  # the batch call failed: this entry's claim again
                sent = clock()
                packed = await self._op("coord.claim", one(packed), agent=agent)
        else:
            claim, started = self._claim(agent, task_id, entry_id)
            sent = clock()
            packed = await self._op("coord.claim", one(claim), agent=agent)
        reply = _claim_reply(packed)
        failed = cancelled = b""
        for _ in range(2):  # the task ends here: claim again with the event that ends it
            asked = text(reply[0])
            if asked == "exhausted?":  # out of attempts
                failed = self._encoded(
                    "task.failed", self.worker_id, task_id, agent, keys, reason="out of attempts"
                )
            elif asked == "cancelled?":  # its cancel was requested while an attempt ran
                cancelled = self._encoded("task.cancelled", self.worker_id, task_id, agent, keys)
            else:
                break
            claim, started = self._claim(agent, task_id, entry_id, failed, cancelled)
            sent = clock()
            reply = _claim_reply(await self._op("coord.claim", one(claim), agent=agent))
        verdict = text(reply[0])
        if verdict == "malformed":
            # A record someone else wrote under the task's key: no run can be built from it,
            # and it would fail the same way at every delivery. The record is left as it is.
            await self._dead_letter(
                queue,
                entry_id,
                "",
                reason=f"task record unusable ({text(reply[1])[:200]})",
                fields=fields,
            )
            return
        if verdict == "foreign":
            # An entry someone else appended to this agent's queue for another agent's task:
            # running it would feed that task's input to this agent and write the result as
            # the task's. The task is left as it is (its own queue entry still stands).
            await self._dead_letter(
                queue,
                entry_id,
                "",
                reason=f"entry names a task of another agent ({text(reply[1])[:200]})",
                fields=fields,
            )
            return
        if started is not None:  # not logged by the script: the log gets the ending line
            failed_line = (failed if verdict == "exhausted" else cancelled) or None
        if verdict == "done" and text(reply[1]) == "error":
            # A task that failed for good and whose entry is still here was never dead-lettered:
            # its worker's dead letter (a call after the finish) failed, or the worker died
            # between the two. Acknowledged plainly, the entry took the dead letter with it.
            row = await self._op(
                "coord.get", one(Command(("HMGET", keys.record, "error", "history")))
            )
            await self._dead_letter(
                queue,
                entry_id,
                task_id,
                reason="failed",
                error=text(row[0]),
                history=_json_list(row[1]),
            )
        elif verdict in ("done", "gone", "cancelled"):
            if verdict == "cancelled":  # ended by this claim
                self._log_event(task_id, failed_line)
            await self._ack(queue, entry_id, task_id, "ack", fence=0)
        elif verdict == "busy":
            return  # a live worker holds it; its own entry is acknowledged when it ends
        elif verdict == "retrying":
            # This entry's attempt failed and its worker's ack (rescheduling the retry) has
            # not landed: it died between its finish and its ack, or is just sending it. The
            # same ack, from here: whichever acknowledges the entry schedules the retry.
            delay = int(reply[1]) / 1000
            await self._ack(queue, entry_id, task_id, "retry", fence=0, delay=delay)
        elif verdict == "requeue":
            # Handed back, the ack that re-queues it not landed: that ack, with its op id
            # (the same token), so both make one new entry.
            await self._ack(queue, entry_id, task_id, "requeue", fence=int(reply[1]))
        elif verdict == "exhausted":
            history = _json_list(reply[2])
            self._log_event(task_id, failed_line)
            await self._dead_letter(
                queue,
                entry_id,
                task_id,
                reason="out of attempts",
                error=f"out of attempts: {int(reply[1])}",
                history=history,
            )
        else:
            fence, attempt = int(reply[1]), int(reply[2])
            run_timeout = float(text(reply[4])) if text(reply[4]) else None
            ctx = TaskContext(self, agent, task_id, fence, attempt)
            run = _Run(
                agent,
                task_id,
                entry_id,
                fence,
                attempt,
                ctx,
                max_attempts=int(reply[6]),
                mail=int(reply[8]) if len(reply) > 8 else 0,
                lease_until=sent + self._lease_ms / 1000,
            )
            self._log_event(task_id, started)
            carrier = _json_dict(reply[7]) if len(reply) > 7 else {}
            # The run, its events and its Redis calls belong to the submitter's trace.
            with (
                traced(carrier),
                get_instrumentation().span("coord.run", agent=agent, task=task_id),
            ):
                await self._execute(run, queue, keys, reply[3], run_timeout)

    # ------------------------------------------------------------------ running

    async def _invoke(self, run: _Run, value: Any) -> Any:
        """Run the agent, then the follow-ups: queued ones after it, interrupting ones at once.

        Everything runs in the entry's own asyncio task (`run.task`): no task per run or per
        call, each of which cost loop iterations on every task. Both kinds of cancel target
        that task and are told apart by flags and the task's cancel count: an interrupting
        follow-up (`_interrupt_step`, `run.interrupting`) is taken back (`uncancel`) where the
        call was awaited and the run goes on; a cancel of the run (`_interrupt`:
        `run.reason`) ends it in `_execute`.
        """
        try:
            return await self._invoke_steps(run, value)
        except LeaseLostError:
            run.reason = run.reason or "lost"
            raise asyncio.CancelledError from None  # ends as a lost run: nothing written

    async def _invoke_steps(self, run: _Run, value: Any) -> Any:
        impl = self._agents[run.agent]
        kind, with_context = self._shapes[run.agent]
        if run.mail:  # follow-ups sent before the task started join its first call
            value = await self._follow(run, value, await self._take(run, restart=False))
        queued = 0
        while True:
            run.interrupting = False
            run.calling = True
            try:
                try:
                    result = await self._call(impl, kind, with_context, value, run)
                finally:
                    run.calling = False
            except asyncio.CancelledError:
                if not run.interrupting:
                    raise  # the run itself is cancelled
                current = asyncio.current_task()
                if current is not None and current.uncancel() > 0:
                    raise  # the run is cancelled too, not just this call
                # An interrupting follow-up: go on from the conversation so far.
                state = run.latest if run.latest is not None else value
                run.ctx.cancelled.set()  # a sync call still in its thread stops at its next check
                value = await self._follow(run, state, await self._take(run, restart=True))
                continue
            if run.interrupting:
                # The agent swallowed the interrupting follow-up's cancel and answered: take
                # that cancel back here, or the task's cancel count stays raised and a later
                # cancel of the run (a cancel, a stop, its time limit) would read as the
                # worker's own teardown, which writes nothing.
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                if run.reason is None:
                    # The context told that call to stop (a sync agent's check); the calls
                    # that follow must not see its stop. Same token: nothing was restarted.
                    self._renew_context(run, run.fence)
            if kind != "runnable" or not isinstance(result, dict) or "messages" not in result:
                return result
            if queued >= _MAX_FOLLOW_UPS:
                return result
            # deepagents' "enqueue" follow-up: the run goes on with the new messages.
            more = await self._take(run, restart=False)
            if not more:
                return result
            queued += 1
            value = await self._follow(run, result, more)

    async def _call(self, impl: Any, kind: str, with_context: bool, value: Any, run: _Run) -> Any:
        ctx = run.ctx
        run.latest = None
        if kind == "runnable":
            config: dict[str, Any] = {
                "callbacks": [_ProgressHandler(self, ctx)],
                "metadata": {"dar_task_id": ctx.task_id},
            }
            if not _is_graph(impl):
                return await impl.ainvoke(value, config=config)
            # A LangGraph graph runs as `ainvoke` does (stream of updates and values, the
            # last value is the output), keeping each step's state: an interrupting
            # follow-up continues from it.
            interrupts: list[Any] = []
            async for mode, payload in impl.astream(
                value, config, stream_mode=["updates", "values"]
            ):
                if mode == "values":
                    run.latest = payload
                elif isinstance(payload, dict) and (found := payload.get("__interrupt__")):
                    interrupts.extend(found)
            latest = run.latest
            run.latest = None
            if interrupts:
                return (
                    {**latest, "__interrupt__": interrupts}
                    if isinstance(latest, dict)
                    else {"__interrupt__": interrupts}
                )
            return latest
        args = (value, ctx) if with_context else (value,)
        if kind == "async":
            return await impl(*args)
        return await self._in_thread(impl, args)

    async def _in_thread(self, impl: Any, args: tuple[Any, ...]) -> Any:
        """`asyncio.to_thread`, counting the calls still in their threads (`threads_running`).

        A cancel ends the await, not the thread: a sync agent stops at its own check of
        `TaskContext.cancelled`. The count lets `run()` and the CLI exit without waiting for
        such calls (the interpreter would, at exit, for as long as the agent runs).
        """
        context = contextvars.copy_context()

        def call() -> Any:
            try:
                return context.run(impl, *args)
            finally:
                with self._threads_lock:
                    self._threads -= 1

        with self._threads_lock:
            self._threads += 1
        try:
            future = asyncio.get_running_loop().run_in_executor(None, call)
        except BaseException:
            with self._threads_lock:
                self._threads -= 1
            raise
        return await future

    async def _follow(self, run: _Run, state: Any, messages: list[Any]) -> Any:
        """The next call's input: the conversation so far plus the follow-ups.

        An input without a ``messages`` list (a callable's own shape) stays as it is; the
        follow-ups then wait in the run's `TaskContext` for `amessages`.
        """
        if not messages:
            return state
        if isinstance(state, Mapping) and isinstance(state.get("messages"), list):
            follow = [
                m if not isinstance(m, str) else {"role": "user", "content": m} for m in messages
            ]
            return {**state, "messages": [*state["messages"], *follow]}
        run.ctx._pending.extend(messages)
        return state

    async def _take(self, run: _Run, *, restart: bool) -> list[Any]:
        """Take the follow-ups after the run's inbox cursor (coord_take, fenced).

        With `restart`, the run gets a new fencing token and a new `TaskContext`: whatever
        the interrupted call still does (a sync agent in its thread, a callback) is fenced.

        Raises:
            LeaseLostError: Another worker holds the task now.
        """
        ctx = run.ctx
        keys = self.keys.task(run.task_id)
        event = (
            self._encoded("task.interrupted", self.worker_id, run.task_id, run.agent, keys)
            if restart
            else b""
        )
        take_keys = [keys.record, keys.inbox, keys.events]
        take_args: list[Any] = [
            run.fence,
            ctx._inbox_after,
            "1" if restart else "0",
            event,
            self.coord_settings.events_maxlen,
        ]
        logged: bytes | None = event  # the line `_restarted` queues for the log writer
        if restart and self._inline_log():  # the script writes it, in order with the rest
            take_keys.append(self.keys.log)
            take_args += [self.coord_settings.log_maxlen, run.task_id]
            logged = None
        call = self._op("coord.take", one(Script(TAKE, take_keys, take_args)))
        try:
            reply = await (self._restarting(run, call, logged) if restart else call)
        except LeaseLostError:
            ctx.cancelled.set()
            raise
        fence, rows = int(reply[0]), reply[1:]
        after = text(rows[-2]) if rows else ctx._inbox_after
        messages = [self.codec.decode(rows[i + 1], key=keys.inbox) for i in range(0, len(rows), 2)]
        if restart:
            self._restarted(run, fence, logged)
        run.ctx._inbox_after = after
        return messages

    def _restarted(self, run: _Run, fence: int, event: bytes | None) -> None:
        """The run goes on under the restart's new token, with a new `TaskContext`.

        `event`: the 'interrupted' event as the take script wrote it to the task's stream;
        the namespace log gets those very bytes (same event id), not a second encoding that
        a reader of both streams would take for another event. None: the script logged it.
        """
        self._renew_context(run, fence)
        self._log_event(run.task_id, event)

    def _renew_context(self, run: _Run, fence: int) -> None:
        """A new `TaskContext` for the run's next calls (not cancelled), under `fence`."""
        old = run.ctx
        run.fence = fence
        run.ctx = TaskContext(self, run.agent, run.task_id, fence, run.attempt)
        run.ctx._pending = old._pending
        run.ctx._inbox_after = old._inbox_after

    async def _restarting(self, run: _Run, call: Awaitable[Any], event: bytes | None) -> Any:
        """Await a restarting take (`call`) to its end, even if the run is cancelled meanwhile.

        The restart gives the run a new fencing token. Were its reply lost to a cancel of the
        run (a cancel, a stop, its time limit), the run would end with the old token, be
        refused, write nothing, and the task would run again once its lease ran out. So on a
        cancel the reply is still awaited and its token taken before the cancel goes on.
        Heartbeats sent with the old token meanwhile are refused too, which is no lost lease:
        `_heartbeats` passes over the run while `run.restarting`.
        """
        run.restarting = True
        take = asyncio.ensure_future(call)
        try:
            return await asyncio.shield(take)
        except asyncio.CancelledError:
            with contextlib.suppress(DeepAgentsRedisError):  # refused: nothing restarted
                self._restarted(run, int((await take)[0]), event)
            raise
        finally:
            run.restarting = False

    async def _execute(
        self,
        run: _Run,
        queue: QueueKeys,
        keys: TaskKeys,
        raw_input: bytes,
        run_timeout: float | None,
    ) -> None:
        agent, task_id, timeout = run.agent, run.task_id, run_timeout
        self._runs[task_id] = run
        inst = get_instrumentation()
        try:
            try:
                value = self.codec.decode(raw_input, key=keys.record)
            except SerializationError as exc:
                await self._end(
                    run, queue, keys, "error", error=f"input cannot be decoded: {exc}", final=True
                )
                return
            # The run is awaited in this task (see `_invoke`); its time limit is a timeout
            # scope around it, told apart from a TimeoutError the agent raises itself.
            run.task = current = asyncio.current_task()
            limit = asyncio.timeout(timeout) if timeout else None
            run.invoking = True
            try:
                try:
                    if limit is None:
                        result = await self._invoke(run, value)
                    else:
                        async with limit:
                            result = await self._invoke(run, value)
                finally:
                    run.invoking = False  # from here on the outcome is written, uncancelled
            except asyncio.CancelledError as exc:
                if run.reason is None:
                    if current is not None and current.cancelling() == 0:
                        # Nothing cancelled this task: the agent raised it (an inner task
                        # of its own was cancelled, say). That is its failure; re-raised, it
                        # would end the entry's task with nothing written, and the task
                        # would wait out its lease to be blamed on a dead worker.
                        inst.count("coord.run", outcome="error", agent=agent)
                        await self._failed(run, queue, keys, exc)
                        return
                    raise  # the worker itself is being torn down
                if current is not None and current.uncancel() > 0:
                    raise  # torn down as well
                run.ctx.cancelled.set()
                await self._after_cancel(run, queue, keys)
                return
            except Exception as exc:  # noqa: BLE001 - the agent's own failure: retried, then dead letters
                if isinstance(exc, TimeoutError) and limit is not None and limit.expired():
                    # the run's own limit, not a TimeoutError the agent raised itself
                    run.ctx.cancelled.set()
                    await self._end(
                        run, queue, keys, "timeout", error=f"ran longer than {timeout}s", final=True
                    )
                    return
                inst.count("coord.run", outcome="error", agent=agent)
                await self._failed(run, queue, keys, exc)
                return
            try:
                payload = self.codec.encode(result, key=keys.record)
                if len(payload) > self.coord_settings.max_input_bytes:
                    raise SerializationError(
                        f"result of {len(payload)} bytes is over max_input_bytes "
                        f"({self.coord_settings.max_input_bytes})"
                    )
            except DeepAgentsRedisError as exc:
                await self._end(
                    run, queue, keys, "error", error=f"result cannot be stored: {exc}", final=True
                )
                return
            inst.count("coord.run", outcome="success", agent=agent)
            await self._end(run, queue, keys, "success", result=payload)
        finally:
            # Only this run's own entry: a run fenced out (its lease lost, the task taken
            # over and handed back) may end after this worker claimed the task again, and
            # removing that new run stopped its heartbeats (its lease ran out under a live
            # worker, which ran the task once more) and its cancels.
            if self._runs.get(task_id) is run:
                del self._runs[task_id]
            self.completed += 1

    async def _after_cancel(self, run: _Run, queue: QueueKeys, keys: TaskKeys) -> None:
        if run.reason == "cancel":
            await self._end(run, queue, keys, "cancelled", error="cancelled", final=True)
        elif run.reason == "stop":
            with contextlib.suppress(LeaseLostError):  # handed back already, or taken over
                await self._hand_back(run, queue, keys)
        # 'lost': another worker holds the task; we write nothing.

    async def _hand_back(self, run: _Run, queue: QueueKeys, keys: TaskKeys) -> None:
        """Give the task back to the queue (fenced; the attempt does not count).

        Raises:
            LeaseLostError: The run no longer holds the task (handed back already, or taken
                over): nothing written.
        """
        event = self._encoded("task.handed_back", self.worker_id, run.task_id, run.agent, keys)
        back_keys = [keys.record, keys.events]
        back_args: list[Any] = [run.fence, event, self.coord_settings.events_maxlen]
        inline = self._inline_log()
        if inline:  # the script writes the log's line (see `_inline_log`)
            back_keys.append(self.keys.log)
            back_args += [self.coord_settings.log_maxlen, run.task_id]
        await self._op("coord.handback", one(Script(HANDBACK, back_keys, back_args)))
        if not inline:
            self._log_event(run.task_id, event)
        await self._ack(queue, run.entry_id, run.task_id, "requeue", fence=run.fence)

    async def _failed(
        self, run: _Run, queue: QueueKeys, keys: TaskKeys, exc: BaseException
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"[:2_000]
        final = run.attempt >= run.max_attempts  # the record's, fixed at submit
        await self._end(run, queue, keys, "error" if final else "retry", error=error, final=final)

    async def _end(
        self,
        run: _Run,
        queue: QueueKeys,
        keys: TaskKeys,
        outcome: str,
        *,
        result: bytes = b"",
        error: str = "",
        final: bool = False,
    ) -> None:
        opts = self.coord_settings
        kind = {"success": "task.completed", "retry": "task.retrying"}.get(
            outcome, f"task.{outcome}" if outcome != "error" else "task.failed"
        )
        fields = self._fields(
            kind,
            self.worker_id,
            run.task_id,
            run.agent,
            attempt=run.attempt,
            **({"error": error} if error else {}),
        )
        event = self._encode_fields(fields, keys.events)
        entry = (
            json.dumps(
                {
                    "attempt": run.attempt,
                    "worker": self.worker_id,
                    "error": error,
                    "at_ms": int(time.time() * 1000),
                }
            )
            if error
            else ""
        )
        finish_keys = keys.scripted
        finish_args: list[Any] = [
            run.fence,
            outcome,
            result,
            error,
            event,
            opts.events_maxlen,
            opts.result_ttl_seconds * 1000,
            entry,
        ]
        logged = self._inline_log()
        if logged:  # the script writes the log's line too (see `_inline_log`)
            finish_keys = [*finish_keys, self.keys.log]
        dead = outcome == "error" and final
        delay = 0.0
        if outcome == "retry":
            delay = jittered_backoff(
                run.attempt, opts.backoff_base_seconds, opts.backoff_cap_seconds
            )
        # The retry's delay is kept in the record too: a claim of this entry that comes
        # before its ack (two calls on a Cluster) acks it with what is left of it.
        finish_args += [opts.log_maxlen, run.task_id, int(delay * 1000)]
        finish = Script(FINISH, finish_keys, finish_args)
        # Finish, then acknowledge the queue entry: one round trip (core's `Chain`: one
        # script on a single server; two calls in that order across Cluster slots). A
        # finish refused by the fence stops the chain, so a worker that lost its lease
        # acknowledges nothing. Dead letters carry the task's history: they go after.
        request: Any = finish
        if not dead:
            mode = "retry" if outcome == "retry" else "ack"
            request = Chain(
                [finish, self._ack_plain(queue, run.entry_id, run.task_id, mode, delay)]
            )
        try:
            await self._op("coord.finish", one(request), agent=run.agent, status=outcome)
        except LeaseLostError:
            log.warning(
                "worker %s: task %s was taken over; its %s is dropped",
                self.worker_id,
                run.task_id,
                outcome,
            )
            get_instrumentation().count("coord.fenced", agent=run.agent)
            return
        if not logged:
            self._log_event(run.task_id, event)
        if dead:
            await self._dead_letter(
                queue, run.entry_id, run.task_id, reason="failed", error=error, fence=run.fence
            )

    def _ack_plain(
        self, queue: QueueKeys, entry_id: str, task_id: str, mode: str, delay: float = 0.0
    ) -> Script:
        """The ack of a mode idempotent by construction (ack: XACK/XDEL; retry: ZADD)."""
        return Script(ACK_PLAIN, *self._ack_request(queue, entry_id, task_id, mode, delay, b""))

    def _ack_request(
        self,
        queue: QueueKeys,
        entry_id: str,
        task_id: str,
        mode: str,
        delay: float,
        letter: bytes,
    ) -> tuple[list[Any], list[Any]]:
        """The keys and arguments of `coord_ack` (see ack.lua)."""
        # 'requeue' moves the task's mark, 'ack' and 'dead' give it its TTL (the task has
        # left the queue; see enqueue.lua); 'retry' reads it (to schedule the retry of a run
        # whose stream was deleted under it); a malformed entry's dead letter gets a stand-in
        # in the same slot (no key built from a task id someone else wrote).
        mark = self.keys.mark(queue, task_id) if task_id else queue.delayed
        keys = [queue.stream, queue.delayed, queue.dlq, mark, queue.queued]
        ttl_ms = self.coord_settings.result_ttl_seconds * 1000
        return keys, [entry_id, mode, task_id, int(delay * 1000), letter, GROUP, 10_000, ttl_ms]

    async def _ack(
        self,
        queue: QueueKeys,
        entry_id: str,
        task_id: str,
        mode: str,
        *,
        fence: int,
        delay: float = 0.0,
        letter: bytes = b"",
    ) -> bool:
        """Send `coord_ack`; True when this call took the entry off the pending list.

        ('retry', 'dead' and 'requeue': or found it on none, the task's mark still naming
        it and, for 'retry', the task not delayed yet: its stream was deleted under the run.
        Their retry / letter / new entry is added then too.)

        With 'dead' and 'requeue', False means nothing was added: another call (the run's
        worker, or a worker the entry was re-delivered to) had ended the entry first.
        """
        if mode in ("ack", "retry"):
            # idempotent by construction: no op record (one per task would pile up)
            ack = self._ack_plain(queue, entry_id, task_id, mode, delay)
            return bool(await self._op("coord.ack", one(ack)))
        keys, args = self._ack_request(queue, entry_id, task_id, mode, delay, letter)
        op_id = f"ack:{task_id or entry_id}:{entry_id}:{fence}:{mode}"
        if mode == "dead" and not fence:
            # A claim's dead letter: an op id of this call's own. Two workers' claims may
            # handle one entry (the second reader's XAUTOCLAIM took it over while the first
            # still handled it): with a shared op id the second call was answered with the
            # first one's recorded reply (1) and counted the letter again; run, it finds the
            # entry off the pending list and the mark with its TTL, and adds nothing (0).
            op_id += f":{self._claim_op()}"
        op_key = self.keys.op(queue.scope, op_id)
        # the record only has to outlive this call's own retries
        idempotent = Idempotent(ACK, op_key, keys, args, op_ttl_ms=600_000)
        return bool(await self._op("coord.ack", one(idempotent)))

    async def _dead_letter(
        self,
        queue: QueueKeys,
        entry_id: str,
        task_id: str,
        *,
        reason: str,
        error: str = "",
        history: list[Any] | None = None,
        fields: Mapping[bytes, bytes] | None = None,
        fence: int = 0,
    ) -> None:
        letter: dict[str, Any] = {
            "task_id": task_id,
            "reason": reason,
            "error": error,
            "worker": self.worker_id,
            "at_ms": int(time.time() * 1000),
        }
        if history is not None:
            letter["history"] = history
        elif task_id:
            info = await self._op(
                "coord.get", one(Command(("HGET", self.keys.task(task_id).record, "history")))
            )
            letter["history"] = _json_list(info)
        if fields is not None:
            letter["fields"] = {
                text(k)[:200]: text(v)[:1_000] for k, v in list(fields.items())[:20]
            }
        written = await self._ack(
            queue,
            entry_id,
            task_id,
            "dead",
            fence=fence,
            letter=self.codec.encode(letter, key=queue.dlq),
        )
        if not written:  # another worker's dead letter (or ack) for this entry came first
            log.info(
                "worker %s: entry %s was ended by another call first; no second dead letter",
                self.worker_id,
                entry_id,
            )
            return
        log.warning(
            "worker %s: dead letter for %s: %s %s",
            self.worker_id,
            task_id or entry_id,
            reason,
            error,
        )
        # The label is the reason's fixed words only: its detail (in parentheses) may hold a
        # submitter's agent name or a record's bytes, an unbounded set of label values.
        get_instrumentation().count("coord.dead_letter", reason=reason.partition(" (")[0])

    def _log_event(self, task_id: str, event: bytes | None) -> None:
        """Queue a task's event for the namespace's log (written off the task's path).

        `event`: the bytes the task's own stream got (the same event in two streams, same
        id: a reader of both can tell); None when a script already logged it.
        """
        if event is not None and self._log_queue is not None:
            self._log_queue.put_nowait((task_id, event))

    async def _log_writer(self) -> None:
        # The namespace's live tail lives in another slot, so it is not part of the task's
        # scripts. One writer keeps the log in order and batches what piled up into one
        # pipeline (after a short linger, `_LOG_LINGER`, so that a short task's lines share
        # one); losing a batch costs a live listener some lines, never a task's state, and
        # is logged and counted.
        queue = self._log_queue
        assert queue is not None
        maxlen = self.coord_settings.log_maxlen
        while True:
            batch = [await queue.get()]
            if _LOG_LINGER and queue.empty():
                await asyncio.sleep(_LOG_LINGER)
            while not queue.empty() and len(batch) < 500:
                batch.append(queue.get_nowait())
            cmds = [
                (
                    "XADD",
                    self.keys.log,
                    "MAXLEN",
                    "~",
                    maxlen,
                    "*",
                    EVENT_FIELD,
                    event,
                    LOG_TASK_FIELD,
                    task_id,
                )
                for task_id, event in batch
            ]
            try:
                await self._op("coord.log", one(Pipeline(cmds)))
            except DeepAgentsRedisError as exc:
                log.warning(
                    "worker %s: %d event log line(s) lost: %s", self.worker_id, len(batch), exc
                )
                get_instrumentation().count("coord.log_failed")
            finally:
                for _ in batch:
                    queue.task_done()

    async def _progress(self, ctx: TaskContext, data: dict[str, Any]) -> None:
        keys = self.keys.task(ctx.task_id)
        event = self._encoded("task.progress", self.worker_id, ctx.task_id, ctx.agent, keys, **data)
        # By op id: a plain script whose reply was lost is re-sent by the client's retry, and
        # the task's events held the progress twice. The record only has to outlive this
        # call's retries, all within its deadline (a busy agent reports often: keep it short).
        op_key = self.keys.op(keys.scope, f"progress:{new_event_id()}")
        ttl_ms = max(60_000, int(self._deadline * 2_000))
        try:
            await self._op(
                "coord.progress",
                one(
                    Idempotent(
                        EVENT,
                        op_key,
                        [keys.record, keys.events],
                        [ctx.fence, event, self.coord_settings.events_maxlen],
                        op_ttl_ms=ttl_ms,
                    )
                ),
            )
        except LeaseLostError:
            ctx.cancelled.set()

    async def _inbox(self, ctx: TaskContext) -> list[Any]:
        run = self._runs.get(ctx.task_id)
        if run is None or run.ctx is not ctx or ctx.cancelled.is_set():
            return []  # an interrupted (or ended) call: the follow-ups are the next call's
        try:
            return await self._take(run, restart=False)
        except LeaseLostError:  # another worker holds the task: this run stops, writes nothing
            self._interrupt(run, "lost")
            return []

    # ------------------------------------------------------------------ upkeep

    async def _heartbeater(self) -> None:
        """Renew this worker's leases every `heartbeat_seconds`, on a schedule of their own.

        The renewals shared one loop with the upkeep (`_keeper`), each beat after the last
        upkeep step: one slow step (a queue on a slow shard, a deadline-long stall, for each
        agent in turn) held up the renewals behind it, a live worker's lease ran out, and
        another worker ran its task again. Each renewal runs in a task of its own (see
        `_heartbeats`): a slow one delays no other run's renewal, nor the next beat.
        """
        period = self.coord_settings.heartbeat_seconds
        loop = asyncio.get_running_loop()
        spent = 0.0
        while self._keeping:
            await asyncio.sleep(max(0.0, period * (0.9 + 0.2 * _jitter()) - spent))
            if not self._keeping:
                return
            began = loop.time()
            try:
                await self._heartbeats()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the renewals must outlive any one failure
                log.warning(
                    "worker %s: heartbeat round failed, retrying next beat: %s", self.worker_id, exc
                )
                get_instrumentation().count("coord.upkeep_failed")
            spent = loop.time() - began

    async def _keeper(self) -> None:
        """Every heartbeat: move due retries to the queues, announce, sweep (`_sweep_op`)."""
        period = self.coord_settings.heartbeat_seconds
        while self._keeping:
            await asyncio.sleep(period * (0.9 + 0.2 * _jitter()))
            if not self._keeping:
                return
            try:
                await self._promote()
                await self._announce()
                await self._sweep()
            except asyncio.CancelledError:
                raise
            except DeepAgentsRedisError as exc:
                log.warning("worker %s: upkeep failed, retrying next beat: %s", self.worker_id, exc)
                get_instrumentation().count("coord.upkeep_failed")

    async def _heartbeats(self) -> None:
        """One beat: renew each run's lease in a task of its own, and stop the expired runs.

        The renewals of a beat were awaited together: one stalled renewal (a blackholed
        connection, a slow shard, up to the write deadline) held up every other run's next
        renewal, their leases ran out under a live worker, and another worker ran those
        tasks again. Now each renewal answers for its own run; a run whose renewals are all
        stuck or failing is stopped once its lease has surely run out (`Run.lease_until`), so
        a lease is never lost silently (its writes were fenced anyway). The beat waits a
        little for its renewals (their replies are handled by the time it returns when the
        server is quick), never for a slow one.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        started: list[asyncio.Task[None]] = []
        for run in list(self._runs.values()):
            if run.restarting:
                continue  # a restart's new token is on its way: its beats would be refused
            if now >= run.lease_until:
                self._expired(run)
                continue
            if run.renewing >= _MAX_RENEWALS:
                continue  # the ones in flight may still land; the lease check above decides
            run.renewing += 1
            renewal = asyncio.create_task(self._renew(run, now))
            self._renewals.add(renewal)
            renewal.add_done_callback(self._renewals.discard)
            started.append(renewal)
        if started:
            await asyncio.wait(started, timeout=self.coord_settings.heartbeat_seconds / 2)

    def _expired(self, run: _Run) -> None:
        """Stop a run whose lease ran out with no renewal applied: another worker may hold it."""
        if run.reason is not None or not run.invoking:
            return  # already stopping, or writing its outcome (which the fence guards)
        self._interrupt(run, "lost")
        log.warning(
            "worker %s: could not renew the lease of %s in time; stopping that run",
            self.worker_id,
            run.task_id,
        )
        get_instrumentation().count("coord.lease_expired", agent=run.agent)

    async def _renew(self, run: _Run, sent: float) -> None:
        """Renew one run's lease (sent at `sent`, the loop's clock) and act on the reply."""
        fence = run.fence
        try:
            reply: Any = await self._beat(run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handled below, per run
            reply = exc
        finally:
            run.renewing -= 1
        if run.fence != fence or run.restarting:
            return  # the run restarted for a follow-up meanwhile (new token): next beat
        if self._runs.get(run.task_id) is not run:
            return  # it ended while the beat was under way (its record is no longer
            # running, hence FENCED): nothing was lost
        if not isinstance(reply, BaseException):
            # replies may come back out of order: the lease runs from the latest send
            run.lease_until = max(run.lease_until, sent + self._lease_ms / 1000)
        if isinstance(reply, LeaseLostError):
            self._interrupt(run, "lost")
            log.warning(
                "worker %s: lost the lease of %s; stopping that run", self.worker_id, run.task_id
            )
        elif isinstance(reply, BaseException):
            log.warning("worker %s: heartbeat of %s failed: %s", self.worker_id, run.task_id, reply)
        elif reply == 1:
            self._interrupt(run, "cancel")
        elif reply == 2:
            self._interrupt_step(run)

    async def _beat(self, run: _Run) -> Any:
        keys = self.keys.task(run.task_id)
        return await self._op(
            "coord.heartbeat",
            one(Script(HEARTBEAT, [keys.record], [run.fence, self._lease_ms])),
        )

    def _interrupt(self, run: _Run, reason: str) -> None:
        if run.reason is None and run.invoking and run.task is not None and not run.task.done():
            run.reason = reason
            run.ctx.cancelled.set()
            run.task.cancel()

    def _interrupt_step(self, run: _Run) -> None:
        """Stop the agent call in progress for an interrupting follow-up (the run goes on)."""
        task = run.task
        if run.reason is None and run.calling and not run.interrupting and task is not None:
            run.interrupting = True
            run.ctx.cancelled.set()
            task.cancel()

    async def _promote(self) -> None:
        for agent in self._agents:
            queue = self.keys.queue(agent)
            await self._op("coord.promote", self._promote_op(queue))

    async def _sweep(self) -> None:
        for agent in self._agents:
            queued = await self._op("coord.sweep", self._sweep_op(self.keys.queue(agent)))
            if queued:
                # their entries went with the stream (deleted under them): no pending list
                # held them, so no reclaim would have found them
                log.warning(
                    "worker %s: %d task(s) of %s had lost their queue entry; queued again",
                    self.worker_id,
                    queued,
                    agent,
                )
                get_instrumentation().count("coord.swept", queued, agent=agent)

    def _sweep_op(self, queue: QueueKeys) -> Operation[int]:
        """Queue again, once, the tasks of `queue` whose entry is gone (see sweep.lua).

        The queue's index (`QueueKeys.queued`) lists every task whose mark has no TTL; the
        first call lists those scored before the stream's first entry (none, while the
        stream lost nothing and the index is tidy), the second checks each against its mark,
        the stream and the delayed set, and queues the lost ones again. Two calls, as in
        `_promote_op`: the second must be given each task's mark key.
        """
        listed = yield Script(LOST, [queue.stream, queue.queued], [100])
        if not listed:
            return 0  # the one call a queue that lost nothing costs
        marked = [m for m in listed if is_task_id_bytes(m)]
        others = [m for m in listed if not is_task_id_bytes(m)]
        marks = [self.keys.mark(queue, m.decode()) for m in marked]
        queued = yield Script(
            SWEEP,
            [queue.stream, queue.delayed, queue.queued, *marks],
            [len(marked), GROUP, *marked, *others],
        )
        return int(queued)

    def _promote_op(self, queue: QueueKeys) -> Operation[int]:
        """Move `queue`'s due retries to the queue.

        The first 100 by due time are listed, then moved by a script that checks each is
        still delayed and due on the server's clock. Two calls, not one, because moving a
        task also moves its enqueue mark (a key per task, which the script must be given,
        not build).
        """
        listed = yield Command(("ZRANGE", queue.delayed, 0, 99))
        if not listed:
            return 0  # nothing delayed: the one call an idle queue costs, as before
        # Members go back as the bytes they are (one that is no task id, someone else's,
        # is moved too and dead-lettered by the worker that reads it, as before: left
        # behind, it would hold a place in this list for ever). Only task ids get a mark.
        marked = [m for m in listed if is_task_id_bytes(m)]
        others = [m for m in listed if not is_task_id_bytes(m)]
        marks = [self.keys.mark(queue, m.decode()) for m in marked]
        ttl_ms = self.coord_settings.result_ttl_seconds * 1000
        moved = yield Script(
            PROMOTE,
            [queue.stream, queue.delayed, *marks],
            [ttl_ms, len(marked), *marked, *others],
        )
        return int(moved)


class _ProgressHandler(AsyncCallbackHandler):
    """LangChain callbacks -> ``task.progress`` events (tool and model calls)."""

    def __init__(self, worker: Worker, ctx: TaskContext) -> None:
        self._worker = worker
        self._ctx = ctx

    async def on_tool_start(  # type: ignore[override]
        self, serialized: dict[str, Any] | None, input_str: str, **kwargs: Any
    ) -> None:
        name = (serialized or {}).get("name") or kwargs.get("name") or "tool"
        await self._emit(step="tool", name=str(name))

    async def on_chat_model_start(  # type: ignore[override]
        self, serialized: dict[str, Any] | None, messages: Any, **kwargs: Any
    ) -> None:
        await self._emit(step="model", name=str((serialized or {}).get("name") or "model"))

    async def _emit(self, **data: Any) -> None:
        try:
            await self._worker._progress(self._ctx, data)
        except DeepAgentsRedisError as exc:
            log.warning("progress event for %s lost: %s", self._ctx.task_id, exc)


def _is_graph(agent: Any) -> bool:
    try:
        from langgraph.pregel import Pregel
    except ImportError:  # pragma: no cover - langgraph is a dependency
        return False
    return isinstance(agent, Pregel)


# How long the log writer waits after the first queued event for others to join its batch.
# A task's 'started' and 'completed' log lines are ~1-2 ms apart when tasks are short: with
# no wait each was a round trip of its own. 5 ms of added tail latency took a no-op task's
# submit -> result from 2.50 / 2.26 ms to 2.00 / 2.02 ms and its CPU from 2.59 / 2.28 ms to
# 2.11 / 2.11 ms (in-process worker, alternated; the coord performance pass).
_LOG_LINGER = 0.005


def _jitter() -> float:
    return uuid.uuid4().int % 1000 / 1000


def _json_dict(raw: Any) -> dict[str, str]:
    try:
        value = json.loads(text(raw) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _claim_reply(raw: Any) -> list[Any]:
    """The claim script's reply: one MessagePack string (see ``claim.lua``), unpacked.

    Raises:
        SerializationError: Not a reply of that script.
    """
    try:
        value = msgpack.unpackb(raw, raw=True)
    except (TypeError, ValueError, msgpack.UnpackException) as exc:
        raise SerializationError(f"unexpected claim reply: {exc}") from exc
    if not isinstance(value, list) or not value:
        raise SerializationError("unexpected claim reply")
    return value


def _json_list(raw: Any) -> list[Any]:
    try:
        value = json.loads(text(raw) or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []
