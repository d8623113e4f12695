import pytest
import redis
from deepagents_redis.core import (
    ConfigurationError,
    HealthReport,
    RedisUnavailableError,
    acheck_health,
    check_health,
    create_async_client,
    create_client,
)
from deepagents_redis.core._health import _build_report, _NodeFacts


def _facts(aof=0, fsync="everysec", policy="noeviction", **server):
    info = {
        "redis_version": "7.0.15",
        "redis_mode": "standalone",
        "aof_enabled": aof,
        "maxmemory_policy": policy,
        **server,
    }
    return _NodeFacts(info=info, appendfsync=fsync)


def _report(nodes, mode="standalone", cluster_info=None):
    if isinstance(cluster_info, dict):  # one node's view
        cluster_info = [cluster_info]
    return _build_report(
        latency_ms=0.1, nodes=nodes, client_mode=mode, cluster_info=cluster_info, primaries=None
    )


# ------------------------------------------------------------------- derivation (pure)
@pytest.mark.parametrize(
    ("aof", "fsync", "phrase"),
    [
        (0, "everysec", "do NOT survive a server crash"),
        (1, "always", "survive a server crash and a power loss"),
        (1, "everysec", "a power loss can lose about the last second"),
        (1, "no", "up to ~30 s"),
        (1, None, "survival of a power loss is unknown"),
    ],
)
def test_durability_statement(aof, fsync, phrase):
    report = _report([_facts(aof=aof, fsync=fsync)])
    assert phrase in report.durability
    assert "failover" not in report.durability  # standalone has no failover
    assert report.aof_enabled is bool(aof)
    assert report.appendfsync == fsync


def test_failover_caveat_for_replicated_modes():
    for mode in ("sentinel", "cluster"):
        report = _report([_facts(aof=1, fsync="always")], mode=mode)
        assert "failover can still lose" in report.durability


@pytest.mark.parametrize(
    ("policy", "warns"),
    [
        ("noeviction", False),
        ("volatile-lru", False),
        ("volatile-ttl", False),
        ("allkeys-lru", True),
        ("allkeys-random", True),
        ("allkeys-lfu", True),
    ],
)
def test_eviction_policy_warning(policy, warns):
    report = _report([_facts(aof=1, fsync="always", policy=policy)])
    assert report.maxmemory_policy == policy
    assert any("can evict any key" in w for w in report.warnings) is warns


def test_hidden_info_means_unknown_not_guessed():
    report = _report([_NodeFacts(info=None, appendfsync=None)])
    assert report.aof_enabled is None
    assert report.appendfsync is None
    assert report.maxmemory_policy is None
    assert report.server_version is None
    assert report.durability.startswith("Unknown")
    assert report.ok is True  # the server answered PING


def test_valkey_is_named():
    report = _report([_facts(server_name="valkey", valkey_version="8.0.2")])
    assert (report.server_name, report.server_version) == ("valkey", "8.0.2")


@pytest.mark.parametrize(
    ("server", "mode"),
    [
        ({"redis_mode": "cluster"}, "cluster"),
        ({"redis_mode": "standalone"}, "standalone"),
        # Valkey 8's INFO says server_mode and has no redis_mode (read off valkey-server 8.0.1)
        ({"redis_mode": None, "server_name": "valkey", "server_mode": "cluster"}, "cluster"),
        ({"redis_mode": None, "server_name": "valkey", "server_mode": "standalone"}, "standalone"),
    ],
)
def test_cluster_node_is_seen_on_redis_and_valkey(server, mode):
    facts = _facts(**server)
    assert facts.info is not None
    info = {k: v for k, v in facts.info.items() if v is not None}
    report = _report([_NodeFacts(info=info, appendfsync="everysec")])
    assert report.mode == mode


def test_mixed_primaries_take_the_weakest():
    report = _report(
        [_facts(aof=1, fsync="always"), _facts(aof=0, fsync="everysec")], mode="cluster"
    )
    assert report.aof_enabled is False
    assert report.appendfsync == "everysec"
    assert any("some primaries" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("fsyncs", "weakest"),
    [
        (["always", "everysec", "always"], "everysec"),
        (["everysec", "no"], "no"),
        (["always", None], None),
        (["no", None, "always"], "no"),
        (["always", "always"], "always"),
    ],
)
def test_mixed_fsync_policies_report_the_weakest(fsyncs, weakest):
    """Primaries on "always" and "everysec" were reported as appendfsync None ("unknown"):
    the report hid that a power loss can lose the last second of one shard's writes."""
    report = _report([_facts(aof=1, fsync=f) for f in fsyncs], mode="cluster")
    assert report.appendfsync == weakest
    assert any("disagree on appendfsync" in w for w in report.warnings) is (len(set(fsyncs)) > 1)
    if weakest == "everysec":
        assert "about the last second" in report.durability


