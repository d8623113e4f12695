"""A separate process that runs a counting graph on its own threads (test_faults)."""

from __future__ import annotations

import operator
import sys
from typing import Annotated, Any, TypedDict

from deepagents_redis.checkpoint import RedisSaver
from deepagents_redis.core import RedisSettings
from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    n: int
    log: Annotated[list[str], operator.add]


def build(saver: RedisSaver) -> Any:
    def step(state: State) -> dict[str, Any]:
        return {"n": state["n"] + 1, "log": [f"s{state['n']}"]}

    builder = StateGraph(State)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: END if s["n"] >= 20 else "step")
    return builder.compile(checkpointer=saver)


def main() -> None:
    url, prefix, name = sys.argv[1], sys.argv[2], sys.argv[3]
    saver = RedisSaver(settings=RedisSettings(url=url, key_prefix=prefix))
    graph = build(saver)
    for i in range(5):
        graph.invoke({"n": 0, "log": []}, {"configurable": {"thread_id": f"{name}-{i}"}})
    saver.close()


if __name__ == "__main__":
    main()
