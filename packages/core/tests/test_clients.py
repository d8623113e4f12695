import asyncio
import gc
import os
import socket
import threading
import time

import pytest
import redis
import redis.asyncio
from deepagents_redis.core import (
    ConfigurationError,
    RedisConnector,
    RedisSettings,
    RedisUnavailableError,
    check_health,
    create_async_client,
    create_client,
    parse_redis_url,
)
from deepagents_redis.core._alane import AsyncLaneRedis
from deepagents_redis.core._lane import LaneRedis

SECRET = "S3cr3t-Passw0rd"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("DEEPAGENTS_REDIS_"):
            monkeypatch.delenv(name)


# --------------------------------------------------------------------------- URL parsing
@pytest.mark.parametrize(
    ("url", "kind", "hosts", "db", "service", "tls"),
    [
        ("redis://h:6380/3", "tcp", (("h", 6380),), 3, None, False),
        ("redis://h", "tcp", (("h", 6379),), 0, None, False),
        ("rediss://h:6390/0", "tcp", (("h", 6390),), 0, None, True),
        ("redis://[::1]:7000", "tcp", (("::1", 7000),), 0, None, False),
        ("redis://h/0?db=5", "tcp", (("h", 6379),), 5, None, False),
        ("unix:///var/run/redis.sock?db=2", "unix", (), 2, None, False),
        (
            "redis+sentinel://s1:26379,s2:26380/mymaster/4",
            "sentinel",
            (("s1", 26379), ("s2", 26380)),
            4,
            "mymaster",
            False,
        ),
        ("rediss+sentinel://s1/mymaster", "sentinel", (("s1", 26379),), 0, "mymaster", True),
        ("redis+sentinel://s1:26379", "sentinel", (("s1", 26379),), 0, None, False),
    ],
)
def test_parse_redis_url(url, kind, hosts, db, service, tls):
    parsed = parse_redis_url(url)
    assert (parsed.kind, parsed.hosts, parsed.db, parsed.service, parsed.tls) == (
        kind,
        hosts,
        db,
        service,
        tls,
    )


def test_parse_credentials_and_hide_them():
    parsed = parse_redis_url(f"redis://bob:{SECRET}@h:1/0")
    assert (parsed.username, parsed.password) == ("bob", SECRET)
    assert SECRET not in repr(parsed)
    assert parse_redis_url(f"redis://{SECRET}@h").password == SECRET
    assert parse_redis_url(f"unix:///s.sock?password={SECRET}").password == SECRET


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"http://u:{SECRET}@h:1", "unknown scheme 'http'"),
        (f"u:{SECRET}@h:1", "expected scheme://"),
        (f"redis://u:{SECRET}@h:notaport/0", "invalid port"),
        (f"redis://u:{SECRET}@h:70000/0", "invalid port"),
        (f"redis://u:{SECRET}@:6379/0", "missing host"),
        (f"redis://u:{SECRET}@/0", "empty host"),
        (f"redis://u:{SECRET}@h:1/zero", "database must be"),
        (f"redis://u:{SECRET}@h:1/0/extra", "path must be"),
        (f"redis://u:{SECRET}@h:1/0?socket_timeout=9", "unsupported query option"),
        (f"redis://u:{SECRET}@h1:1,h2:2/0", "several hosts"),
        (f"unix://u:{SECRET}@", "without a socket path"),
        (f"redis+sentinel://u:{SECRET}@s1:26379/a/b/c", "sentinel path"),
    ],
)
def test_malformed_urls_name_the_problem_without_the_password(url, problem):
    with pytest.raises(ConfigurationError) as info:
        parse_redis_url(url)
    assert problem in str(info.value)
    assert SECRET not in str(info.value)
    # and the same through the factory and the connector
    with pytest.raises(ConfigurationError) as info2:
        create_client(url=url)
    assert SECRET not in str(info2.value)
    with pytest.raises(ConfigurationError):
        RedisConnector(url=url)