@pytest.mark.parametrize("order", [1, -1])
def test_mixed_versions_report_the_oldest(order):
    """The version came from the first primary only: a cluster with one primary left on an
    old Redis (a rolling upgrade half done) reported the new one and no warning."""
    versions = ["7.2.4", "6.0.9", "7.0.15"][::order]
    report = _report([_facts(redis_version=v) for v in versions], mode="cluster")
    assert report.server_version == "6.0.9"
    assert any("Redis 6.0.9 is older than 6.2" in w for w in report.warnings)
    assert any("different server versions" in w for w in report.warnings)
    same = _report([_facts(), _facts()], mode="cluster")
    assert same.server_version == "7.0.15"
    assert not any("version" in w for w in same.warnings)


def test_mixed_eviction_policies_report_the_weakest():
    """One primary on allkeys-lru among noeviction ones was reported as policy None
    ("unknown"), which the eviction guard and the phase verdicts let pass: that shard's
    todos and files could be evicted with eviction_check="refuse"."""
    from deepagents_redis.core import EvictionGuard, phase_verdicts

    report = _report(
        [_facts(policy="noeviction"), _facts(policy="allkeys-lru"), _facts()], mode="cluster"
    )
    assert report.maxmemory_policy == "allkeys-lru"
    assert any("disagree on maxmemory-policy" in w for w in report.warnings)
    assert any("can evict" in w for w in report.warnings)
    with pytest.raises(ConfigurationError):
        EvictionGuard("todo plans", "refuse").judge(report)
    assert phase_verdicts(report, ["todos"])[0].verdict == "fail"
    mild = _report([_facts(policy="noeviction"), _facts(policy="volatile-lru")], mode="cluster")
    assert mild.maxmemory_policy == "volatile-lru"
    assert _report([_facts(), _facts()], mode="cluster").maxmemory_policy == "noeviction"


def test_one_primary_whose_cluster_view_fails_fails_the_check():
    """CLUSTER INFO was read on the first primary only: a primary cut off from the majority
    (cluster_state:fail, refusing its shard's commands) behind a healthy first one was ok."""
    full = {"cluster_state": "ok", "cluster_slots_ok": 16384}
    views = [full, {"cluster_state": "fail", "cluster_slots_ok": 12000}, full]
    report = _report([_facts(), _facts(), _facts()], mode="cluster", cluster_info=views)
    assert report.ok is False
    assert report.cluster_state == "fail"
    assert report.cluster_slots_covered == 12000
    assert any("disagree on cluster_state" in w for w in report.warnings)
    hidden_one = _report([_facts(), _facts()], mode="cluster", cluster_info=[full, None])
    assert (hidden_one.ok, hidden_one.cluster_state) == (True, "ok")


def test_cluster_coverage_gaps_fail_the_check():
    report = _report(
        [_facts()],
        mode="cluster",
        cluster_info={"cluster_state": "fail", "cluster_slots_ok": 10000},
    )
    assert report.ok is False
    assert report.cluster_slots_covered == 10000
    assert any("10000 of 16384" in w for w in report.warnings)


@pytest.mark.parametrize("mode", ["standalone", "sentinel"])
def test_a_replica_is_not_healthy(mode):
    """A URL on a replica (the old primary after a failover) answers PING and INFO, and every
    write fails with READONLY: the check said ok with no warning."""
    report = _report([_facts(role="slave")], mode=mode)
    assert report.ok is False
    assert any("replica" in w and "READONLY" in w for w in report.warnings)
    assert _report([_facts(role="master")], mode=mode).ok is True


@pytest.mark.integration
def test_a_real_replica_is_not_healthy(redis_server_factory):
    primary, replica = redis_server_factory(), redis_server_factory()
    client = create_client(url=replica.url, cluster="off")
    try:
        client.replicaof("127.0.0.1", primary.port)
        report = check_health(client)
        assert report.ok is False
        assert any("replica" in w for w in report.warnings)
        client.replicaof("NO", "ONE")
        assert check_health(client).ok is True
    finally:
        client.close()


def test_old_version_warns():
    report = _report([_facts(redis_version="6.0.9")])
    assert any("older than 6.2" in w for w in report.warnings)


def test_table_helpers():
    report = _report([_facts(policy="allkeys-lru")])
    rows = dict(report.to_rows())
    assert rows["ok"] == "True"
    assert rows["cluster_state"] == "-"
    assert "allkeys-lru" in rows["warnings"]
    table = report.to_table()
    assert table.splitlines()[0].startswith("ok")
    assert report.to_dict()["warnings"] == list(report.warnings)


