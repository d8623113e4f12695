"""Suite ``todos``: every plan operation is one round trip.

Each operation of ``RedisTodoRepository`` on a 10-item plan is compared, interleaved, with an
``EVALSHA`` no-op (the floor for any script call) and with a raw ``GET`` of the plan's size
(the floor for any round trip). The notes give the commands sent per operation, counted on
the client. Beside them, an update's command floor: one script making the six commands an
update makes (op record ``GET``, plan ``HMGET``, ``TIME``, change-log ``XADD``, plan ``HSET``,
op record ``SET``) with the same sizes and none of its logic, against the no-op and against
the update: what is left above it is the script's Lua and our Python. Then a scripted deep
agent run (3 ``write_todos`` calls, 4 model calls) with
``RedisTodoMiddleware`` against the same run with langchain's in-memory
``TodoListMiddleware``.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import redis

from deepagents_redis_benchmarks._harness import BenchContext, Result

_ITEMS = [
    {"id": f"i{n}", "content": f"step {n}: {'do the thing carefully ' * 3}", "status": "pending"}
    for n in range(10)
]


class _Counting:
    """Counts the commands a client sends (``execute_command`` calls)."""

    def __init__(self, client: Any) -> None:
        self.calls = 0
        original = client.execute_command

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        client.execute_command = counted


def _round_trips(counter: _Counting, fn: Any, n: int = 20) -> float:
    before = counter.calls
    for _ in range(n):
        fn()
    return (counter.calls - before) / n


def run(ctx: BenchContext) -> list[Result]:
    """Measure each todos operation against an EVALSHA no-op and a GET; and an agent run."""
    from deepagents_redis.core import LuaScript, RedisSettings, create_client
    from deepagents_redis.todos import RedisTodoRepository, TodosSettings

    results: list[Result] = []
    prefix = f"bench-todos-{uuid.uuid4().hex[:8]}"
    settings = RedisSettings(url=ctx.url, key_prefix=prefix)
    client = create_client(settings)
    raw = redis.Redis.from_url(ctx.url)
    counter = _Counting(client)
    repo = RedisTodoRepository(
        client=client,
        settings=settings,
        todos_settings=TodosSettings(op_ttl_seconds=600, log_maxlen=10_000_000),
    )
    try:
        scope = "plan"
        repo.replace(scope, _ITEMS)
        repo.get(scope)  # loads the read script, so the count below is of steady-state calls
        plan_key = repo.plan_key(scope)
        # The plan's size as one JSON array: the `size` field (one field per item since
        # issue 13), or the whole `items` field of the old layout.
        stored_size = raw.hget(plan_key, "size")
        size = int(stored_size) if stored_size else len(raw.hget(plan_key, "items") or b"")
        raw.set(f"{prefix}:get", b"x" * size)
        noop = LuaScript("bench_noop", "return 0")
        noop(raw, keys=[plan_key], args=[])
        evalsha = lambda: noop(raw, keys=[plan_key], args=[])  # noqa: E731
        get = lambda: raw.get(f"{prefix}:get")  # noqa: E731

        statuses = itertools.cycle(["in_progress", "pending"])
        fresh = itertools.count()

        def add() -> Any:
            # A fresh 10-item plan each time would cost a second call; instead add to a plan
            # that is trimmed back outside the timed region every 40 adds (cap is 100).
            n = next(fresh)
            if n % 40 == 0:
                repo.replace("grow", _ITEMS)
            return repo.add("grow", "one more step")

        ops: list[tuple[str, Any]] = [
            ("get", lambda: repo.get(scope)),
            ("update status", lambda: repo.update(scope, "i3", status=next(statuses))),
            ("claim (renew)", lambda: repo.claim(scope, "i4", "bench", 60)),
            ("complete", lambda: repo.complete(scope, "i5")),
            ("replace 10 items", lambda: repo.replace(scope, _ITEMS)),
            ("add", add),
        ]
        n = ctx.n(3000)
        for label, fn in ops:
            trips = _round_trips(counter, fn) if label != "add" else 1.0
            note = f"10-item plan ({size} B); {trips:.2f} commands per call"
            o, b = ctx.compare(fn, evalsha, iterations=n)
            results.append(Result(f"todos {label}", o, "EVALSHA no-op", b, notes=note))
            o, b = ctx.compare(fn, get, iterations=n)
            results.append(Result(f"todos {label}", o, f"GET {size} B", b, notes=note))
        floor, drop_floor = _update_floor(raw, plan_key)
        try:
            floor()
            note = (
                "one script making an update's six commands with its sizes (10-item plan, "
                f"{size} B), no checks, no JSON work"
            )
            o, b = ctx.compare(floor, evalsha, iterations=n)
            results.append(
                Result("floor: todos update's six commands", o, "EVALSHA no-op", b, notes=note)
            )
            update = lambda: repo.update(scope, "i3", status=next(statuses))  # noqa: E731
            o, b = ctx.compare(update, floor, iterations=n)
            results.append(
                Result(
                    "todos update status",
                    o,
                    "floor: todos update's six commands",
                    b,
                    notes="what is left above the floor is the script's Lua and our Python",
                )
            )
        finally:
            drop_floor()
        results.extend(_agent_run(ctx, settings))
        for s in ("plan", "grow"):
            _drop_plan(repo, s)
        raw.delete(f"{prefix}:get")
    finally:
        repo.close()
        client.close()
        raw.close()
    return results


_FLOOR = """\
-- The commands one todos update makes, none of its checks or JSON work (benchmark floor).
-- KEYS: op record, plan (read), change log, plan copy (written); ARGV: log cap, op id,
-- change detail, the item's JSON.
local record = redis.call('GET', KEYS[1])
local p = redis.call('HMGET', KEYS[2], 'version', 'items', 'index', 'last_op', 'updated_ms')
local t = redis.call('TIME')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'v', p[1], 'op', 'update',
  'actor', 'api', 'op_id', ARGV[2], 'item', 'i3', 'detail', ARGV[3])