def test_sentinel_without_service_is_rejected():
    url = f"redis+sentinel://:{SECRET}@s1:26379"
    with pytest.raises(ConfigurationError, match="names no service") as info:
        create_client(url=url)
    assert SECRET not in str(info.value)
    # the service may come from settings instead (no I/O until a command runs)
    client = create_client(RedisSettings(url=url, sentinel_service="mymaster"))
    client.close()


def test_no_url_means_configuration_error_never_localhost():
    with pytest.raises(ConfigurationError, match="never assumes localhost"):
        create_client()
    with pytest.raises(ConfigurationError, match="never assumes localhost"):
        RedisConnector()


async def test_no_url_async():
    with pytest.raises(ConfigurationError):
        await create_async_client()


def test_cluster_on_rejects_unix_and_db():
    with pytest.raises(ConfigurationError, match="cluster='on'"):
        create_client(url="unix:///tmp/x.sock", cluster="on")
    with pytest.raises(ConfigurationError, match="only database 0"):
        create_client(url="redis://h:1/3", cluster="on")


# --------------------------------------------------------------------------- kwargs mapping
def _conn_kwargs(client):
    return client.connection_pool.connection_kwargs


def test_defaults_reach_the_connection_pool():
    settings = RedisSettings(url=f"redis://u:{SECRET}@h:7001/4", cluster="off", client_name="t")
    client = create_client(settings)
    try:
        kw = _conn_kwargs(client)
        assert (kw["host"], kw["port"], kw["db"]) == ("h", 7001, 4)
        assert (kw["username"], kw["password"]) == ("u", SECRET)
        assert kw["socket_timeout"] == 2.0
        assert kw["socket_connect_timeout"] == 2.0
        assert kw["health_check_interval"] == 30.0
        assert kw["protocol"] == 2
        assert kw["client_name"] == "t"
        assert client.connection_pool.max_connections == 50
        # Public API only: the number of retries (attempts are counted at a fault proxy in
        # test_deadlines.py, where the backoff's effect is observable).
        assert kw["retry"].get_retries() == 2
    finally:
        client.close()


def test_overrides_and_passthrough_kwargs():
    client = create_client(
        url="redis://h:1/0",
        cluster="off",
        socket_timeout=0.3,
        retries=0,
        decode_responses=True,
        password=SECRET,
    )
    try:
        kw = _conn_kwargs(client)
        assert kw["socket_timeout"] == 0.3
        assert kw["retry"].get_retries() == 0
        assert kw["decode_responses"] is True
        assert kw["password"] == SECRET  # settings.password wins over the URL
    finally:
        client.close()
    with pytest.raises(ConfigurationError):
        create_client(url="redis://h:1/0", cluster="off", socket_timeout=-1)


def test_tls_options_map_to_ssl_kwargs(pki):
    # Real files: the factory loads them once when it makes the client (test_tls_server.py).
    client = create_client(
        url="rediss://h:6390/0",
        cluster="off",
        tls_ca_file=str(pki.ca),
        tls_cert_file=str(pki.client_cert),
        tls_key_file=str(pki.client_key),
    )
    try:
        kw = _conn_kwargs(client)
        assert issubclass(client.connection_pool.connection_class, redis.SSLConnection)
        assert kw["ssl_ca_certs"] == str(pki.ca)
        assert kw["ssl_certfile"] == str(pki.client_cert)
        assert kw["ssl_keyfile"] == str(pki.client_key)
        assert kw["ssl_cert_reqs"] == "required"  # verification on unless asked otherwise
        assert kw["ssl_check_hostname"] is True
    finally:
        client.close()
    insecure = create_client(url="rediss://h:6390/0", cluster="off", tls_insecure_skip_verify=True)
    try:
        kw = _conn_kwargs(insecure)
        assert kw["ssl_cert_reqs"] == "none"
        assert kw["ssl_check_hostname"] is False
    finally:
        insecure.close()


