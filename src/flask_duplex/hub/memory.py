"""The in-process hub: rooms, presence, channels and leases for the connections of one process."""

from __future__ import annotations

import threading

from ..assembly import Message
from .base import Hub
from .bus import MemoryBus
from .history import HistoryPolicy, MemoryHistory, Position, Snapshot
from .leases import MemoryLeases

__all__ = ["MemoryHub"]


class MemoryHub(Hub):
    """Delivers in this process only; the default."""

    def __init__(self) -> None:
        super().__init__()
        self.bus = MemoryBus()
        self.leases = MemoryLeases()
        self.history = MemoryHistory()
        # Numbering and delivering a message of a room with history is one step.
        self._history_order = threading.Lock()

    def broadcast(self, message: Message, to: str | None, exclude: frozenset[str]) -> None:
        self.deliver(message, to, exclude)

    def broadcast_history(
        self, room: str, fragment: str, exclude: frozenset[str], policy: HistoryPolicy
    ) -> None:
        with self._history_order:
            epoch, offset, frame = self.history.append(room, fragment, policy)
            self.deliver_history(room, epoch, offset, frame, exclude)

    def read_history(self, room: str, since: Position | None, policy: HistoryPolicy) -> Snapshot:
        return self.history.read(room, since, policy)

    def send_to(self, connection_id: str, message: Message) -> None:
        self.deliver_to(connection_id, message)

    def members(self, room: str) -> set[str]:
        return self.local_room_members(room)

    def presence(self, room: str) -> dict[str, str]:
        return self.local_presence(room)
