"""A worker process for the fault tests: `python _proc_worker.py '<json config>'`.

Its agent `work` counts each execution in a hash (task id -> runs) before it sleeps
`input["sleep"]` seconds and returns its pid, so a test can tell who ran what, and how often.
Its agent `chat` is a LangGraph graph (a note, then an answer to the last user message; a
message starting with "slow" makes the answer take 60 s), counting its answers per task
(`<task id>:answers`), for the follow-up tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Annotated, Any, TypedDict

from deepagents_redis.coord import TaskContext, Worker
from deepagents_redis.core import RedisSettings, create_client


def _chat(counter: Any, counts: str) -> Any:
    # imported only by the workers that serve it: langgraph slows every worker's start
    from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.message import add_messages

    # functional form: the annotations are objects here, not strings naming locals
    State = TypedDict("State", {"messages": Annotated[list[AnyMessage], add_messages]})  # noqa: UP013

    def last_user(state: Any) -> str:
        return str(
            next(m for m in reversed(state["messages"]) if isinstance(m, HumanMessage)).content
        )

    def note(state: Any) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"noted: {last_user(state)}")]}

    async def answer(state: Any, config: RunnableConfig) -> dict[str, Any]:
        asked = last_user(state)
        if asked.startswith("slow"):
            await asyncio.sleep(60)
        task_id = config["metadata"]["dar_task_id"]
        counter.hincrby(counts, f"{task_id}:answers", 1)
        return {"messages": [AIMessage(content=f"answer to {asked}")]}

    graph = StateGraph(State)
    graph.add_node("note", note)
    graph.add_node("answer", answer)
    graph.add_edge(START, "note")
    graph.add_edge("note", "answer")
    graph.add_edge("answer", END)
    return graph.compile()


def main() -> None:
    cfg = json.loads(sys.argv[1])
    settings = RedisSettings(
        url=cfg["url"], key_prefix=cfg["prefix"], cluster="on" if cfg.get("cluster") else "off"
    )
    counter = create_client(settings)

    def work(value: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        counter.hincrby(cfg["counter"], ctx.task_id, 1)
        end = time.monotonic() + float(value.get("sleep", 0))
        while time.monotonic() < end and not ctx.cancelled.is_set():
            time.sleep(0.01)
        return {"pid": os.getpid()}

    Worker(
        settings=settings,
        agents={
            "work": work,
            **({"chat": _chat(counter, cfg["counter"])} if cfg.get("chat") else {}),
        },
        concurrency=cfg.get("concurrency", 4),
        stop_grace_seconds=cfg.get("grace", 10.0),
        **cfg["options"],
    ).run()


if __name__ == "__main__":
    main()