# ------------------------------------------------------------------- real servers
@pytest.mark.integration
def test_default_private_server(redis_client, redis_server_name):
    report = check_health(redis_client)
    assert isinstance(report, HealthReport)
    assert report.ok
    assert report.latency_ms > 0
    assert report.server_name == redis_server_name
    assert report.server_version
    assert report.server_version[0].isdigit()
    assert report.mode == "standalone"
    assert report.cluster_state is None
    assert report.aof_enabled is False
    assert report.appendfsync in {"always", "everysec", "no"}
    assert report.maxmemory_policy == "noeviction"
    assert "do NOT survive" in report.durability
    assert any("AOF is off" in w for w in report.warnings)


@pytest.mark.integration
async def test_async_matches_sync(redis_client, async_redis_client):
    sync_report = check_health(redis_client)
    async_report = await acheck_health(async_redis_client)
    assert async_report.ok
    for name in (
        "server_version",
        "mode",
        "aof_enabled",
        "appendfsync",
        "maxmemory_policy",
        "durability",
        "warnings",
    ):
        assert getattr(async_report, name) == getattr(sync_report, name)


@pytest.mark.integration
def test_aof_always_and_eviction(redis_server_factory):
    server = redis_server_factory(aof=True, config={"maxmemory-policy": "allkeys-lru"})
    client = create_client(url=server.url)
    try:
        report = check_health(client)
    finally:
        client.close()
    assert report.aof_enabled is True
    assert report.appendfsync == "always"
    assert "power loss" in report.durability
    assert "do NOT" not in report.durability
    assert any("allkeys-lru" in w for w in report.warnings)


@pytest.mark.integration
async def test_acl_hiding_config_and_info_reports_unknown(redis_server_factory):
    server = redis_server_factory()
    admin = redis.Redis.from_url(server.url)
    try:
        admin.acl_setuser(
            "limited",
            enabled=True,
            passwords=["+pw"],
            keys=["*"],
            commands=["+@all", "-config", "-info"],
        )
    finally:
        admin.close()
    url = server.url.replace("redis://", "redis://limited:pw@", 1)
    client = create_client(url=url, cluster="off")
    try:
        report = check_health(client)
    finally:
        client.close()
    assert report.ok
    assert (report.aof_enabled, report.appendfsync, report.maxmemory_policy) == (None, None, None)
    assert report.durability.startswith("Unknown")
    aclient = await create_async_client(url=url, cluster="off")
    try:
        areport = await acheck_health(aclient)
    finally:
        await aclient.aclose()
    assert areport.aof_enabled is None


@pytest.mark.integration
def test_unreachable_server_raises(redis_server_factory):
    server = redis_server_factory()
    url = server.url
    server.stop()
    client = create_client(url=url, cluster="off", retries=0, socket_connect_timeout=0.5)
    try:
        with pytest.raises(RedisUnavailableError):
            check_health(client)
    finally:
        client.close()


@pytest.mark.cluster
def test_cluster_health(cluster_client):
    report = check_health(cluster_client)
    assert report.ok
    assert report.mode == "cluster"
    assert report.cluster_state == "ok"
    assert report.cluster_slots_covered == 16384
    assert report.cluster_primaries == 3
    assert report.aof_enabled is not None
    assert "failover" in report.durability


def _cluster_info_targets(client, monkeypatch):
    """Record the node each CLUSTER INFO call goes to."""
    targets = []
    execute = client.execute_command

    def spy(*args, **options):
        if args and args[0] == "CLUSTER INFO":
            targets.append(options.get("target_nodes"))
        return execute(*args, **options)

    monkeypatch.setattr(client, "execute_command", spy)
    return targets


@pytest.mark.cluster
def test_cluster_health_reads_every_primarys_view(cluster_client, monkeypatch):
    targets = _cluster_info_targets(cluster_client, monkeypatch)
    assert check_health(cluster_client).cluster_state == "ok"
    assert {t.name for t in targets} == {p.name for p in cluster_client.get_primaries()}


@pytest.mark.cluster
async def test_async_cluster_health_reads_every_primarys_view(async_cluster_client, monkeypatch):
    targets = _cluster_info_targets(async_cluster_client, monkeypatch)
    assert (await acheck_health(async_cluster_client)).cluster_state == "ok"
    assert {t.name for t in targets} == {p.name for p in async_cluster_client.get_primaries()}


@pytest.mark.cluster
async def test_async_cluster_health(async_cluster_client):
    report = await acheck_health(async_cluster_client)
    assert report.ok
    assert report.mode == "cluster"
    assert report.cluster_slots_covered == 16384
    assert report.cluster_primaries == 3


@pytest.mark.cluster
def test_plain_client_on_a_cluster_node_reports_cluster(redis_cluster):
    client = create_client(url=redis_cluster.url, cluster="off")
    try:
        report = check_health(client)
    finally:
        client.close()
    assert report.mode == "cluster"
    assert report.cluster_state == "ok"