async def test_async_kwargs_and_tls():
    client = await create_async_client(
        url=f"rediss://:{SECRET}@h:6390/1", cluster="off", protocol=3
    )
    try:
        assert isinstance(client, redis.asyncio.Redis)
        kw = client.connection_pool.connection_kwargs
        assert kw["protocol"] == 3
        assert kw["db"] == 1
        assert kw["password"] == SECRET
        assert kw["retry"].get_retries() == 2
        assert client.connection_pool.max_connections == 50
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- real servers
@pytest.mark.integration
def test_auto_detects_standalone(redis_url):
    client = create_client(url=redis_url)
    try:
        # A standalone redis.Redis (our subclass with the command lane), not a cluster client.
        assert type(client) is LaneRedis
        assert client.ping()
    finally:
        client.close()


@pytest.mark.integration
async def test_async_auto_detects_standalone(redis_url):
    client = await create_async_client(url=redis_url)
    try:
        assert type(client) is AsyncLaneRedis  # standalone (with the lane), not cluster
        assert await client.ping()
    finally:
        await client.aclose()


@pytest.mark.integration
def test_auto_detect_failure_is_unavailable(redis_server_factory):
    server = redis_server_factory()
    url = server.url.replace("redis://", f"redis://:{SECRET}@", 1)
    server.stop()
    with pytest.raises(RedisUnavailableError, match="cluster='on' or 'off'") as info:
        create_client(url=url, socket_connect_timeout=0.5, retries=0)
    assert SECRET not in str(info.value)
    # pinned mode creates the client without contacting the server
    client = create_client(url=url, cluster="off")
    client.close()


@pytest.mark.integration
def test_unix_socket(redis_server_factory, tmp_path):
    sock = tmp_path / "r.sock"
    redis_server_factory(config={"unixsocket": str(sock), "unixsocketperm": "700"})
    client = create_client(url=f"unix://{sock}?db=1")
    try:
        assert client.ping()
        assert client.connection_pool.connection_kwargs["path"] == str(sock)
        # The command lane serves unix sockets too, on the URL's database.
        assert client._dar_lane is not None
        client.set("unix-db-check", "1")
        db0 = create_client(url=f"unix://{sock}?db=0")
        try:
            assert db0.get("unix-db-check") is None
        finally:
            db0.close()
        assert client.get("unix-db-check") == b"1"
    finally:
        client.close()


@pytest.mark.integration
def test_wrong_password_is_configuration_error(redis_server_factory):
    server = redis_server_factory()
    admin = redis.Redis.from_url(server.url)
    admin.config_set("requirepass", "right-one")
    admin.close()
    url = server.url.replace("redis://", f"redis://:{SECRET}@", 1)
    client = create_client(url=url, cluster="off", retries=0)
    try:
        from deepagents_redis.core import redis_errors

        with pytest.raises(ConfigurationError) as info, redis_errors():
            client.ping()
        assert SECRET not in str(info.value)
    finally:
        client.close()
    # auto-detection reports the credentials problem, not an outage
    with pytest.raises(ConfigurationError, match="credentials") as info2:
        create_client(url=url, retries=0)
    assert SECRET not in str(info2.value)


@pytest.mark.cluster
def test_cluster_auto_on_off(redis_cluster):
    auto = create_client(url=redis_cluster.url)
    on = create_client(url=redis_cluster.url, cluster="on")
    off = create_client(url=redis_cluster.url, cluster="off")
    try:
        assert isinstance(auto, redis.RedisCluster)
        assert isinstance(on, redis.RedisCluster)
        assert type(off) is LaneRedis
        assert auto.ping()
        # keys in many slots work through the auto-detected cluster client
        for i in range(20):
            auto.set(f"core-a:test:{i}", i)
        assert [int(auto.get(f"core-a:test:{i}")) for i in range(20)] == list(range(20))
        auto.delete(*[f"core-a:test:{i}" for i in range(20)])
    finally:
        for c in (auto, on, off):
            c.close()


