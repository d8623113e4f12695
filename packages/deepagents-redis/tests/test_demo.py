"""``deepagents-redis demo``: against the plugin's server, and on the embedded default."""

from __future__ import annotations

import argparse

import pytest
import redis
from deepagents_redis.cli import _demo, main
from deepagents_redis.cli._demo import DemoContext, Section
from deepagents_redis.cli._exit import EXIT_OK

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    monkeypatch.delenv("DEEPAGENTS_REDIS_KEY_PREFIX", raising=False)


def _args(**values: object) -> argparse.Namespace:
    defaults: dict[str, object] = {"url": None, "prefix": None, "only": None}
    defaults.update(values)
    return argparse.Namespace(**defaults)


def _run_capturing(args: argparse.Namespace) -> tuple[int, list[str], dict[str, object]]:
    """Run the demo; return its status, its lines and the facts its sections recorded."""
    facts: dict[str, object] = {}
    original = _demo.run_sections

    def capture(ctx: DemoContext, *, only: list[str] | None = None) -> list[str]:
        try:
            return original(ctx, only=only)
        finally:
            facts.update(ctx.facts)

    lines: list[str] = []
    _demo.run_sections = capture  # type: ignore[assignment]
    try:
        status = _demo.run(args, out=lines.append)
    finally:
        _demo.run_sections = original  # type: ignore[assignment]
    return status, lines, facts


def _core_section() -> Section:
    # Tests of the demo machinery run the core section only; phase sections have their own tests.
    (core,) = [s for s in _demo.SECTIONS if s.name == "core"]
    return core


def _count_keys(url: str, prefix: str) -> int:
    # SCAN with a MATCH on our own test prefix (not user input), bounded by the test's keys.
    with redis.Redis.from_url(url) as raw:
        return sum(1 for _ in raw.scan_iter(match=f"{prefix}:*", count=1000))


