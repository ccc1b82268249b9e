"""The forms DUPLEX_MESSAGE_QUEUE takes, and the errors at start-up for those that cannot work."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask

from flask_duplex import BackendUnavailable, Duplex
from flask_duplex.hub import create_hub
from flask_duplex.hub.redis import RedisHub
from flask_duplex.hub.redis_topology import SentinelAddress, parse_sentinel_url
from tests.support.redis_server import RedisServer, free_cluster_port
from tests.support.servers import free_port


def test_sentinel_url_names_the_sentinels_and_the_master() -> None:
    """Several sentinels, the master's name; db 0 and no password by default."""
    address = parse_sentinel_url("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/mymaster")
    assert address == SentinelAddress(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380)), service="mymaster"
    )


def test_sentinel_url_with_a_password_a_db_and_tls() -> None:
    """``rediss+sentinel://:pw@.../name/3?ssl_ca_certs=``: TLS, the master's password, db 3."""
    address = parse_sentinel_url(
        "rediss+sentinel://:s%40cret@a:1,[::1]:2/main/3?ssl_ca_certs=/ca.pem&sentinel_password=x"
    )
    assert address.sentinels == (("a", 1), ("::1", 2))
    assert (address.service, address.db, address.password, address.tls) == (
        "main",
        3,
        "s@cret",
        True,
    )
    assert address.options == {"ssl_ca_certs": "/ca.pem", "sentinel_password": "x"}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://a:1,b:2", "must name the master"),
        ("redis+sentinel://a:1/m/x", "must be a number"),
        ("redis+sentinel://a/m", "needs a host and a port"),
        ("redis+sentinel://a:1/m/0/extra", "must name the master"),
        ("redis+sentinel://a:1/m?socket_timeout=3", "unknown option 'socket_timeout'"),
    ],
)
def test_a_malformed_sentinel_url_fails_at_start_up(url: str, says: str) -> None:
    """init_app raises ValueError showing the form to use."""
    app = Flask("sentinel_typo")
    app.config["DUPLEX_MESSAGE_QUEUE"] = url
    with pytest.raises(ValueError, match=says) as raised:
        Duplex(app)
    assert "redis+sentinel://" in str(raised.value)


def test_an_unknown_scheme_lists_the_forms_without_the_password() -> None:
    """A typo in the scheme fails init_app; the message lists every form and hides the URL."""
    app = Flask("scheme_typo")
    app.config["DUPLEX_MESSAGE_QUEUE"] = "redis-cluster://:hunter2@10.0.0.1:6379"
    with pytest.raises(ValueError, match="unsupported DUPLEX_MESSAGE_QUEUE") as raised:
        Duplex(app)
    message = str(raised.value)
    assert "hunter2" not in message
    for form in ("redis://", "rediss://", "redis+sentinel://", "redis+cluster://"):
        assert form in message


def test_a_plain_url_to_a_cluster_node_fails_at_start_up() -> None:
    """``redis://`` pointing at a node with cluster_enabled:1 names ``redis+cluster://`` instead."""
    with cluster_enabled_node() as url:
        app = Flask("plain_url_to_cluster")
        app.config["DUPLEX_MESSAGE_QUEUE"] = url
        with pytest.raises(ValueError, match="node of a Redis Cluster") as raised:
            Duplex(app)
        port = url.rsplit(":", 1)[1].split("/")[0]
        assert f"redis+cluster://127.0.0.1:{port}" in str(raised.value)


@contextmanager
def cluster_enabled_node() -> Iterator[str]:
    """A redis-server with cluster mode on (no slots: INFO is all the test asks of it)."""
    args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    with tempfile.TemporaryDirectory() as workdir:
        server = RedisServer(free_cluster_port(), workdir, args=args)
        try:
            server.start()
            yield server.url
        finally:
            server.stop()


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:{port}/0", "redis+cluster://127.0.0.1:{port}"],
    ids=["plain", "cluster"],
)
def test_an_unreachable_redis_at_start_up_does_not_fail_the_app(url: str) -> None:
    """Nothing listens: the hub is made at once, and calls raise BackendUnavailable."""
    started = time.monotonic()
    hub = create_hub(
        url.format(port=free_port()), channel="unreachable", presence_ttl=3, timeout=0.3
    )
    try:
        assert isinstance(hub, RedisHub)
        assert time.monotonic() - started < 2
        with pytest.raises(BackendUnavailable):
            hub.members("room")
    finally:
        hub.close()


def test_a_cluster_url_with_a_db_fails_at_start_up() -> None:
    """A Redis Cluster has db 0 only."""
    with pytest.raises(ValueError, match="only db 0"):
        create_hub("redis+cluster://127.0.0.1:7000/2", channel="c", presence_ttl=3)


def test_a_channel_with_a_brace_is_refused_for_a_cluster() -> None:
    """The hub makes the hash tags itself: a brace in the channel would split a room's keys."""
    with pytest.raises(ValueError, match="brace"):
        create_hub(f"redis+cluster://127.0.0.1:{free_port()}", channel="a{b}", presence_ttl=3)
