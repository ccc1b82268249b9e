"""How the Redis hub reaches Redis: one server, a master watched by Sentinel, or a Cluster.

``DUPLEX_MESSAGE_QUEUE`` takes one of these URL forms:

- ``redis://[:password@]host:port[/db]``, ``rediss://`` (TLS), ``unix:///path``: one server.
- ``redis+sentinel://[:password@]host:port,host:port/master-name[/db]``,
  ``rediss+sentinel://`` (TLS): the master that the listed sentinels name, found again
  after a failover.
- ``redis+cluster://[:password@]host:port`` (any node), ``rediss+cluster://`` (TLS): a
  Redis Cluster, with sharded pub/sub.

A :class:`RedisLink` gives the hub what differs between them: the client for
commands, how to publish, and how to open the subscriber's connection. Each
link's calls give up after the hub's timeout, without retries: the hub reports
a failure at once (``BackendUnavailable``) and its subscriber does its own
reconnecting.

What cannot work fails at start-up with a ``ValueError`` naming the URL form
that does: an unknown scheme, a malformed Sentinel URL, and a plain
``redis://`` URL that points at a node of a Redis Cluster (asked with
``INFO cluster``; a Redis that does not answer at start-up is not asked again,
and the hub keeps trying to reach it).
"""

from __future__ import annotations

import inspect
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.cluster
import redis.sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException
from redis.retry import Retry

__all__ = [
    "ClusterLink",
    "RedisLink",
    "SentinelAddress",
    "connect",
    "parse_sentinel_url",
]

#: Connections one process's hub opens to one Redis server at most (its subscriber's included).
MAX_CONNECTIONS = 256

#: What a failed Redis call raises: redis-py's cluster client has errors of its own.
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)

_PLAIN = ("redis", "rediss", "unix")
_SENTINEL = ("redis+sentinel", "rediss+sentinel")
_CLUSTER = ("redis+cluster", "rediss+cluster")
#: Every scheme ``DUPLEX_MESSAGE_QUEUE`` accepts.
SCHEMES = _PLAIN + _SENTINEL + _CLUSTER

#: The URL forms, for error messages.
URL_FORMS = (
    "redis://host:6379/0, rediss://:password@host:6380/0, unix:///path/redis.sock, "
    "redis+sentinel://host1:26379,host2:26379/master-name[/db] (rediss+sentinel:// for TLS), "
    "redis+cluster://host:6379 (any node; rediss+cluster:// for TLS)"
)

# Query options a Sentinel URL may carry: TLS files, and the sentinels' own credentials.
_SENTINEL_OPTIONS = frozenset(
    {
        "ssl_ca_certs",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_cert_reqs",
        "sentinel_username",
        "sentinel_password",
    }
)


def scheme_of(url: str) -> str:
    """The URL's scheme, lower-cased (``""`` when it has none)."""
    scheme, found, _ = url.partition("://")
    return scheme.lower() if found else ""


def redacted(url: str) -> str:
    """``url`` without its password, for logs and error messages."""
    scheme, found, rest = url.partition("://")
    if not found:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        return url
    username, colon, _ = userinfo.partition(":")
    return f"{scheme}://{username}{':***' if colon else ''}@{hosts}{slash}{tail}"


@dataclass(frozen=True)
class SentinelAddress:
    """What a ``redis+sentinel://`` URL says.

    Attributes:
        sentinels: The sentinels' (host, port) pairs, in the URL's order.
        service: The master's name, as the sentinels monitor it.
        db: The database number on the master.
        username: The master's user, or ``None``.
        password: The master's password, or ``None``.
        tls: ``rediss+sentinel://``: TLS to the sentinels and to the master.
        options: The query options (TLS files, ``sentinel_password``).
    """

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    options: dict[str, str] = field(default_factory=dict)


