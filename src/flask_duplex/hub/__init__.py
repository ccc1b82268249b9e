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
        message_queue: ``None`` (in-process), a ``redis://``, ``rediss://`` or
            ``unix://`` URL, or a ``redis.Redis`` client (for Sentinel:
            ``Sentinel(...).master_for(name)``).
        channel: The Redis channel and key prefix.
        presence_ttl: Seconds a crashed process's members stay listed.
        timeout: Seconds any Redis call may take.

    Raises:
        ValueError: ``message_queue`` is none of these.
    """
    if message_queue is None:
        return MemoryHub()
    if isinstance(message_queue, str) and message_queue.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        from .redis import RedisHub

        return RedisHub(message_queue, channel=channel, presence_ttl=presence_ttl, timeout=timeout)
    if type(message_queue).__module__.startswith("redis"):
        from .redis import RedisHub

        return RedisHub(message_queue, channel=channel, presence_ttl=presence_ttl, timeout=timeout)
    raise ValueError(
        f"unsupported message_queue {message_queue!r}: use a redis:// or rediss:// URL, a "
        "redis.Redis client, or None for in-process"
    )
