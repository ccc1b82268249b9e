"""What :meth:`WebSocket.ping` returns: a wait for one pong that cannot outlive its connection."""

from __future__ import annotations

import threading

from .errors import ConnectionClosed

__all__ = ["Pong"]


class Pong:
    """Set when the pong for one ping arrives, or failed when the connection ends first.

    ``wait()`` behaves like :meth:`threading.Event.wait`, except that it
    raises :class:`ConnectionClosed` once the connection ended without the
    pong, instead of waiting out its timeout for a pong that cannot come.
    """

    __slots__ = ("_error", "_event")

    def __init__(self) -> None:
        # Made at call time, so that it is the cooperative Event under gevent.
        self._event = threading.Event()
        self._error: ConnectionClosed | None = None

    def is_set(self) -> bool:
        """Whether the pong arrived."""
        return self._event.is_set() and self._error is None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the pong; True if it came, False if ``timeout`` passed first.

        Raises:
            ConnectionClosed: The connection ended before the pong came.
        """
        self._event.wait(timeout)
        if self._error is not None:
            raise self._error
        return self._event.is_set()

    def set(self) -> None:
        """The pong arrived."""
        self._event.set()

    def fail(self, error: ConnectionClosed) -> None:
        """The connection ended without the pong; wake every waiter."""
        if not self._event.is_set():
            self._error = error
            self._event.set()