@pytest.mark.cluster
async def test_async_cluster_auto(redis_cluster):
    client = await create_async_client(url=redis_cluster.url)
    try:
        assert isinstance(client, redis.asyncio.RedisCluster)
        assert await client.ping()
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- connector
def _accepted(observer) -> int:
    # Connections the server has accepted so far: what "no I/O" means, seen from the server.
    return int(observer.info("stats")["total_connections_received"])


def _gone(observer, client_id: int) -> bool:
    # The server notices a closed socket on its next event-loop turn: poll, bounded.
    for _ in range(100):
        if all(int(c["id"]) != client_id for c in observer.client_list()):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.integration
def test_connector_creates_lazily_and_closes_what_it_created(redis_settings, redis_client):
    before = _accepted(redis_client)
    connector = RedisConnector(settings=redis_settings)
    assert _accepted(redis_client) == before  # no I/O at construction
    client = connector.client()
    assert connector.client() is client
    assert client.ping()
    assert connector.is_cluster is False
    assert connector.settings is redis_settings
    client_id = client.client_id()
    connector.close()
    assert _gone(redis_client, client_id)


def test_connector_never_closes_a_client_it_was_given(redis_url):
    given = redis.Redis.from_url(redis_url)
    try:
        with RedisConnector(client=given) as connector:
            assert connector.client() is given
            assert connector.is_cluster is False
        assert given.ping()  # still open
        with pytest.raises(ConfigurationError, match="no URL"):
            asyncio.run(RedisConnector(client=given).aclient())
    finally:
        given.close()


def test_connector_reads_the_env_url(monkeypatch, redis_url):
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", redis_url)
    monkeypatch.setenv("DEEPAGENTS_REDIS_KEY_PREFIX", "envpfx")
    with RedisConnector() as connector:
        assert connector.settings.key_prefix == "envpfx"
        assert connector.client().ping()
    assert SECRET not in repr(RedisConnector(url=f"redis://:{SECRET}@h:1/0"))


def test_connector_url_overrides_settings(redis_url, redis_client):
    before = _accepted(redis_client)
    settings = RedisSettings(url="redis://elsewhere:1/0", key_prefix="kp", cluster="off")
    connector = RedisConnector(url=redis_url, settings=settings)
    assert connector.settings.url == redis_url
    assert connector.settings.key_prefix == "kp"
    assert connector.is_cluster is False  # pinned: known without I/O
    assert _accepted(redis_client) == before


def test_connector_keyspace_uses_the_prefix(redis_settings):
    connector = RedisConnector(settings=redis_settings)
    ks = connector.keyspace
    assert ks is connector.keyspace
    assert ks.key("kind", "scope").startswith(redis_settings.key_prefix + ":")


@pytest.mark.integration
async def test_connector_async_paths(redis_settings, redis_client):
    connector = RedisConnector(settings=redis_settings)
    before = _accepted(redis_client)
    client = await connector.aclient()  # detects without blocking the loop
    assert isinstance(client, redis.asyncio.Redis)
    assert await connector.aclient() is client
    assert await client.ping()
    client_id = await client.client_id()
    # Only the asyncio client connected (the sync client was never needed): the connection
    # that detected the mode is the one the client keeps.
    assert _accepted(redis_client) - before == 1
    await connector.aclose()
    assert _gone(redis_client, client_id)


@pytest.mark.integration
async def test_connector_async_client_is_reused_in_its_loop(redis_settings):
    async with RedisConnector(settings=redis_settings) as connector:
        client = await connector.aclient()
        assert await client.ping()
        assert await connector.aclient() is client


