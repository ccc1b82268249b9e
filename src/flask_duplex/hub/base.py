"""The hub interface and the local delivery every backend shares."""

from __future__ import annotations

import abc
import json
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..outbox import Outgoing

if TYPE_CHECKING:
    from ..connection import WebSocket

__all__ = ["Hub", "encode_message"]

Message = str | bytes


def encode_message(message: Any, dumps: Callable[[Any], str] = json.dumps) -> Message:
    """``str`` and bytes-like pass through; ``dict`` and ``list`` become JSON text.

    Raises:
        TypeError: Any other type.
    """
    if isinstance(message, str | bytes):
        return message
    if isinstance(message, bytearray | memoryview):
        return bytes(message)
    if isinstance(message, dict | list):
        return dumps(message)
    raise TypeError(f"broadcast takes str, bytes, dict or list, not {type(message).__name__}")


class Hub(abc.ABC):
    """Where connections register, join rooms, and receive broadcasts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: dict[str, WebSocket] = {}
        self._rooms: dict[str, set[WebSocket]] = {}

    # -- connections and rooms (called by the engine) -----------------------

    def add(self, ws: WebSocket) -> None:
        with self._lock:
            self._connections[ws.id] = ws

    def remove(self, ws: WebSocket) -> None:
        """Forget a connection that ended, in every room at once."""
        with self._lock:
            self._connections.pop(ws.id, None)
            for room in ws.rooms:
                members = self._rooms.get(room)
                if members is not None:
                    members.discard(ws)
                    if not members:
                        del self._rooms[room]

    def join(self, ws: WebSocket, room: str) -> None:
        with self._lock:
            if ws.id in self._connections:
                self._rooms.setdefault(room, set()).add(ws)

    def leave(self, ws: WebSocket, room: str) -> None:
        with self._lock:
            members = self._rooms.get(room)
            if members is not None:
                members.discard(ws)
                if not members:
                    del self._rooms[room]

    # -- what the app calls -------------------------------------------------

    @abc.abstractmethod
    def broadcast(self, message: Message, to: str | None, exclude: frozenset[str]) -> None:
        """Send to every connection in room ``to`` (``None``: all), except ``exclude`` ids."""

    @abc.abstractmethod
    def send_to(self, connection_id: str, message: Message) -> None:
        """Send to one connection, wherever it lives."""

    @abc.abstractmethod
    def members(self, room: str) -> set[str]:
        """The ids of the connections in ``room``."""

    # -- local delivery -----------------------------------------------------

    def deliver(self, message: Message, to: str | None, exclude: Iterable[str]) -> None:
        with self._lock:
            if to is None:
                targets = list(self._connections.values())
            else:
                targets = list(self._rooms.get(to, ()))
        skip = set(exclude)
        outgoing = Outgoing(message)
        for ws in targets:
            if ws.id not in skip:
                ws._send_nowait(outgoing)

    def deliver_to(self, connection_id: str, message: Message) -> bool:
        with self._lock:
            ws = self._connections.get(connection_id)
        if ws is None:
            return False
        ws._send_nowait(Outgoing(message))
        return True

    def local_connections(self) -> set[WebSocket]:
        with self._lock:
            return set(self._connections.values())

    def local_members(self, room: str) -> set[str]:
        with self._lock:
            return {ws.id for ws in self._rooms.get(room, ())}
