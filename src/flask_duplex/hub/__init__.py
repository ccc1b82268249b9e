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

from .base import Hub, Member, encode_message
from .memory import MemoryHub

__all__ = ["Hub", "Member", "MemoryHub", "create_hub", "encode_message"]


def create_hub(message_queue: str | None, *, channel: str, presence_ttl: float) -> Hub:
    """The hub for a ``DUPLEX_MESSAGE_QUEUE`` URL (``None``: in-process)."""
    if message_queue is None:
        return MemoryHub()
    if message_queue.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisHub

        return RedisHub(message_queue, channel=channel, presence_ttl=presence_ttl)
    raise ValueError(
        f"unsupported message_queue {message_queue!r}: use a redis:// URL, or None for in-process"
    )