@pytest.mark.integration
def test_connector_new_loop_gets_a_new_async_client(redis_settings):
    connector = RedisConnector(settings=redis_settings.with_overrides(cluster="off"))

    async def use():
        client = await connector.aclient()
        await client.ping()
        return client

    loop1, loop2 = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        first = loop1.run_until_complete(use())
        second = loop2.run_until_complete(use())  # asyncio clients are loop-bound
        assert first is not second
        assert loop2.run_until_complete(use()) is second
        loop1.run_until_complete(first.aclose())
        loop2.run_until_complete(connector.aclose())
    finally:
        loop1.close()
        loop2.close()


@pytest.mark.integration
async def test_connector_given_async_client_is_not_closed(async_redis_client):
    async with RedisConnector(async_client=async_redis_client) as connector:
        assert await connector.aclient() is async_redis_client
    assert await async_redis_client.ping()


@pytest.mark.cluster
async def test_connector_on_cluster(cluster_settings):
    async with RedisConnector(settings=cluster_settings) as connector:
        assert connector.is_cluster is True
        assert isinstance(connector.client(), redis.RedisCluster)
        aclient = await connector.aclient()  # mode known: no second probe
        assert isinstance(aclient, redis.asyncio.RedisCluster)
        assert await aclient.ping()


@pytest.mark.parametrize("cluster", ["on", "auto"])
async def test_a_fresh_async_cluster_client_takes_concurrent_first_commands(
    redis_cluster, key_prefix, cluster
):
    """redis-py's asyncio RedisCluster, used by many tasks at once before it learned its
    slots, failed one of them with AttributeError ('NoneType' ... 'writelines'); the
    connector and create_async_client hand out clients whose topology is known."""
    for _ in range(3):
        settings = RedisSettings(url=redis_cluster.url, key_prefix=key_prefix, cluster=cluster)
        async with RedisConnector(settings=settings) as connector:
            client = await connector.aclient()
            replies = await asyncio.gather(*(client.get(f"{{t{i}}}k") for i in range(16)))
            assert replies == [None] * 16
        direct = await create_async_client(settings)
        try:
            await asyncio.gather(*(direct.get(f"{{t{i}}}k") for i in range(16)))
        finally:
            await direct.aclose()


# --------------------------------------------------------------------------- sentinel
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sentinel_url(redis_sentinel_factory):
    # One master, one Sentinel (quorum 1): the testing plugin's topology.
    return redis_sentinel_factory(replicas=0, sentinels=1, quorum=1).url


@pytest.mark.integration
def test_sentinel_client_and_health(sentinel_url):
    client = create_client(url=sentinel_url)
    try:
        assert client.set("core-a:sentinel", b"1")
        assert client.get("core-a:sentinel") == b"1"
        report = check_health(client)
        assert report.mode == "sentinel"
        assert "failover" in report.durability
        client.delete("core-a:sentinel")
    finally:
        client.close()


@pytest.mark.integration
async def test_async_sentinel_client(sentinel_url):
    client = await create_async_client(url=sentinel_url)
    try:
        assert await client.ping()
    finally:
        await client.aclose()


@pytest.mark.integration
def test_cluster_hint_is_known_only_without_io(redis_settings, redis_client):
    auto = redis_settings.with_overrides(cluster="auto")
    connector = RedisConnector(settings=auto)
    before = _accepted(redis_client)
    assert connector.cluster_hint is None  # would need a round trip to know
    assert _accepted(redis_client) == before
    connector.client().ping()
    assert connector.cluster_hint is False
    connector.close()
    assert RedisConnector(settings=auto.with_overrides(cluster="on")).cluster_hint is True


# ----------------------------------------------------------------- close, seen from the servers
def _ours_on(ports: list[int], name: str) -> int:
    """Connections named `name` on the servers at `ports` (a fresh observer each time)."""
    total = 0
    for port in ports:
        with redis.Redis(port=port) as observer:
            total += sum(1 for c in observer.client_list() if c.get("name") == name)
    return total


