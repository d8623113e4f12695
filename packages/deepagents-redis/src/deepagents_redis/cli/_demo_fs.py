"""Demo section ``fs``: an agent writes files in this process; another process edits them.

Run as a module (``python -m deepagents_redis.cli._demo_fs NAMESPACE``) it is the second
process: it reads the report the agent wrote, edits it, and lists the directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

from deepagents_redis.cli._demo import DemoContext

__all__ = [
    "run",
]


_REPORT = "# Weekly report\n\nstatus: draft\nowner: agent\n"


def _scripted_agent(backend: Any) -> Any:
    from deepagents import create_deep_agent
    from deepagents_redis.testing.chat import ScriptedChatModel, tool_call
    from langchain_core.messages import AIMessage

    script = [
        tool_call("write_file", {"file_path": "/reports/weekly.md", "content": _REPORT}, "c1"),
        tool_call(
            "write_file", {"file_path": "/reports/data.csv", "content": "day,tasks\nmon,3\n"}, "c2"
        ),
        tool_call("ls", {"path": "/reports"}, "c3"),
        AIMessage(content="Report drafted."),
    ]
    return create_deep_agent(model=ScriptedChatModel(script=script), backend=backend)


def run(ctx: DemoContext) -> None:
    """Let an agent write files, then a second process read and edit them.

    Args:
        ctx: The demo context.
    """
    from deepagents_redis.fs import RedisBackend
    from langchain_core.messages import HumanMessage

    namespace = ctx.scratch(f"demo-fs-{uuid.uuid4().hex[:8]}")
    backend = RedisBackend(connector=ctx.connector, namespace=namespace)
    try:
        agent = _scripted_agent(backend)
        result = agent.invoke({"messages": [HumanMessage("Draft the weekly report.")]})
        ctx.out(f"process A (pid {os.getpid()}): agent said {result['messages'][-1].content!r}")
        for entry in backend.ls("/reports").entries or []:
            ctx.out(f"  {entry['path']}  {entry.get('size')} bytes")
        before = backend.stat("/reports/weekly.md")
        assert before is not None
        ctx.out(f"  /reports/weekly.md is at version {before.version}")

        env = {
            **os.environ,
            "DEEPAGENTS_REDIS_URL": ctx.url,
            "DEEPAGENTS_REDIS_KEY_PREFIX": ctx.settings.key_prefix,
            "DEEPAGENTS_REDIS_CLUSTER": str(ctx.settings.cluster),
        }
        child = subprocess.run(  # noqa: S603 - our own module, with our own interpreter
            [sys.executable, "-m", "deepagents_redis.cli._demo_fs", namespace],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        for line in child.stdout.splitlines():
            ctx.out(line)
        if child.returncode != 0:
            raise RuntimeError(f"the second process failed: {child.stderr.strip()[-500:]}")

        after = backend.read("/reports/weekly.md")
        assert after.file_data is not None
        edited = "reviewed by process B" in after.file_data["content"]
        stat = backend.stat("/reports/weekly.md")
        assert stat is not None
        ctx.out(f"process A: sees the edit: {edited}; version {before.version} -> {stat.version}")
        ctx.facts["fs_edit_seen"] = edited
        ctx.facts["fs_versions"] = (before.version, stat.version)
        if not edited:
            raise RuntimeError("process A does not see process B's edit")
    finally:
        backend.delete("/")
        backend.close()


def _second_process(namespace: str) -> int:
    from deepagents_redis.core import RedisSettings
    from deepagents_redis.fs import RedisBackend

    with RedisBackend(settings=RedisSettings(), namespace=namespace) as backend:
        pid = os.getpid()
        text = backend.read("/reports/weekly.md")
        if text.file_data is None:
            print(f"process B (pid {pid}): cannot read the report: {text.error}")
            return 1
        status = text.file_data["content"].splitlines()[2]
        print(f"process B (pid {pid}): read /reports/weekly.md, {status!r}")
        res = backend.edit(
            "/reports/weekly.md", "status: draft", f"status: reviewed by process B (pid {pid})"
        )
        print(f"process B: edit -> {res.occurrences} replacement(s), error={res.error}")
        hits = backend.grep("mon", "/reports").matches or []
        print(f"process B: grep 'mon' -> {[(m['path'], m['line']) for m in hits]}")
        return 0 if res.error is None else 1


if __name__ == "__main__":
    sys.exit(_second_process(sys.argv[1]))
