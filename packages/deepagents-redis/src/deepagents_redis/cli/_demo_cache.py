"""Demo section ``cache``: a deep agent run twice; the second run is served from Redis.

The model is `deepagents_redis.testing.chat`'s scripted one (no API key), answering by turn,
so both runs ask it exactly the same things. The first run calls it; the second finds every
answer in the Redis LLM cache, which ``create_deep_agent(..., redis_cache=True)`` put on (a
copy of) the model.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from deepagents_redis.cli._demo import DemoContext
from langchain_core.messages import AIMessage, HumanMessage

__all__ = [
    "QUESTION",
    "demo_model",
    "demo_script",
    "run",
]


QUESTION = "Plan a three-step release of deepagents-redis, then say you are done."


def demo_script() -> list[AIMessage]:
    """The demo model's replies: write the plan to a file, then finish."""
    return [
        AIMessage(
            content="Let me write the plan down.",
            tool_calls=[
                {
                    "name": "write_file",
                    "args": {
                        "file_path": "/release-plan.md",
                        "content": "1. Run the test suite\n2. Build the docs\n3. Tag and publish\n",
                    },
                    "id": "call_plan_1",
                }
            ],
            usage_metadata={"input_tokens": 120, "output_tokens": 40, "total_tokens": 160},
        ),
        AIMessage(
            content="Planned the release in three steps. Done.",
            usage_metadata={"input_tokens": 200, "output_tokens": 12, "total_tokens": 212},
        ),
    ]


def demo_model() -> Any:
    """The scripted model of the demo: `demo_script`, reply `n` for the `n`-th model turn.

    By turn, not by call: the same conversation always gets the same reply, so it is
    cacheable, and `calls` lists the turn of every call that reached the model (cache hits
    never do).
    """
    from deepagents_redis.testing.chat import ScriptedChatModel

    return ScriptedChatModel(script=demo_script(), by_turn=True)


def run(ctx: DemoContext) -> None:
    """Run the agent twice and print the model calls each run made.

    Args:
        ctx: The demo context.

    Raises:
        RuntimeError: The second run was not served from the cache.
    """
    from deepagents_redis.agent import close_redis, create_deep_agent
    from deepagents_redis.cache import CacheSettings

    # A namespace of this run only (deleted with the demo's other keys at the end), passed
    # the way a deployment would: DEEPAGENTS_REDIS_CACHE_NAMESPACE.
    namespace = ctx.scratch(f"demo-cache-{uuid.uuid4().hex[:8]}")
    with _env("DEEPAGENTS_REDIS_CACHE_NAMESPACE", namespace):
        settings = CacheSettings()
        model = demo_model()
        agent = create_deep_agent(
            model,
            system_prompt="You are a release manager.",
            redis_connector=ctx.connector,
            redis_cache=True,
        )
    ctx.out(f"agent: deep agent with a scripted model; LLM cache namespace {settings.namespace!r}")
    per_run: list[int] = []
    answers: list[str] = []
    for attempt in (1, 2):
        before = len(model.calls)
        result = agent.invoke({"messages": [HumanMessage(content=QUESTION)]})
        made = len(model.calls) - before
        per_run.append(made)
        answers.append(str(result["messages"][-1].content))
        files = sorted(result.get("files") or {})
        ctx.out(
            f"run {attempt}: {made} model call(s), files {files}, "
            f"answer {answers[-1]!r}" + ("  <- served from the Redis cache" if made == 0 else "")
        )
    close_redis(agent)
    ctx.facts["cache_model_calls"] = per_run
    if per_run[1] != 0 or answers[0] != answers[1]:
        raise RuntimeError(f"the second run was not served from the cache: calls {per_run}")
    ctx.out(f"model calls: run 1 = {per_run[0]}, run 2 = {per_run[1]} (saved {per_run[0]})")


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for the block, then restore it."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
