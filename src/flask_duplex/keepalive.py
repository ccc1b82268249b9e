"""Keepalive: a ping every ``ping_interval`` seconds, and a deadline for its pong.

It runs on the reactor thread, whatever the handler is doing. A pong that does
not come within ``ping_timeout`` seconds fails the connection with 1011 and
drops it: the peer, or the network path to it, is gone.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from .errors import ConnectionClosed
from .reactor import Reactor, Timer

if TYPE_CHECKING:
    from .connection import WebSocket

__all__ = ["Keepalive"]


class Keepalive:
    """Keepalive pings for one connection, from the first ping to :meth:`cancel`."""

    __slots__ = ("_interval", "_pong", "_reactor", "_timeout", "_timer", "_ws")

    def __init__(
        self, ws: WebSocket, interval: float, timeout: float | None, reactor: Reactor
    ) -> None:
        self._ws = ws
        self._interval = interval
        self._timeout = timeout
        self._reactor = reactor
        self._pong: threading.Event | None = None
        self._timer: Timer = reactor.call_later(interval, self._ping)

    def cancel(self) -> None:
        self._timer.cancel()

    def _ping(self) -> None:
        try:
            self._pong = self._ws._queue_ping(os.urandom(4))
        except ConnectionClosed:
            return
        self._ws._flush(block=False)
        if self._timeout is None:
            self._timer = self._reactor.call_later(self._interval, self._ping)
        else:
            self._timer = self._reactor.call_later(self._timeout, self._check_pong)

    def _check_pong(self) -> None:
        if self._ws.closed:
            return
        if self._pong is not None and not self._pong.is_set():
            self._ws._fail(1011, "keepalive ping timeout")
            return
        delay = max(0.0, self._interval - (self._timeout or 0.0))
        self._timer = self._reactor.call_later(delay, self._ping)