def _clients_on(port: int) -> int:
    # Sentinels do not see our client name (their connections use sentinel_kwargs): count
    # every connection but the observer's own.
    with redis.Redis(port=port) as observer:
        return len(observer.client_list()) - 1


def _settle(count, want: int) -> int:
    # The server notices a closed socket on its next event-loop turn: poll, bounded.
    for _ in range(100):
        got = count()
        if got == want:
            return got
        time.sleep(0.02)
    return count()


def _topology(request, kind: str) -> tuple[str, list[int], list[int]]:
    """(url, data-server ports, Sentinel ports) of a topology of `kind`."""
    if kind == "standalone":
        url = request.getfixturevalue("redis_url")
        return url, [parse_redis_url(url).hosts[0][1]], []
    if kind == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        probe = create_client(url=cluster.url, cluster="on")  # ours: its close() closes
        try:
            ports = [n.port for n in probe.get_primaries()]
        finally:
            probe.close()
        return cluster.url, ports, []
    topo = request.getfixturevalue("redis_sentinel_factory")(replicas=0, sentinels=1, quorum=1)
    return topo.url, [topo.master.port], list(topo.sentinel_ports)


def _keys_for_every_slot_owner() -> list[str]:
    return [f"core-closeall:{i}" for i in range(40)]


@pytest.mark.integration
@pytest.mark.parametrize(
    "kind", ["standalone", pytest.param("cluster", marks=pytest.mark.cluster), "sentinel"]
)
def test_a_closed_connector_leaves_no_connection_open(request, kind):
    url, ports, sentinels = _topology(request, kind)
    name = f"closeall-{kind}-{os.getpid()}-{time.monotonic_ns()}"
    sentinel_before = [_clients_on(p) for p in sentinels]
    connector = RedisConnector(settings=RedisSettings(url=url, client_name=name))
    client = connector.client()

    def work() -> None:
        for key in _keys_for_every_slot_owner():
            client.set(key, b"1")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    client.delete(*_keys_for_every_slot_owner())
    assert _ours_on(ports, name) >= 1
    connector.close()  # `client` stays referenced: only close() can close its sockets
    assert _settle(lambda: _ours_on(ports, name), 0) == 0
    for port, before in zip(sentinels, sentinel_before, strict=True):
        assert _settle(lambda p=port: _clients_on(p), before) == before


@pytest.mark.integration
@pytest.mark.parametrize(
    "kind", ["standalone", pytest.param("cluster", marks=pytest.mark.cluster), "sentinel"]
)
async def test_a_closed_async_connector_leaves_no_connection_open(request, kind):
    url, ports, sentinels = _topology(request, kind)
    name = f"acloseall-{kind}-{os.getpid()}-{time.monotonic_ns()}"
    sentinel_before = [_clients_on(p) for p in sentinels]
    connector = RedisConnector(settings=RedisSettings(url=url, client_name=name))
    client = await connector.aclient()

    async def work() -> None:
        for key in _keys_for_every_slot_owner():
            await client.set(key, b"1")

    await asyncio.gather(*(work() for _ in range(4)))
    await client.delete(*_keys_for_every_slot_owner())
    assert _ours_on(ports, name) >= 1
    await connector.aclose()  # `client` stays referenced, as above
    assert _settle(lambda: _ours_on(ports, name), 0) == 0
    for port, before in zip(sentinels, sentinel_before, strict=True):
        assert _settle(lambda p=port: _clients_on(p), before) == before


async def _turns_until(done, turns: int = 300) -> bool:
    # Lets the loop run (closing transports) between looks: bounded in count.
    for _ in range(turns):
        if done():
            return True
        await asyncio.sleep(0.01)
    return done()


