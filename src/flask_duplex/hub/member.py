"""What the hub knows of a connection: the :class:`Member` interface."""

from __future__ import annotations

from typing import Protocol

from ..outbox import Outgoing

__all__ = ["Member"]


class Member(Protocol):
    """What the hub needs of a connection (a :class:`~flask_duplex.WebSocket`)."""

    @property
    def id(self) -> str:
        """A unique id, used by ``send_to`` and ``exclude``."""

    def send(self, message: str | bytes) -> None:
        """Send a message, waiting while the peer is slow to read."""

    def send_nowait(self, message: str | bytes | Outgoing) -> None:
        """Queue a message without waiting on the peer."""

    def close_nowait(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake without waiting for the peer."""
