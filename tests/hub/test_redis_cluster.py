"""The Redis hub on a Redis Cluster: sharded pub/sub, hash-tagged keys, and a failover.

One cluster of six nodes serves the module (tests/support/redis_cluster.py);
the failover test runs last, as it kills a master.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.cluster import RedisCluster

from tests.support.hub_checks import check_failover, check_rooms_presence_and_history, make_node
from tests.support.redis_cluster import NODE_TIMEOUT_MS, PASSWORD, Cluster, redis_cluster

CHANNEL = "duplex-cluster-tests"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with redis_cluster() as started:
        yield started


def test_rooms_presence_channels_tasks_and_history_on_a_cluster(cluster: Cluster) -> None:
    """Everything the hub does works with redis+cluster://, from any node's address."""
    check_rooms_presence_and_history(cluster.url, CHANNEL)


def test_a_cluster_client_passed_in_is_used_as_it_is(cluster: Cluster) -> None:
    """A redis.cluster.RedisCluster as DUPLEX_MESSAGE_QUEUE is used, and left open at close()."""
    client = RedisCluster(
        host="127.0.0.1", port=cluster.nodes[1].port, password=PASSWORD, socket_timeout=2
    )
    node = make_node(client, CHANNEL, "client_node")
    try:
        assert node.hub._clustered
        with node.duplex.test_client().connect("/room/passed") as conn:
            conn_id = conn.receive()
            node.broadcast("through the client", to="passed")
            assert conn.receive() == "through the client"
            assert node.members("passed") == {conn_id}
    finally:
        with node.app.app_context():
            node.duplex.close()
    assert client.ping()  # Not closed by the hub: it is the app's.
    client.close()


def test_a_room_s_keys_share_a_slot_and_rooms_spread_over_the_nodes(cluster: Cluster) -> None:
    """Presence keys carry the tag {channel:room}; history keys the channel's own, {channel}."""
    node = make_node(cluster.url, CHANNEL, "keys_node")
    hub = node.hub
    try:
        for room in ("a", "b}c", "{d}"):
            keys = [hub._key(room), hub._info_key(room), hub._tombstone(room, "x")]
            assert len({_slot(cluster, key) for key in keys}) == 1, keys
            history = hub._history_keys(room)
            assert {_slot(cluster, key) for key in history} == {_slot(cluster, CHANNEL)}
        owners = {cluster.owner(hub._key(f"room-{n}")) for n in range(30)}
        assert len(owners) == 3
    finally:
        with node.app.app_context():
            node.duplex.close()


def _slot(cluster: Cluster, key: str) -> int:
    client = cluster.client(cluster.alive()[0])
    try:
        return int(client.cluster("KEYSLOT", key))
    finally:
        client.close()


def test_a_failed_master_s_replica_takes_over_and_the_hub_follows(cluster: Cluster) -> None:
    """SIGKILL the master of the channel's shard: delivery resumes, presence is rebuilt."""
    old = cluster.owner(CHANNEL)
    assert old is not None
    victim = cluster.node(old)

    def switched() -> bool:
        port = cluster.owner(CHANNEL)
        return port is not None and port != old

    def flush() -> None:
        for master in cluster.masters():
            cluster.client(master).flushall()

    worst = 2 * NODE_TIMEOUT_MS / 1000 + 2  # Failure detection, then the replicas' election.
    failover = check_failover(cluster.url, CHANNEL, victim.stop, switched, flush, worst + 10)
    print(f"cluster failover: {failover}")
    assert failover.delivered <= failover.switched + 2