@pytest.mark.integration
@pytest.mark.parametrize("interruption", ["abandoned", "cancelled", "task cancelled"])
async def test_a_sentinel_client_close_left_midway_awaits_nothing_more(
    redis_sentinel_factory, interruption
):
    """A Sentinel master client's close interrupted at its first await: its coroutine closed
    (what the garbage collector or a loop's end does to an abandoned one) or cancelled. It
    awaited the Sentinels' close in a `finally` and so "ignored GeneratorExit" (an unraisable
    RuntimeError, CI on Python 3.12); now it closes the rest without awaiting, and no
    connection stays open on the master or the Sentinel."""
    topo = redis_sentinel_factory(replicas=0, sentinels=1, quorum=1)
    name = f"midway-{interruption.replace(' ', '-')}-{os.getpid()}-{time.monotonic_ns()}"
    sentinel_before = [_clients_on(p) for p in topo.sentinel_ports]
    client = await create_async_client(url=topo.url, client_name=name)
    await asyncio.gather(*(client.ping() for _ in range(3)))  # a few master connections
    sentinel_clients = client._dar_sentinel.sentinels
    assert _ours_on([topo.master.port], name) >= 1
    assert any(
        _clients_on(p) > b for p, b in zip(topo.sentinel_ports, sentinel_before, strict=True)
    )

    if interruption == "task cancelled":
        # Cancelled after its first step, before the tasks closing the master's sockets ran:
        # those never run, so the master's sockets must be closed without them.
        task = asyncio.create_task(client.aclose())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        closing = client.aclose()
        closing.send(None)  # runs to its first suspension: the master's sockets closing
        if interruption == "abandoned":
            closing.close()  # raised RuntimeError("coroutine ignored GeneratorExit")
        else:
            with pytest.raises(asyncio.CancelledError):  # awaited the Sentinels' close
                closing.throw(asyncio.CancelledError())
    # the Sentinel clients were closed without awaiting, before the interruption went on
    for sentinel_client in sentinel_clients:
        pool = sentinel_client.connection_pool
        assert not any(
            c.is_connected for c in [*pool._available_connections, *pool._in_use_connections]
        )
    assert client._dar_sentinel is None

    def all_closed() -> bool:
        sentinels = [_clients_on(p) for p in topo.sentinel_ports]
        return _ours_on([topo.master.port], name) == 0 and sentinels == sentinel_before

    assert await _turns_until(all_closed)


@pytest.mark.integration
async def test_a_sentinel_client_close_cancelled_while_closing_the_sentinels_closes_them(
    redis_sentinel_factory, monkeypatch
):
    """Cancelled in its last step, the Sentinels' own close: the master's close had already
    taken the Sentinel object off the client, so a second aclose() could not close them, and
    their sockets were left to the garbage collector. Now they are closed without waiting."""
    topo = redis_sentinel_factory(replicas=0, sentinels=1, quorum=1)
    client = await create_async_client(url=topo.url, client_name=f"lastcancel-{os.getpid()}")
    await client.ping()
    sentinel = client._dar_sentinel
    sentinel_clients = sentinel.sentinels
    assert any(
        c.is_connected
        for sc in sentinel_clients
        for c in [*sc.connection_pool._available_connections]
    )
    entered = asyncio.Event()

    async def hangs() -> None:  # the Sentinels' close, held until cancelled
        entered.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(sentinel, "aclose", hangs)
    task = asyncio.create_task(client.aclose())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client._dar_sentinel is None
    for sentinel_client in sentinel_clients:
        pool = sentinel_client.connection_pool
        assert not any(
            c.is_connected for c in [*pool._available_connections, *pool._in_use_connections]
        )


