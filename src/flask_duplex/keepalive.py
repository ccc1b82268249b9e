"""Keepalive: a ping every ``ping_interval`` seconds, and a deadline for its pong.

It runs on the reactor thread, whatever the handler is doing. A pong that does
not come within ``ping_timeout`` seconds fails the connection with 1011 and
drops it: the peer, or the network path to it, is gone.

Except when this side is the slow one: while the connection's inbox is full,
nothing is read from the socket, and the pong may be sitting there unread.
The peer is not silent then, only unheard, so while reading waits, and for
``ping_timeout`` after it goes on, the deadline moves on by ``ping_timeout``
instead of failing a healthy peer for our own backpressure.
"""

from __future__ import annotations

import os
from typing import Protocol

from .pong import Pong
from .reactor import Reactor, Timer

__all__ = ["Keepalive", "Pinged"]


class Pinged(Protocol):
    """What keepalive needs of a connection."""

    def keepalive_ping(self, payload: bytes) -> Pong | None:
        """Send a ping without waiting on the socket; ``None`` if the connection is not open."""

    def keepalive_failed(self) -> None:
        """Fail the connection with 1011: the pong did not come."""

    def input_paused_within(self, seconds: float) -> bool:
        """Whether reading waits for room in the inbox, or did within ``seconds``."""

    @property
    def is_open(self) -> bool:
        """Whether the connection is open."""


class Keepalive:
    """Keepalive pings for one connection, from the first ping to :meth:`cancel`.

    Its timer calls the keepalive itself (:meth:`__call__`), which takes the
    next step: a bound method kept in the timer would cost every idle
    connection 64 bytes. (The timer and the keepalive refer to each other
    until the timer fires or is cancelled.)
    """

    __slots__ = ("_checking", "_conn", "_interval", "_pong", "_reactor", "_timeout", "_timer")

    def __init__(
        self, conn: Pinged, interval: float, timeout: float | None, reactor: Reactor
    ) -> None:
        self._conn = conn
        self._interval = interval
        self._timeout = timeout
        self._reactor = reactor
        self._pong: Pong | None = None
        self._checking = False  # the next step checks the pong, rather than pings
        self._timer: Timer = reactor.call_later(interval, self)

    def cancel(self) -> None:
        self._timer.cancel()

    def __call__(self) -> None:
        # The timer is due (reactor thread).
        if self._checking:
            self._check_pong()
        else:
            self._ping()

    def _ping(self) -> None:
        pong = self._conn.keepalive_ping(os.urandom(4))
        if pong is None:
            return
        self._pong = pong
        if self._timeout is None:
            self._timer = self._reactor.call_later(self._interval, self)
        else:
            self._checking = True
            self._timer = self._reactor.call_later(self._timeout, self)

    def _check_pong(self) -> None:
        if not self._conn.is_open:
            return
        if self._pong is not None and not self._pong.is_set():
            assert self._timeout is not None
            if self._conn.input_paused_within(self._timeout):
                # The pong may be among what we have not read yet: wait on.
                self._timer = self._reactor.call_later(self._timeout, self)
                return
            self._conn.keepalive_failed()
            return
        delay = max(0.0, self._interval - (self._timeout or 0.0))
        self._checking = False
        self._timer = self._reactor.call_later(delay, self)
