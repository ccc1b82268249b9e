"""Rooms, broadcast and presence, behind one interface with two backends.

``MemoryHub`` (the default) serves the connections of one process. ``RedisHub``
carries broadcasts and ``send_to`` between processes and machines over Redis
pub/sub, and keeps presence in Redis with an expiry each process refreshes.
Both deliver to local connections the same way: each message is queued on the
connection without waiting on its socket (``WebSocket.send_nowait``), so one
slow client never holds back the others. The hub knows a connection only as a
:class:`Member`: an id, and a way to queue a message or start a close.
"""

from __future__ import annotations

from typing import Any

from .base import Hub, Member, encode_message
from .memory import MemoryHub

__all__ = ["Hub", "Member", "MemoryHub", "create_hub", "encode_message"]


def create_hub(
    message_queue: Any, *, channel: str, presence_ttl: float, timeout: float = 0.5
) -> Hub:
    """The hub for ``DUPLEX_MESSAGE_QUEUE``.

    Args:
        message_queue: ``None`` (in-process); a ``redis://``, ``rediss://`` or
            ``unix://`` URL (one server); a ``redis+sentinel://`` URL (a master
            found through Sentinel) or a ``redis+cluster://`` URL (a Redis
            Cluster), with ``rediss+`` for TLS (the forms:
            :mod:`~flask_duplex.hub.redis_topology`); or a ``redis.Redis`` or
            ``redis.cluster.RedisCluster`` client.
        channel: The Redis channel and key prefix.
        presence_ttl: Seconds a crashed process's members stay listed.
        timeout: Seconds any Redis call may take.

    Raises:
        ValueError: ``message_queue`` is none of these, or a URL that cannot
            work (a plain URL that points at a node of a Redis Cluster, a
            malformed Sentinel URL); the message names the form to use.
    """
    if message_queue is None:
        return MemoryHub()
    if isinstance(message_queue, str):
        scheme = message_queue.partition("://")[0].lower() if "://" in message_queue else ""
        if scheme in _REDIS_SCHEMES:
            from .redis import RedisHub

            return RedisHub(
                message_queue, channel=channel, presence_ttl=presence_ttl, timeout=timeout
            )
        shown = f"{scheme}://..." if scheme else repr(message_queue)  # Never a password.
        raise ValueError(
            f"unsupported DUPLEX_MESSAGE_QUEUE {shown}: use None (in-process) or a URL: "
            "redis://host:6379/0, rediss://:password@host:6380/0, unix:///path/redis.sock, "
            "redis+sentinel://host1:26379,host2:26379/master-name[/db], "
            "redis+cluster://host:6379 (rediss+sentinel://, rediss+cluster:// for TLS)"
        )
    if type(message_queue).__module__.startswith("redis"):
        from .redis import RedisHub

        return RedisHub(message_queue, channel=channel, presence_ttl=presence_ttl, timeout=timeout)
    raise ValueError(
        f"unsupported message_queue {type(message_queue).__name__}: use a Redis URL, a "
        "redis.Redis or redis.cluster.RedisCluster client, or None for in-process"
    )


# The URL schemes of flask_duplex.hub.redis_topology, kept here so that an app
# without redis-py installed still gets the in-process hub.
_REDIS_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)
