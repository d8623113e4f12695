"""The deepagents-redis CLI against the plugin's private servers: health, migrate, exit codes."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
import redis
from deepagents_redis.cli import build_parser, main
from deepagents_redis.cli._exit import EXIT_OK, EXIT_PROBLEM, EXIT_UNREACHABLE, EXIT_USAGE

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI falls back to these; a developer's shell must not leak into the tests.
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    monkeypatch.delenv("DEEPAGENTS_REDIS_KEY_PREFIX", raising=False)


def _closed_port_url() -> str:
    # Bind then close: nothing listens there, so connecting is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("health", "migrate", "demo"):
        assert command in out


def test_usage_error_exits_64_not_2(capsys: pytest.CaptureFixture[str]) -> None:
    # argparse would exit 2, which is our "unreachable" status.
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == EXIT_USAGE
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == EXIT_USAGE
    capsys.readouterr()


def test_health_ok(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--url", redis_url]) == EXIT_OK
    out = capsys.readouterr().out
    assert "latency_ms" in out
    assert "durability" in out
    assert "maxmemory_policy" in out
    assert "health: ok" in out


def test_health_reads_url_from_env(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", redis_url)
    assert main(["health"]) == EXIT_OK
    assert "(from DEEPAGENTS_REDIS_URL)" in capsys.readouterr().out


def test_health_strict_fails_on_warnings(
    redis_server_factory, capsys: pytest.CaptureFixture[str]
) -> None:
    no_aof = redis_server_factory(aof=False)
    assert main(["health", "--url", no_aof.url]) == EXIT_OK
    assert main(["health", "--strict", "--url", no_aof.url]) == EXIT_PROBLEM
    out = capsys.readouterr().out
    assert "AOF is off" in out


def test_health_strict_passes_on_a_durable_server(
    redis_server_factory, capsys: pytest.CaptureFixture[str]
) -> None:
    durable = redis_server_factory(aof=True)
    assert main(["health", "--strict", "--url", durable.url]) == EXIT_OK
    out = capsys.readouterr().out
    assert "appendfsync always" in out
    assert "health: ok" in out


def test_health_unreachable_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--url", _closed_port_url()]) == EXIT_UNREACHABLE
    assert "unreachable" in capsys.readouterr().err


def test_health_without_url_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health"]) == EXIT_USAGE
    assert "DEEPAGENTS_REDIS_URL" in capsys.readouterr().err


@pytest.mark.parametrize("password", ["hunter2-secret", "Zx9/hunter2+b64==", "a#b?c hunter2"])
def test_health_never_prints_the_password(
    capsys: pytest.CaptureFixture[str], password: str
) -> None:
    # '/', '#', '?' and spaces used to end the redaction early (issue 8 defect 2).
    url = _closed_port_url().replace("redis://", f"redis://user:{password}@")
    assert main(["health", "--url", url]) == EXIT_UNREACHABLE
    captured = capsys.readouterr()
    assert "hunter2" not in captured.out + captured.err
    assert "target: redis://user:***@" in captured.out


def test_migrate_status_up_cycle(
    redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = ["--url", redis_url, "--prefix", key_prefix]
    assert main(["migrate", "status", *target]) == EXIT_PROBLEM
    assert re.search(r"^stored version +absent$", capsys.readouterr().out, re.M)

    assert main(["migrate", "up", *target]) == EXIT_OK
    assert "nothing else to migrate yet" in capsys.readouterr().out
    with redis.Redis.from_url(redis_url) as raw:
        assert raw.get(f"{key_prefix}:schema") == b"1"

    assert main(["migrate", "status", *target]) == EXIT_OK
    assert "up to date" in capsys.readouterr().out
    assert main(["migrate", "status", "--json", *target]) == EXIT_OK
    import json

    data = json.loads(capsys.readouterr().out)
    assert (data["stored"], data["code"], data["status"]) == (1, 1, "up-to-date")
    # Running `up` again is safe and changes nothing.
    assert main(["migrate", "up", *target]) == EXIT_OK
    assert "up to date" in capsys.readouterr().out
    with redis.Redis.from_url(redis_url) as raw:
        raw.delete(f"{key_prefix}:schema")


def test_migrate_up_writes_a_marker_deleted_under_it(
    redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    # `up` found the marker (SET NX refused) and read it back; deleted in between, the read
    # was None and `up` died on an assertion (a traceback, exit 1, nothing written).
    from deepagents_redis.cli import _migrate

    read = _migrate._read_marker
    vanished: list[int] = []

    def vanishing(client: Any, key: str) -> int | None:
        if not vanished:  # once: the next try writes it again
            vanished.append(1)
            client.delete(key)
        return read(client, key)

    monkeypatch.setattr(_migrate, "_read_marker", vanishing)
    target = ["--url", redis_url, "--prefix", key_prefix]
    with redis.Redis.from_url(redis_url) as raw:
        raw.set(f"{key_prefix}:schema", "1")
        assert main(["migrate", "up", *target]) == EXIT_OK
        assert "wrote marker" in capsys.readouterr().out
        assert raw.get(f"{key_prefix}:schema") == b"1"
        # Every try (a marker set again and deleted between each write and read): one line,
        # exit 1, nothing written.
        monkeypatch.setattr(_migrate, "_read_marker", lambda client, key: None)
        assert main(["migrate", "up", *target]) == EXIT_PROBLEM
        assert "keeps vanishing" in capsys.readouterr().out
        raw.delete(f"{key_prefix}:schema")


def test_migrate_refuses_data_from_a_newer_version(
    redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with redis.Redis.from_url(redis_url) as raw:
        raw.set(f"{key_prefix}:schema", "99")
        target = ["--url", redis_url, "--prefix", key_prefix]
        assert main(["migrate", "status", *target]) == EXIT_PROBLEM
        assert "newer version" in capsys.readouterr().out
        assert main(["migrate", "up", *target]) == EXIT_PROBLEM
        assert "refusing" in capsys.readouterr().out
        assert raw.get(f"{key_prefix}:schema") == b"99"
        raw.delete(f"{key_prefix}:schema")


def test_migrate_unreachable_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "status", "--url", _closed_port_url()]) == EXIT_UNREACHABLE
    capsys.readouterr()


def test_parser_builds_with_every_registered_module() -> None:
    parser = build_parser()
    args = parser.parse_args(["migrate", "up", "--url", "redis://x:1/0"])
    assert callable(args.handler)


def test_migrate_older_marker_without_a_step_is_refused(
    redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # v1 is the first schema, so an older marker has no step to run: say so, change nothing.
    with redis.Redis.from_url(redis_url) as raw:
        raw.set(f"{key_prefix}:schema", "0")
        target = ["--url", redis_url, "--prefix", key_prefix]
        assert main(["migrate", "status", *target]) == EXIT_PROBLEM
        assert "1 migration(s) pending" in capsys.readouterr().out
        assert main(["migrate", "up", *target]) == EXIT_PROBLEM
        assert "no migration step to v1" in capsys.readouterr().out
        assert raw.get(f"{key_prefix}:schema") == b"0"
        raw.delete(f"{key_prefix}:schema")


@pytest.mark.cluster
def test_health_and_migrate_on_the_cluster(
    redis_cluster, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["health", "--url", redis_cluster.url]) == EXIT_OK
    out = capsys.readouterr().out
    assert "cluster_slots_covered  16384" in out
    assert "cluster_primaries      3" in out
    target = ["--url", redis_cluster.url, "--prefix", key_prefix]
    assert main(["migrate", "up", *target]) == EXIT_OK
    assert main(["migrate", "status", *target]) == EXIT_OK
    assert "up to date" in capsys.readouterr().out
    with redis.RedisCluster.from_url(redis_cluster.url) as raw:
        assert raw.get(f"{key_prefix}:schema") == b"1"
        raw.delete(f"{key_prefix}:schema")


@pytest.mark.cluster
# The whole demo starts worker and agent processes (each imports the stack): ~60 s on a
# loaded 2-core machine, past the suite's 120 s default when CI runs beside other work.
@pytest.mark.timeout(600)
def test_demo_on_the_cluster(
    redis_cluster, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--url", redis_cluster.url, "--prefix", key_prefix]) == EXIT_OK
    out = capsys.readouterr().out
    assert "mode                   cluster" in out
    assert "counter = 5 (applied once)" in out


def test_version_lists_every_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("deepagents-redis ", "deepagents-redis-core ", "redis "):
        assert name in out


def test_health_json_is_one_object(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["health", "--json", "--url", redis_url]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "ok"
    assert data["report"]["ok"] is True
    assert data["target"].startswith("redis://")


def test_a_missing_phase_package_names_its_extra(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    # Before: `fs copy` without the extra raised ModuleNotFoundError with a traceback.
    monkeypatch.setitem(sys.modules, "deepagents_redis.fs", None)
    status = main(["-q", "fs", "copy", f"{redis_url}#a", f"{redis_url}#b"])
    assert status == EXIT_USAGE
    assert "pip install 'deepagents-redis[fs]'" in capsys.readouterr().err


def test_the_reference_page_is_generated_from_the_parser() -> None:
    import argparse
    import sys
    from pathlib import Path

    from deepagents_redis.cli import reference

    page = (Path(__file__).resolve().parents[3] / "docs" / "cli.md").read_text()

    # Every command and every option the parser has is on the page (argparse's layout
    # differs a little between Python versions, so the exact text is compared on the
    # version the page is generated with, 3.11, the project's floor).
    def walk(prog: str, parser: argparse.ArgumentParser) -> None:
        assert f"## `{prog}`" in page, prog
        for action in parser._actions:
            for option in action.option_strings:
                assert option in page, (prog, option)
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(f"{prog} {name}", child)

    walk("deepagents-redis", build_parser())
    if sys.version_info[:2] == (3, 11):
        # Regenerate with: uv run python -m deepagents_redis.cli.reference > docs/cli.md
        assert page == reference()


def test_health_judges_each_phase(redis_server_factory, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    # An evicting server: fine for the cache, a FAIL for todos and fs (no TTL on their data).
    lru = redis_server_factory(config={"maxmemory-policy": "allkeys-lru"})
    assert main(["health", "--url", lru.url, "--phase", "cache"]) == EXIT_OK
    assert re.search(r"^cache +OK +", capsys.readouterr().out, re.M)
    assert main(["health", "--url", lru.url, "--phase", "cache", "--phase", "todos"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^phase +verdict +reason$", out, re.M)
    assert re.search(r"^todos +FAIL +", out, re.M)
    assert "health: FAILED for todos" in out
    assert main(["health", "--json", "--url", lru.url]) == EXIT_PROBLEM
    data = json.loads(capsys.readouterr().out)
    assert data["phases"]["fs"]["verdict"] == "fail"
    assert data["phases"]["cache"]["verdict"] == "ok"


def test_health_serve_answers_probes(redis_url: str) -> None:
    import json
    import subprocess
    import sys
    import time
    import urllib.request

    port = int(_closed_port_url().rsplit(":", 1)[1].split("/")[0])
    proc = subprocess.Popen(  # stopped below, by its own PID
        [
            sys.executable,
            "-m",
            "deepagents_redis.cli",
            "health",
            "--url",
            redis_url,
            "--serve",
            f"127.0.0.1:{port}",
            "--phase",
            "cache",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = None
        for _ in range(200):  # bounded: the server starts within a few seconds
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    body = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.05)
        assert body is not None
        assert body["status"] == "ready"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_health_serve_needs_host_and_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--url", "redis://127.0.0.1:1/0", "--serve", "8080"]) == EXIT_USAGE
    assert "HOST:PORT" in capsys.readouterr().err


@pytest.mark.parametrize("marker", ["abc", "1.5", "-1", " 1", ""])
def test_migrate_a_marker_that_is_not_a_version_is_one_line_and_exit_1(
    redis_url: str, key_prefix: str, marker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: int(raw) raised ValueError, a traceback (and '-1' read as a version).
    with redis.Redis.from_url(redis_url) as raw:
        raw.set(f"{key_prefix}:schema", marker)
        target = ["--url", redis_url, "--prefix", key_prefix]
        for action in (["status"], ["status", "--json"], ["up"]):
            assert main(["migrate", *action, *target]) == EXIT_PROBLEM
            err = capsys.readouterr().err
            assert "not a version number" in err
            assert "Traceback" not in err
        assert raw.get(f"{key_prefix}:schema") == marker.encode()
        raw.delete(f"{key_prefix}:schema")


def test_health_serve_on_a_port_it_cannot_listen_on_is_one_line_and_exit_64(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: the 'serving ...' line, then a traceback (OSError: Address already in use,
    # OverflowError for 99999, gaierror for a host that does not resolve).
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        for where in (busy, "127.0.0.1:99999", "127.0.0.1:0", "no-such-host.invalid:8080"):
            assert main(["health", "--url", redis_url, "--serve", where]) == EXIT_USAGE
            out, err = capsys.readouterr()
            assert "serving" not in out
            assert err.startswith("error: --serve")
            assert len(err.strip().splitlines()) == 1
