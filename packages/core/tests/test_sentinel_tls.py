"""Sentinel over TLS against real servers: ``rediss+sentinel://`` as TLS deployments run it.

A TLS deployment usually closes the plain-text ports of its Sentinels too (``tls-port``,
``port 0``): the client must then ask the Sentinels over TLS, not only the master. Each test
starts a master with a TLS port (the testing plugin's server, whose plain port it probes) and
its own Sentinel processes, monitoring the master over TLS (``tls-replication yes``).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from deepagents_redis.core import (
    ConfigurationError,
    RedisConnector,
    RedisSettings,
    RedisUnavailableError,
    acheck_health,
    check_health,
    create_async_client,
    create_client,
)
from deepagents_redis.core.embedded import find_redis_server, free_port

pytestmark = pytest.mark.integration

SERVICE = "mymaster"
# Bounded polls while a Sentinel starts and sees its master (no assertion on time).
POLLS = 400
POLL_SECONDS = 0.025


def _tls_conf(pki: Any, *, mutual: bool) -> dict[str, str]:
    return {
        "tls-cert-file": str(pki.server_cert),
        "tls-key-file": str(pki.server_key),
        "tls-ca-cert-file": str(pki.ca),
        "tls-auth-clients": "yes" if mutual else "no",
    }


def _ask_sentinel(port: int, pki: Any, *, tls: bool) -> Any:
    """``SENTINEL MASTER`` straight from a Sentinel, with redis-py's own client."""
    tls_kwargs: dict[str, Any] = (
        {
            "ssl": True,
            "ssl_ca_certs": str(pki.ca),
            "ssl_certfile": str(pki.client_cert),
            "ssl_keyfile": str(pki.client_key),
        }
        if tls
        else {}
    )
    with redis.Redis(port=port, socket_timeout=1, decode_responses=True, **tls_kwargs) as client:
        return client.sentinel_master(SERVICE)