redis.call('HSET', KEYS[4], 'version', p[1], 'items', p[2], 'updated_ms', t[1],
  'index', p[3], 'last_op', ARGV[2])
redis.call('SET', KEYS[1], cmsgpack.pack({{1}}), 'NX', 'PX', 600000)
return {1, p[1], false, t[1], ARGV[2], 'u', 4, ARGV[4], #p[2]}
"""


def _update_floor(raw: Any, plan_key: str) -> tuple[Any, Any]:
    """The floor script as a callable (a fresh op record per call, as an update makes), and
    a function that deletes what it wrote."""
    from deepagents_redis.core import LuaScript

    script = LuaScript("bench_todos_update_floor", _FLOOR)
    ops = itertools.count()
    log_key, copy_key = f"{plan_key}:floor-log", f"{plan_key}:floor-copy"
    item = '{"id":"i3","content":"step 3: do the thing carefully","status":"pending"}'

    def call() -> Any:
        op = f"{uuid.uuid4().hex}"
        keys = [f"{plan_key}:floor-op:{next(ops)}", plan_key, log_key, copy_key]
        return script(raw, keys=keys, args=[10_000_000, op, '{"status":"pending"}', item])

    def drop() -> None:
        made = next(ops)
        for start in range(0, made, 500):
            stop = min(made, start + 500)
            raw.delete(*(f"{plan_key}:floor-op:{n}" for n in range(start, stop)))
        raw.delete(log_key, copy_key)

    return call, drop


def _drop_plan(repo: Any, scope: str) -> None:
    """Delete a plan, its log and its op-id records (their ids are in the log)."""
    client = repo._connector.client()
    op_keys = [repo.keyspace.op_key(scope, c.op_id) for c in repo.history(scope, limit=1_000_000)]
    for start in range(0, len(op_keys), 500):
        client.delete(*op_keys[start : start + 500])
    client.delete(repo.plan_key(scope), repo.log_key(scope))


def _agent_run(ctx: BenchContext, settings: Any) -> list[Result]:
    from deepagents import create_deep_agent
    from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
    from deepagents_redis.todos import RedisTodoMiddleware
    from langchain.agents.middleware import TodoListMiddleware
    from langchain_core.messages import AIMessage, HumanMessage

    def script() -> list[Any]:
        steps = []
        for round_ in range(3):
            todos = [
                {
                    "content": f"step {i}",
                    "status": "completed"
                    if i < round_
                    else "in_progress"
                    if i == round_
                    else "pending",
                }
                for i in range(5)
            ]
            steps.append(tool_call("write_todos", {"todos": todos}, f"w{round_}"))
        return [*steps, AIMessage("done")]

    redis_model = ScriptedChatModel(script=script())
    memory_model = ScriptedChatModel(script=script())
    mw = RedisTodoMiddleware(settings=settings)
    ours = create_deep_agent(model=redis_model, middleware=[mw])
    base = create_deep_agent(model=memory_model, middleware=[TodoListMiddleware()])
    threads = itertools.count()
    scopes: list[str] = []

    def run_ours() -> None:
        redis_model.rewind()
        thread = f"agent-{next(threads)}"
        scopes.append(thread)
        ours.invoke({"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": thread}})

    def run_base() -> None:
        memory_model.rewind()
        base.invoke({"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": "x"}})

    # Count the repository calls of one run (outside the timed region): reads and writes.
    calls = {"get": 0, "replace": 0}
    repo = mw.repository
    originals = {name: getattr(repo, name) for name in calls}

    def counting(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return originals[name](*args, **kwargs)

        return call

    for name in calls:
        setattr(repo, name, counting(name))
    run_ours()
    for name in calls:
        setattr(repo, name, originals[name])

    try:
        o, b = ctx.compare(run_ours, run_base, iterations=ctx.n(200), warmup=ctx.n(20))
        for scope in scopes:
            _drop_plan(mw.repository, scope)
    finally:
        mw.repository.close()
    return [
        Result(
            "scripted deep agent run, RedisTodoMiddleware",
            o,
            "same run, langchain TodoListMiddleware (in memory)",
            b,
            notes=(
                f"3 write_todos + 4 model calls; Redis per run: get x{calls['get']}, "
                f"replace x{calls['replace']}"
            ),
        )
    ]
