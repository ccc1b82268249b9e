"""The in-process hub: rooms and presence for the connections of one process."""

from __future__ import annotations

from .base import Hub, Message

__all__ = ["MemoryHub"]


class MemoryHub(Hub):
    """Delivers in this process only; the default."""

    def broadcast(self, message: Message, to: str | None, exclude: frozenset[str]) -> None:
        self.deliver(message, to, exclude)

    def send_to(self, connection_id: str, message: Message) -> None:
        self.deliver_to(connection_id, message)

    def members(self, room: str) -> set[str]:
        return self.local_room_members(room)
