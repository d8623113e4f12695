"""End to end: deepagents' create_deep_agent on a RedisBackend, a scripted model using every
file tool (sync invoke and async ainvoke, which goes through the backend's async methods)."""

from __future__ import annotations

from typing import Any

import pytest
from deepagents import create_deep_agent
from deepagents_redis.fs import RedisBackend
from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

pytestmark = pytest.mark.integration


def _call(name: str, n: int, **args: Any) -> AIMessage:
    return tool_call(name, args, f"call-{n}")


def script() -> list[AIMessage]:
    return [
        _call("write_file", 1, file_path="/notes/plan.md", content="step 1\nstep 2 TODO\n"),
        _call("read_file", 2, file_path="/notes/plan.md"),
        _call(
            "edit_file",
            3,
            file_path="/notes/plan.md",
            old_string="step 2 TODO",
            new_string="step 2 done",
        ),
        _call("write_file", 4, file_path="/notes/extra.py", content="print('x')  # TODO\n"),
        _call("ls", 5, path="/notes"),
        _call("glob", 6, pattern="*.py"),
        _call("grep", 7, pattern="TODO", output_mode="content"),
        _call("delete", 8, file_path="/notes/extra.py"),
        _call("read_file", 9, file_path="/notes/extra.py"),
        AIMessage(content="all done"),
    ]


def _check(result: dict[str, Any], backend: RedisBackend) -> None:
    tools = {m.tool_call_id: m for m in result["messages"] if isinstance(m, ToolMessage)}
    assert len(tools) == 9
    for n in range(1, 9):
        assert tools[f"call-{n}"].status != "error", tools[f"call-{n}"].content
    assert "step 2 TODO" in tools["call-2"].content
    assert "/notes/extra.py" in tools["call-5"].content
    assert "/notes/plan.md" in tools["call-5"].content
    assert "/notes/extra.py" in tools["call-6"].content
    assert "print('x')  # TODO" in tools["call-7"].content
    assert "step 2" not in tools["call-7"].content  # the edit landed before the grep
    assert "not found" in tools["call-9"].content
    assert result["messages"][-1].content == "all done"
    assert backend.read("/notes/plan.md").file_data["content"] == "step 1\nstep 2 done\n"
    assert backend.stat("/notes/extra.py") is None


def test_create_deep_agent_with_redis_backend(make_backend: Any) -> None:
    backend = make_backend()
    agent = create_deep_agent(model=ScriptedChatModel(script=script()), backend=backend)
    result = agent.invoke({"messages": [HumanMessage("organise my notes")]})
    _check(result, backend)


async def test_create_deep_agent_async(make_backend: Any) -> None:
    backend = make_backend()
    agent = create_deep_agent(model=ScriptedChatModel(script=script()), backend=backend)
    result = await agent.ainvoke({"messages": [HumanMessage("organise my notes")]})
    _check(result, backend)