def test_demo_core_round_against_url(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[str] = []
    facts: dict[str, object] = {}
    original = _demo.run_sections

    def capture(ctx: DemoContext, *, only: list[str] | None = None) -> list[str]:
        ran = original(ctx, only=only)
        facts.update(ctx.facts)
        return ran

    monkeypatch.setattr(_demo, "run_sections", capture)
    status = _demo.run(_args(url=redis_url, prefix=key_prefix, only=["core"]), out=lines.append)
    text = "\n".join(lines)
    assert status == EXIT_OK, text
    assert "(from --url)" in text
    assert "== health ==" in text
    assert "== core ==" in text
    assert facts["codec_round_trip"] is True
    assert facts["lua_reply"] == [facts["key"], "pong"]
    # Sent twice with one op id, applied once.
    assert facts["idempotent_counter"] == 5
    assert facts["breaker_states"] == ["CLOSED", "OPEN"]
    assert str(facts["key"]).startswith(f"{key_prefix}:v1:demo:{{")
    # The demo cleans up after itself.
    assert _count_keys(redis_url, key_prefix) == 0


# The whole demo starts worker and agent processes (each imports the stack): ~60 s on a
# loaded 2-core machine, past the suite's 120 s default when CI runs beside other work.
@pytest.mark.timeout(600)
def test_every_section_deletes_what_it_wrote(redis_url: str, key_prefix: str) -> None:
    # Before: 7 demo keys stayed after `demo --url` (LLM cache entries and its generation
    # counter, the fs version counter, op records), two of them without expiry.
    lines: list[str] = []
    status = _demo.run(_args(url=redis_url, prefix=key_prefix), out=lines.append)
    assert status == EXIT_OK, "\n".join(lines)
    assert "demo finished: core, cache, todos, fs, coord" in lines[-1]
    assert _count_keys(redis_url, key_prefix) == 0


# The whole demo starts worker and agent processes (each imports the stack): ~60 s on a
# loaded 2-core machine, past the suite's 120 s default when CI runs beside other work.
@pytest.mark.timeout(600)
def test_demo_on_the_embedded_default(capsys: pytest.CaptureFixture[str]) -> None:
    # The README's demo command: every section whose package is installed, end to end.
    assert main(["demo"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "(from embedded redis-server)" in out or "(from embedded fakeredis)" in out
    assert "demo finished: core" in out
    for section in _demo.SECTIONS:
        assert f"== {section.name} ==" in out


def test_demo_only_selects_sections(redis_url: str, key_prefix: str) -> None:
    lines: list[str] = []
    assert _demo.run(_args(url=redis_url, prefix=key_prefix, only=["core"]), out=lines.append) == 0
    assert "demo finished: core" in lines[-1]


def test_missing_phase_section_is_skipped_with_an_install_hint(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        _demo,
        "SECTIONS",
        [
            _core_section(),
            Section("ghost", "deepagents_redis.cli._demo_ghost", requires="deepagents_redis.ghost"),
        ],
    )
    lines: list[str] = []
    assert _demo.run(_args(url=redis_url, prefix=key_prefix), out=lines.append) == EXIT_OK
    text = "\n".join(lines)
    assert "skipped: deepagents_redis.ghost is not installed" in text
    assert "pip install 'deepagents-redis[ghost]'" in text


def test_a_failing_section_fails_the_demo(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    broken = types.ModuleType("deepagents_redis.cli._demo_broken")

    def run(ctx: DemoContext) -> None:
        raise RuntimeError("section exploded")

    broken.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, broken.__name__, broken)
    monkeypatch.setattr(_demo, "SECTIONS", [Section("broken", broken.__name__)])
    with pytest.raises(RuntimeError, match="section exploded"):
        _demo.run(_args(url=redis_url, prefix=key_prefix), out=lambda _line: None)


def test_server_without_lua_skips_script_parts_and_says_so(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fakeredis fallback (no redis-server binary) has no Lua; simulate its answer.
    monkeypatch.setattr(_demo, "server_runs_lua", lambda client: False)
    monkeypatch.setattr(
        _demo,
        "SECTIONS",
        [_core_section(), Section("scripted", "deepagents_redis.cli._demo_core", needs_lua=True)],
    )
    lines: list[str] = []
    assert _demo.run(_args(url=redis_url, prefix=key_prefix), out=lines.append) == EXIT_OK
    text = "\n".join(lines)
    assert "note: this server cannot run Lua scripts" in text
    assert "LuaScript, idempotent write: skipped" in text
    assert "Codec: ChatGeneration with a tool call" in text
    assert text.count("skipped: this server cannot run Lua scripts") == 1
    assert "demo finished: core" in text
    assert _count_keys(redis_url, key_prefix) == 0


def test_lua_probe_on_a_real_server(redis_client) -> None:
    assert _demo.server_runs_lua(redis_client) is True


def test_demo_coord_kills_a_worker_and_every_task_completes_once(
    redis_url: str, key_prefix: str
) -> None:
    status, lines, facts = _run_capturing(_args(url=redis_url, prefix=key_prefix, only=["coord"]))
    assert status == EXIT_OK, "\n".join(lines)
    coord = facts["coord"]
    assert isinstance(coord, dict)
    assert sorted(coord["attempts"]) == [1, 2]  # the killed worker's task ran again, once
    assert set(coord["completed"].values()) == {1}
    assert any(line.startswith("killed worker pid") for line in lines)
    assert sum("subagent.completed" in line for line in lines) == 2
    assert _count_keys(redis_url, key_prefix) == 0


def test_demo_handoff_resumes_a_killed_agent_in_another_process(
    redis_url: str, key_prefix: str
) -> None:
    args = _args(url=redis_url, prefix=key_prefix, sections=["handoff"])
    status, lines, facts = _run_capturing(args)
    assert status == EXIT_OK, "\n".join(lines)
    handoff = facts["handoff"]
    assert isinstance(handoff, dict)
    assert handoff["killed_returncode"] == -9  # SIGKILL, not a clean exit
    assert "s4-0" in handoff["done_before_kill"]  # the write of step 4 was done
    assert "s4-1" not in handoff["done_before_kill"]  # its pause was not
    assert handoff["same_history"] is True
    assert handoff["files"] == handoff["reference_files"]
    assert handoff["files"] == {"/notes.md": "# Notes\nfinal\n", "/review.md": "looks good\n"}
    assert handoff["todos"] == handoff["reference_todos"]
    assert [t["status"] for t in handoff["todos"]] == ["completed"] * 3  # type: ignore[index]
    # every tool call completed exactly once across both processes: nothing re-applied
    assert handoff["ledger"] == {
        call: 1 for call in ("s1-0", "s2-0", "s3-0", "s4-0", "s4-1", "s5-0", "s5-1")
    }
    assert _count_keys(redis_url, key_prefix) == 0


def test_demo_rejects_an_unknown_section(redis_url: str) -> None:
    assert main(["demo", "--url", redis_url, "nope"]) == 64