def parse_sentinel_url(url: str) -> SentinelAddress:
    """Read ``redis+sentinel://[[user]:password@]host:port[,host:port...]/master-name[/db]``.

    Raises:
        ValueError: The URL is not of that form; the message shows the form.
    """
    form = "redis+sentinel://[:password@]host1:port1,host2:port2/master-name[/db]"
    scheme = scheme_of(url)
    if scheme not in _SENTINEL:
        raise ValueError(f"not a Sentinel URL: {redacted(url)!r}; expected {form}")
    rest = url.partition("://")[2]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = urllib.parse.unquote(user) or None
        password = urllib.parse.unquote(secret) if colon else None
    sentinels = tuple(_host_port(part, url, form) for part in hosts.split(",") if part)
    if not sentinels:
        raise ValueError(f"{redacted(url)!r} names no sentinel; expected {form}")
    parts = [urllib.parse.unquote(part) for part in path.split("/") if part]
    if not parts or len(parts) > 2:
        raise ValueError(
            f"{redacted(url)!r} must name the master (and optionally the db) after the "
            f"sentinels; expected {form}"
        )
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise ValueError(f"the db in {redacted(url)!r} must be a number; expected {form}")
        db = int(parts[1])
    options: dict[str, str] = {}
    for key, values in urllib.parse.parse_qs(query, keep_blank_values=True).items():
        if key not in _SENTINEL_OPTIONS:
            allowed = ", ".join(sorted(_SENTINEL_OPTIONS))
            raise ValueError(
                f"unknown option {key!r} in {form}; it takes {allowed} (the timeouts "
                "come from DUPLEX_REDIS_TIMEOUT)"
            )
        options[key] = values[-1]
    return SentinelAddress(
        sentinels=sentinels,
        service=parts[0],
        db=db,
        username=username,
        password=password,
        tls=scheme == "rediss+sentinel",
        options=options,
    )


def _host_port(part: str, url: str, form: str) -> tuple[str, int]:
    host, colon, port = part.rpartition(":")
    if not colon or not port.isdigit() or not host:
        raise ValueError(
            f"every sentinel in {redacted(url)!r} needs a host and a port; expected {form}"
        )
    return host.strip("[]"), int(port)


class RedisLink:
    """One Redis server, or the master of a Sentinel deployment: classic pub/sub.

    Attributes:
        sharded: Whether messages go by sharded pub/sub (never, here).
        where: The Redis, for logs and error messages (without a password).
    """

    sharded = False

    def __init__(self, client: redis.Redis, where: str, owns_pool: bool) -> None:
        self._client = client
        self.where = where
        self._owns_pool = owns_pool  # A client passed in is the app's to close.

    def client(self) -> Any:
        """The client for commands and scripts."""
        return self._client

    def publish(self, channel: str, data: str) -> None:
        self._client.publish(channel, data)

    def subscriber(self, channels: Sequence[str], reconnecting: bool) -> Any:
        """A pub/sub connection with SUBSCRIBE ``channels`` sent (its answers not read)."""
        pubsub = self._client.pubsub()
        pubsub.subscribe(*channels)
        return pubsub

    def close(self) -> None:
        self._client.close()
        if self._owns_pool:
            self._client.connection_pool.disconnect()


class ClusterLink:
    """A Redis Cluster: commands go to the node owning their keys, messages by sharded pub/sub.

    The cluster client is made on first use, so that a cluster unreachable at
    start-up is tried again by the next call rather than failing the app.

    Attributes:
        sharded: Whether messages go by sharded pub/sub (always, here).
        where: The cluster, for logs and error messages (without a password).
    """

    sharded = True

    def __init__(
        self, make: Callable[[], redis.cluster.RedisCluster], where: str, owns: bool
    ) -> None:
        self._make = make
        self._client: redis.cluster.RedisCluster | None = None
        self._lock = threading.Lock()
        self.where = where
        self._owns = owns

    @classmethod
    def of(cls, client: redis.cluster.RedisCluster) -> ClusterLink:
        """A link over a cluster client the app made (with its own timeouts and retries)."""
        link = cls(lambda: client, repr(client), owns=False)
        link._client = client
        return link

    def client(self) -> Any:
        """The cluster client for commands and scripts.

        Raises:
            redis.ConnectionError: No node answered within the timeout.
        """
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                try:
                    self._client = self._make()
                except REDIS_ERRORS as exc:
                    raise redis.ConnectionError(f"no node of {self.where} answered: {exc}") from exc
            return self._client

    def publish(self, channel: str, data: str) -> None:
        self.client().spublish(channel, data)

    def subscriber(self, channels: Sequence[str], reconnecting: bool) -> Any:
        """A connection to the node that owns the ``channels``' slot, with SSUBSCRIBE sent.

        The channels must share one hash slot (the hub's do: see its key names).

        A plain pub/sub connection to that one node rather than redis-py's
        cluster pub/sub, which moves subscriptions between nodes by itself:
        the hub must know when its subscription broke, to catch up after.
        After a failure the slot map is read again first, so that the
        subscriber follows a failover to the replica that took over.
        """
        cluster = self.client()
        if reconnecting:
            cluster.nodes_manager.initialize()
        node = cluster.get_node_from_key(channels[0])
        if node is None:
            raise redis.ConnectionError(f"no node of {self.where} serves channel {channels[0]!r}")
        pubsub = cluster.get_redis_connection(node).pubsub()
        pubsub.ssubscribe(*channels)
        return pubsub

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._owns:
            client.close()


