"""TLS against a real redis-server (``tls-port``): what `rediss://` users run in production.

The deadline-aware connection classes (`_connections`) replace redis-py's own SSL classes,
so TLS is tested end to end here, not only as keyword arguments: large values (many TLS
records), pipelines, mutual TLS, and how a bad certificate or file is reported.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import redis
import redis.exceptions as rexc
from deepagents_redis.core import (
    ConfigurationError,
    IdempotentScript,
    RedisConnector,
    RedisSettings,
    arun_idempotent,
    create_async_client,
    create_client,
    redis_errors,
    run_idempotent,
)
from deepagents_redis.core.embedded import free_port

pytestmark = pytest.mark.integration

INCR = IdempotentScript("test_tls_incr", "return redis.call('INCR', keys[1])")


def _tls_server(factory: Any, pki: Any, *, mutual: bool) -> tuple[Any, str]:
    """A private server with a TLS port beside its plain one (the plugin probes the plain one).

    Returns:
        The server handle and its ``rediss://`` URL (by IP: the certificate lists 127.0.0.1).
    """
    tls_port = free_port()
    server = factory(
        config={
            "tls-port": str(tls_port),
            "tls-cert-file": str(pki.server_cert),
            "tls-key-file": str(pki.server_key),
            "tls-ca-cert-file": str(pki.ca),
            "tls-auth-clients": "yes" if mutual else "no",
        }
    )
    return server, f"rediss://127.0.0.1:{tls_port}/0"


def _accepted(server: Any) -> int:
    with redis.Redis.from_url(server.url) as admin:
        return int(admin.info("stats")["total_connections_received"])


@pytest.mark.parametrize("mutual", [False, True], ids=["server-cert", "mutual-tls"])
async def test_sync_and_async_clients_speak_tls(
    redis_server_factory: Any, pki: Any, mutual: bool
) -> None:
    _server, url = _tls_server(redis_server_factory, pki, mutual=mutual)
    files: dict[str, Any] = {"tls_ca_file": str(pki.ca)}
    if mutual:
        files |= {"tls_cert_file": str(pki.client_cert), "tls_key_file": str(pki.client_key)}
    settings = RedisSettings(url=url, cluster="auto", key_prefix="tls", **files)
    big = os.urandom(3_000_000)  # ~190 TLS records each way
    connector = RedisConnector(settings=settings)
    try:
        client = connector.client()
        assert connector.is_cluster is False  # auto-detection over TLS
        client.set("tls:big", big)
        assert client.get("tls:big") == big
        pipe = client.pipeline(transaction=False)
        for i in range(200):
            pipe.set(f"tls:p{i}", str(i) * 500)
        assert pipe.execute() == [True] * 200
        assert run_idempotent(client, INCR, op_key="{t}op", keys=["{t}n"]) == 1
        aclient = await connector.aclient()
        assert await aclient.get("tls:big") == big
        await aclient.set("tls:abig", big[::-1])
        assert await aclient.get("tls:abig") == big[::-1]
        assert await arun_idempotent(aclient, INCR, op_key="{t}aop", keys=["{t}n"]) == 2
    finally:
        await connector.aclose()


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_an_untrusted_certificate_is_a_configuration_error_and_not_retried(
    redis_server_factory: Any, pki: Any, use_async: bool
) -> None:
    """redis-py turns the failed certificate check into a plain ConnectionError: it was
    retried with backoff (3 handshakes for one GET) and reported as "Redis is unavailable",
    and an op-id write as OutcomeUnknownError after 4 attempts. It is an answer: one
    handshake, then `ConfigurationError` naming the TLS settings."""
    server, url = _tls_server(redis_server_factory, pki, mutual=False)
    settings = RedisSettings(url=url, cluster="off", retries=2, tls_ca_file=str(pki.other_ca))
    before = _accepted(server)
    if use_async:
        aclient = await create_async_client(settings)
        try:
            with pytest.raises(ConfigurationError, match=r"TLS certificate.*tls_ca_file"):
                async with redis_errors():
                    await aclient.get("k")
            after_get = _accepted(server)
            with pytest.raises(ConfigurationError, match="TLS certificate"):
                await arun_idempotent(aclient, INCR, op_key="{s}op", keys=["{s}k"])
        finally:
            await aclient.aclose()
    else:
        client = create_client(settings)
        try:
            with pytest.raises(rexc.ConnectionError) as raw:
                client.get("k")
            translated = pytest.raises(ConfigurationError, match=r"TLS certificate.*tls_ca_file")
            with translated, redis_errors():
                raise raw.value
            after_get = _accepted(server)
            with pytest.raises(ConfigurationError, match="TLS certificate"):
                run_idempotent(client, INCR, op_key="{s}op", keys=["{s}k"])
        finally:
            client.close()
    assert after_get - before == 1
    assert _accepted(server) - after_get == 1


async def test_cluster_auto_detection_names_the_certificate(
    redis_server_factory: Any, pki: Any
) -> None:
    # It said "could not auto-detect whether ... is a Redis Cluster; set cluster='on' or
    # 'off'", which sends the reader after the wrong setting.
    _server, url = _tls_server(redis_server_factory, pki, mutual=False)
    connector = RedisConnector(settings=RedisSettings(url=url, tls_ca_file=str(pki.other_ca)))
    try:
        with pytest.raises(ConfigurationError, match="TLS certificate"):
            connector.client()
    finally:
        connector.close()


def _bad_files(pki: Any, tmp: Any) -> list[tuple[dict[str, str], str]]:
    missing = str(tmp / "no-such-ca.pem")
    return [
        ({"tls_ca_file": missing}, "tls_ca_file"),
        ({"tls_ca_file": str(pki.server_key)}, "tls_ca_file"),  # a key, not a certificate
        ({"tls_ca_file": str(tmp)}, "tls_ca_file"),  # a directory
        (
            {"tls_cert_file": str(pki.client_cert), "tls_key_file": str(pki.server_key)},
            "tls_cert_file/tls_key_file",  # the key of another certificate
        ),
        ({"tls_cert_file": str(pki.client_cert), "tls_key_file": missing}, "tls_key_file"),
        ({"tls_key_file": str(pki.client_key)}, "tls_key_file is set without tls_cert_file"),
    ]


async def test_bad_tls_files_are_a_configuration_error_when_the_client_is_made(
    pki: Any, tmp_path: Any
) -> None:
    """They were read on each connect: "Error 2 connecting to host:port. No such file or
    directory." as RedisUnavailableError, retried, as if the server were down. No server is
    needed to see the error now (port 9 would refuse the connection)."""
    for files, named in _bad_files(pki, tmp_path):
        settings = RedisSettings(url="rediss://127.0.0.1:9/0", cluster="off", **files)
        with pytest.raises(ConfigurationError, match=named):
            create_client(settings)
        with pytest.raises(ConfigurationError, match=named):
            await create_async_client(settings)


@pytest.mark.cluster
async def test_a_tls_cluster_is_discovered_and_used_over_tls(pki: Any) -> None:
    """`tls-cluster yes`: the nodes announce their TLS ports, and every connection the
    cluster client opens to them is our deadline-aware TLS class."""
    from deepagents_redis.core._connections import DeadlineSSLConnection
    from deepagents_redis.testing import LocalCluster

    tls_ports: list[int] = []

    def node_config() -> dict[str, str]:
        tls_ports.append(free_port(cluster_bus=True))  # the bus is tls-port + 10000
        return {
            "tls-port": str(tls_ports[-1]),
            "tls-cert-file": str(pki.server_cert),
            "tls-key-file": str(pki.server_key),
            "tls-ca-cert-file": str(pki.ca),
            "tls-cluster": "yes",
            "tls-auth-clients": "optional",
        }

    with LocalCluster(node_config=node_config) as cluster:
        del cluster  # reached through its TLS ports only
        url = f"rediss://127.0.0.1:{tls_ports[0]}/0"
        connector = RedisConnector(settings=RedisSettings(url=url, tls_ca_file=str(pki.ca)))
        try:
            client = connector.client()
            assert connector.is_cluster is True  # auto-detected over TLS
            keys = [f"tls:{i}" for i in range(60)]  # spread over the three primaries
            for key in keys:
                client.set(key, key)
            assert [client.get(key) for key in keys] == [key.encode() for key in keys]
            nodes = client.get_nodes()
            assert sorted(node.port for node in nodes) == sorted(tls_ports)
            for node in nodes:
                pool = node.redis_connection.connection_pool
                assert issubclass(pool.connection_class, DeadlineSSLConnection)
            aclient = await connector.aclient()
            assert [await aclient.get(key) for key in keys[:10]] == [k.encode() for k in keys[:10]]
        finally:
            await connector.aclose()
        untrusted = RedisConnector(
            settings=RedisSettings(url=url, cluster="on", tls_ca_file=str(pki.other_ca))
        )
        try:
            with pytest.raises(ConfigurationError, match="TLS certificate"):
                untrusted.client()
            with pytest.raises(ConfigurationError, match="TLS certificate"):
                await untrusted.aclient()
        finally:
            await untrusted.aclose()
