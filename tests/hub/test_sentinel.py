"""The Redis hub on a master watched by Sentinel: a master, a replica, three sentinels.

The processes run for each test (tests/support/redis_sentinel.py); the master is
killed with SIGKILL and the sentinels promote the replica.
"""

from __future__ import annotations

import redis

from tests.support.hub_checks import check_failover, check_rooms_presence_and_history
from tests.support.redis_sentinel import (
    DB,
    DOWN_AFTER_MS,
    FAILOVER_TIMEOUT_MS,
    sentinel_deployment,
)

CHANNEL = "duplex-sentinel-tests"


def test_rooms_presence_channels_tasks_and_history_through_sentinel() -> None:
    """Everything the hub does works on the master the sentinels name."""
    with sentinel_deployment() as sentinels:
        check_rooms_presence_and_history(sentinels.url, CHANNEL)
        # The URL's password opened the master, and its database is where the keys went.
        url = sentinels.master.url
        for db, has_keys in ((0, False), (DB, True)):
            master = redis.Redis.from_url(url.replace("/0", f"/{db}"), socket_timeout=2)
            assert (master.dbsize() > 0) is has_keys
            master.close()


def test_the_hub_follows_the_master_after_a_failover() -> None:
    """SIGKILL the master: delivery resumes within 2 s of the promotion; presence is rebuilt."""
    with sentinel_deployment() as sentinels:
        old = sentinels.master.port

        def switched() -> bool:
            port = sentinels.master_port()
            return port is not None and port != old

        def flush() -> None:
            sentinels.replica.client().flushall()

        # The sentinels see the master down after DOWN_AFTER_MS, then elect one of them to
        # promote the replica: a few seconds, never more than the failover timeout on top.
        worst = (DOWN_AFTER_MS + FAILOVER_TIMEOUT_MS) / 1000 + 2
        failover = check_failover(
            sentinels.url, CHANNEL, sentinels.master.stop, switched, flush, deadline=worst + 10
        )
        print(f"sentinel failover: {failover}")
        assert failover.delivered <= failover.switched + 2
        assert failover.delivered <= worst