def connect(message_queue: str | redis.Redis | redis.cluster.RedisCluster, timeout: float) -> Any:
    """The link for a URL or a client; every call it makes gives up after ``timeout`` seconds.

    Raises:
        ValueError: The URL's form is not supported, or a plain URL points at a
            node of a Redis Cluster; the message names the form to use.
    """
    if isinstance(message_queue, redis.cluster.RedisCluster):
        return ClusterLink.of(message_queue)
    if isinstance(message_queue, redis.Redis):
        return RedisLink(message_queue, repr(message_queue), owns_pool=False)
    url = message_queue
    scheme = scheme_of(url)
    if scheme in _SENTINEL:
        return RedisLink(_sentinel_master(parse_sentinel_url(url), timeout), redacted(url), True)
    if scheme in _CLUSTER:
        return _cluster_link(url, timeout)
    if scheme in _PLAIN:
        client = _plain_client(url, timeout)
        _refuse_cluster_node(client, url)
        return RedisLink(client, redacted(url), owns_pool=True)
    raise ValueError(f"unsupported Redis URL scheme in {redacted(url)!r}: use {URL_FORMS}")


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


def _plain_client(url: str, timeout: float) -> redis.Redis:
    # Its pool holds at most MAX_CONNECTIONS connections; a caller that finds
    # them all busy waits for one, up to the timeout too (redis-py's default
    # pool refuses the 101st caller at once).
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=_no_retry(),
    )
    return redis.Redis(connection_pool=pool)


def _refuse_cluster_node(client: redis.Redis, url: str) -> None:
    try:
        info = client.info("cluster")
    except redis.RedisError:
        return  # Unreachable (or INFO refused): the hub keeps trying, as with any Redis.
    finally:
        client.connection_pool.disconnect()  # No socket inherited by forked workers.
    if str(info.get("cluster_enabled", "0")) == "1":
        host = redacted(url).partition("://")[2]
        raise ValueError(
            f"{redacted(url)!r} is a node of a Redis Cluster, where a plain redis:// URL "
            f"cannot work (keys and channels live on different nodes): use "
            f"redis+cluster://{host.split('/')[0]} (or rediss+cluster:// for TLS)"
        )


class _BlockingSentinelPool(redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """Sentinel's pool (connections find the master anew) with a bounded wait for a free one."""

    def disconnect(self, inuse_connections: bool = True) -> None:
        # Sentinel's pool calls disconnect(inuse_connections=False) whenever the
        # master's address changes (the first lookup included); redis-py 5.0's
        # BlockingConnectionPool.disconnect takes no argument, and then drops
        # every connection, which a new master calls for anyway.
        if _DISCONNECT_CHOOSES:
            redis.BlockingConnectionPool.disconnect(self, inuse_connections=inuse_connections)
        else:
            redis.BlockingConnectionPool.disconnect(self)


_DISCONNECT_CHOOSES = (
    "inuse_connections" in inspect.signature(redis.BlockingConnectionPool.disconnect).parameters
)


def _sentinel_master(address: SentinelAddress, timeout: float) -> redis.Redis:
    options = dict(address.options)
    tls: dict[str, Any] = {}
    if address.tls:
        tls["ssl"] = True
        for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs"):
            if key in options:
                tls[key] = options.pop(key)
    timeouts: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": _no_retry(),
    }
    sentinel_kwargs: dict[str, Any] = {**timeouts, **tls}
    if "sentinel_username" in options:
        sentinel_kwargs["username"] = options["sentinel_username"]
    if "sentinel_password" in options:
        sentinel_kwargs["password"] = options["sentinel_password"]
    sentinel = redis.sentinel.Sentinel(list(address.sentinels), sentinel_kwargs=sentinel_kwargs)
    master: redis.Redis = sentinel.master_for(
        address.service,
        connection_pool_class=_BlockingSentinelPool,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,
        db=address.db,
        username=address.username,
        password=address.password,
        **timeouts,
        **tls,
    )
    return master


def _cluster_link(url: str, timeout: float) -> ClusterLink:
    plain = url.replace("+cluster", "", 1)
    parsed = urllib.parse.urlsplit(plain)
    if parsed.path not in ("", "/", "/0"):
        raise ValueError(
            f"{redacted(url)!r}: a Redis Cluster has only db 0; use "
            "redis+cluster://host:port (any node)"
        )
    if not parsed.hostname or not parsed.port:
        raise ValueError(
            f"{redacted(url)!r} needs a node's host and port: redis+cluster://host:port"
        )

    def make() -> redis.cluster.RedisCluster:
        return redis.cluster.RedisCluster.from_url(
            plain,
            retry=_no_retry(),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            connection_pool_class=redis.BlockingConnectionPool,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout,
        )

    return ClusterLink(make, redacted(url), owns=True)