@pytest.mark.integration
def test_the_async_client_closes_with_its_loop(redis_url):
    # asyncio.run ends by closing async generators inside the loop: the connector's asyncio
    # client closes then, while its loop can still close its sockets. Before, the sockets
    # outlived the loop, and a later aclose() raised "Event loop is closed".
    name = f"loopclose-{os.getpid()}-{time.monotonic_ns()}"
    port = parse_redis_url(redis_url).hosts[0][1]
    connector = RedisConnector(settings=RedisSettings(url=redis_url, client_name=name))

    async def use() -> None:
        client = await connector.aclient()
        await asyncio.gather(*(client.ping() for _ in range(3)))
        assert _ours_on([port], name) >= 1

    asyncio.run(use())
    assert _settle(lambda: _ours_on([port], name), 0) == 0
    asyncio.run(use())  # a new loop gets a new client, closed the same way
    assert _settle(lambda: _ours_on([port], name), 0) == 0
    asyncio.run(connector.aclose())  # nothing left to close, and no error

    async def use_then_close() -> None:
        await use()
        await connector.aclose()  # closed in its own loop: the loop's shutdown has nothing

    asyncio.run(use_then_close())
    assert _settle(lambda: _ours_on([port], name), 0) == 0


@pytest.mark.integration
# The dropped client's transports warn when collected (they close their sockets then): a loop
# closed by hand, without shutdown_asyncgens, gives nothing a chance to close them earlier.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_aclose_after_its_loop_closed_without_shutdown_is_no_error(redis_url):
    # A loop closed by hand (no shutdown_asyncgens) leaves the client behind; closing the
    # connector later, in another loop, drops it instead of raising "Event loop is closed".
    connector = RedisConnector(url=redis_url)

    async def use() -> None:
        await (await connector.aclient()).ping()

    loop = asyncio.new_event_loop()
    loop.run_until_complete(use())
    loop.close()
    asyncio.run(connector.aclose())
    assert connector._async is None
    del loop
    gc.collect()  # the dropped client's warnings land here, under this test's filter


@pytest.mark.integration
def test_aclose_closes_a_client_of_a_loop_running_in_another_thread(redis_url):
    name = f"threadloop-{os.getpid()}-{time.monotonic_ns()}"
    port = parse_redis_url(redis_url).hosts[0][1]
    connector = RedisConnector(settings=RedisSettings(url=redis_url, client_name=name))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    closes: list[int] = []

    async def use() -> None:
        client = await connector.aclient()
        await client.ping()
        aclose = client.aclose

        async def counted() -> None:
            closes.append(1)
            await aclose()

        client.aclose = counted  # type: ignore[method-assign]

    try:
        asyncio.run_coroutine_threadsafe(use(), loop).result(timeout=10)
        assert _ours_on([port], name) == 1
        asyncio.run(connector.aclose())  # another loop: the close runs on the client's own
        assert _settle(lambda: _ours_on([port], name), 0) == 0
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    # Closed once: the close took that loop's closer with it, so its shutdown had nothing left
    assert closes == [1]


@pytest.mark.parametrize("cluster", ["on", "auto"])
async def test_concurrent_first_uses_build_one_async_cluster_client(
    redis_cluster, key_prefix, cluster, monkeypatch
):
    """A fan-out's first requests all asked `aclient()` while the first client was still
    learning its slots: each task built, initialized and then closed a cluster client of its
    own (24 clients for 24 tasks), and a loser's close timing out under load ("Timed out
    closing connection after 2.0") failed that task's operation. One client is built."""
    import deepagents_redis.core._clients as clients_module
    import deepagents_redis.core._connector as connector_module

    built: list[object] = []
    for module, name in ((connector_module, "_build_async"), (clients_module, "_build_async")):
        original = getattr(module, name)

        def counting(*args, _original=original, **kwargs):
            client = _original(*args, **kwargs)
            if isinstance(client, redis.asyncio.RedisCluster):  # not auto's probe
                built.append(client)
            return client

        monkeypatch.setattr(module, name, counting)
    settings = RedisSettings(url=redis_cluster.url, key_prefix=key_prefix, cluster=cluster)
    async with RedisConnector(settings=settings) as connector:
        clients = await asyncio.gather(*(connector.aclient() for _ in range(24)))
        assert all(client is clients[0] for client in clients)
        assert await clients[0].ping()
    assert len(built) == 1
