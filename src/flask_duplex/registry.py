"""The registry of one app's connections in this process: how many are open, and closing them.

What is *open* here is a connection that was accepted and whose handler has
not returned yet (the WebSockets themselves are the hub's members, which
``serving.py`` adds and removes). The registry counts them, so that
:meth:`Connections.close_all` can wait until every handler is done; and it
knows whether the process is *draining* (shutting down), when new upgrade
requests get 503 instead of a connection. ``shutdown.py`` drives it through
the :class:`~flask_duplex.shutdown.Drainable` interface, from a signal handler
(``draining``, which is a plain attribute write) and from the process's exit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

__all__ = ["Closable", "Connections"]


class Closable(Protocol):
    """What the registry needs of a connection to close it (a :class:`~flask_duplex.WebSocket`)."""

    def close_nowait(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; return at once."""


class Connections:
    """One app's open connections in this process.

    Args:
        members: The app's connections in this process (the hub's members).
        stop_background: Stops what the app runs besides its connections
            (tasks, channels, the hub), once its connections are done.
        shutdown_timeout: Seconds a graceful shutdown waits for handlers.

    Attributes:
        draining: New connections are refused (503): the server is shutting down.
        shutdown_timeout: Seconds a graceful shutdown waits for handlers.
    """

    def __init__(
        self,
        members: Callable[[], Iterable[Closable]],
        stop_background: Callable[[], None],
        shutdown_timeout: float,
    ) -> None:
        self.draining = False
        self.shutdown_timeout = shutdown_timeout
        self._members = members
        self._stop_background = stop_background
        self._open = 0  # accepted connections whose handler has not returned
        self._lock = threading.Lock()
        self._idle: threading.Condition | None = None  # Made by the first close_all() that waits.

    @property
    def open_count(self) -> int:
        """Connections accepted whose handler has not returned yet."""
        return self._open

    def opened(self) -> None:
        """A connection was accepted."""
        with self._lock:
            self._open += 1

    def finished(self) -> None:
        """An accepted connection's handler returned and its socket went back to the server."""
        with self._lock:
            self._open -= 1
            idle = self._idle if not self._open else None
        if idle is not None:
            with idle:
                idle.notify_all()

    def close_all(self, code: int = 1001, reason: str = "", timeout: float | None = None) -> int:
        """Start closing every connection with ``code``; wait up to ``timeout`` for handlers.

        Returns:
            How many handlers are still running (0 once all returned).
        """
        for member in list(self._members()):
            member.close_nowait(code, reason)
        if timeout is None:
            return self._open
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._idle is None:
                self._idle = threading.Condition()
            idle = self._idle
        with idle:
            while self._open and (left := deadline - time.monotonic()) > 0:
                idle.wait(left)
            return self._open

    def stop_background(self) -> None:
        """Stop the app's background work in this process (tasks, channels, hub)."""
        self._stop_background()