@pytest.fixture
def sentinel_process(tmp_path: Path) -> Iterator[Callable[..., int]]:
    """Start Sentinels (one process each) from config lines; all are stopped after the test.

    ``start(lines, probe_tls=...)`` returns the port the Sentinel listens on, once it reports
    the master as up.
    """
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server binary")  # the plugin itself fails this under CI=true
    procs: list[subprocess.Popen[bytes]] = []

    def start(lines: list[str], *, pki: Any, tls: bool) -> int:
        port = free_port()
        home = tmp_path / f"sentinel-{port}"
        home.mkdir()
        listen = [f"tls-port {port}", "port 0"] if tls else [f"port {port}"]
        conf = home / "sentinel.conf"
        conf.write_text("\n".join(["bind 127.0.0.1", f"dir {home}", *listen, *lines]) + "\n")
        log = (home / "sentinel.log").open("ab")
        procs.append(
            subprocess.Popen(  # fixed argv, no shell
                [binary, str(conf), "--sentinel"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=home,
            )
        )
        log.close()
        for _ in range(POLLS):
            try:
                if _ask_sentinel(port, pki, tls=tls)["flags"] == "master":
                    return port
            except (redis.RedisError, OSError, KeyError):
                pass
            time.sleep(POLL_SECONDS)
        raise RuntimeError(f"sentinel {port} never saw its master: {home / 'sentinel.log'}")

    yield start
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tls_master(factory: Any, pki: Any, *, mutual: bool) -> int:
    tls_port = free_port()
    factory(config={"tls-port": str(tls_port), **_tls_conf(pki, mutual=mutual)})
    return tls_port


def _monitor(master_port: int, pki: Any, *, mutual: bool) -> list[str]:
    return [
        *(f"{name} {value}" for name, value in _tls_conf(pki, mutual=mutual).items()),
        "tls-replication yes",  # the Sentinel reaches the master on its TLS port
        f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 1",
    ]


def _settings(url: str, pki: Any, *, mutual: bool, **extra: Any) -> RedisSettings:
    files = {"tls_cert_file": str(pki.client_cert), "tls_key_file": str(pki.client_key)}
    return RedisSettings(
        url=url,
        tls_ca_file=str(pki.ca),
        deadline_seconds=10,
        **(files if mutual else {}),
        **extra,
    )


@pytest.mark.parametrize("mutual", [False, True], ids=["server-cert", "mutual-tls"])
async def test_tls_only_sentinels_are_asked_over_tls(
    redis_server_factory: Any, sentinel_process: Any, pki: Any, mutual: bool
) -> None:
    """Sentinels with ``port 0`` are reachable only over TLS: discovery and data both work.

    Before, the Sentinels were asked in plain text and every call failed "No master found".
    """
    master = _tls_master(redis_server_factory, pki, mutual=mutual)
    port = sentinel_process(_monitor(master, pki, mutual=mutual), pki=pki, tls=True)
    settings = _settings(f"rediss+sentinel://127.0.0.1:{port}/{SERVICE}/0", pki, mutual=mutual)

    client = create_client(settings)
    try:
        assert client.set("sentinel-tls", b"x" * 300_000)
        assert client.get("sentinel-tls") == b"x" * 300_000
        assert check_health(client).mode == "sentinel"
    finally:
        client.close()

    aclient = await create_async_client(settings)
    try:
        assert await aclient.set("sentinel-tls-async", b"y")
        assert await aclient.get("sentinel-tls-async") == b"y"
    finally:
        await aclient.aclose()


async def test_plain_text_sentinels_in_front_of_tls_data_nodes(
    redis_server_factory: Any, sentinel_process: Any, pki: Any
) -> None:
    """``sentinel_tls=False``: Sentinels on a plain port, the master over TLS (mixed)."""
    master = _tls_master(redis_server_factory, pki, mutual=False)
    port = sentinel_process(_monitor(master, pki, mutual=False), pki=pki, tls=False)
    url = f"rediss+sentinel://127.0.0.1:{port}/{SERVICE}/0"

    mixed = _settings(url, pki, mutual=False, sentinel_tls=False)
    async with RedisConnector(settings=mixed) as connector:  # closes its asyncio client too
        assert connector.client().set("mixed", "1")
        assert await (await connector.aclient()).get("mixed") == b"1"

    # The default follows the URL: TLS to a plain-text port is refused, with our typed error.
    with (
        RedisConnector(settings=_settings(url, pki, mutual=False)) as connector,
        pytest.raises((RedisUnavailableError, ConfigurationError)),
    ):
        check_health(connector.client())


async def test_an_untrusted_sentinel_certificate_is_a_configuration_error(
    redis_server_factory: Any, sentinel_process: Any, pki: Any
) -> None:
    """A Sentinel whose certificate the CA bundle does not trust: a configuration answer.

    redis-py reports a failed discovery as "No master found" with the causes as text only;
    it was retried as an outage and raised `RedisUnavailableError`.
    """
    master = _tls_master(redis_server_factory, pki, mutual=False)
    port = sentinel_process(_monitor(master, pki, mutual=False), pki=pki, tls=True)
    settings = RedisSettings(
        url=f"rediss+sentinel://127.0.0.1:{port}/{SERVICE}/0",
        tls_ca_file=str(pki.other_ca),
        deadline_seconds=10,
    )
    async with RedisConnector(settings=settings) as connector:
        with pytest.raises(ConfigurationError, match="certificate"):
            check_health(connector.client())
        with pytest.raises(ConfigurationError, match="certificate"):
            await acheck_health(await connector.aclient())


def test_the_setting_reads_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_SENTINEL_TLS", "false")
    assert RedisSettings().sentinel_tls is False
    monkeypatch.delenv("DEEPAGENTS_REDIS_SENTINEL_TLS")
    assert RedisSettings().sentinel_tls is None
    assert os.environ.get("DEEPAGENTS_REDIS_SENTINEL_TLS") is None
