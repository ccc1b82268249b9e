"""Who reads a connection's socket, and when.

Exactly one party reads a connection's socket at any moment; the
:class:`Reading` of the connection says which (:class:`Reader`):

``HANDLER``
    A thread waiting in ``receive()`` with nothing queued reads the socket
    itself. An echo loop therefore costs no thread switch: the thread that
    asked for the message reads it, parses it and answers.
``REACTOR``
    The rest of the time, the process's reactor (``reactor.py``) reads it when
    it is readable, so that pings are answered, a peer's close is completed and
    keepalive runs even while the handler sleeps or waits on something else.
    Messages it reads queue in the inbox for the next ``receive()``.
``NOBODY``
    The handler just left ``receive()``. Most handlers call it again within
    microseconds, so the reactor takes the socket back only at its next tick
    (``REARM_DELAY``, 50 ms at most), and only if the handler has not come back
    by then: an echo loop costs no registration change per message.

Under eventlet, whose hub refuses two greenthreads waiting on one socket, the
reactor is always the reader, and ``receive()`` waits for its messages.

Besides its reader, reading waits for room: while the inbox is full (see
``assembly.py``) nobody reads, and TCP flow control slows the peer down.

Every method documented "lock held" runs under the connection's lock, which
is what makes the handover safe.
"""

from __future__ import annotations

import enum
import socket
from typing import Protocol

from .outbox import NOT_YET
from .reactor import Reactor

__all__ = ["RECV_SIZE", "Reader", "Reading", "Rearmed", "recv"]

# Big enough for a 64 KiB message and its frame header in one read, and still
# below glibc's mmap threshold (128 KiB, counting the bytes object's header and
# malloc's): a bigger buffer would cost an mmap and page faults on every read.
# Above a TLS record (16 KiB): a read from a TLS socket takes a whole record,
# so no decrypted bytes stay behind in the TLS layer where waiting on the TCP
# socket would not see them.
RECV_SIZE = 128 * 1024 - 256


class Reader(enum.Enum):
    """Who reads the socket now; see the module's docstring."""

    REACTOR = "reactor"
    HANDLER = "handler"
    NOBODY = "nobody"


class Rearmed(Protocol):
    """The connection, as its :class:`Reading` calls it back."""

    def rearm(self) -> None:
        """The reactor's tick after a handler left ``receive()``: take the lock, call
        :meth:`Reading.tick`."""


class Reading:
    """The read side of one connection: its reader, and the handovers between readers."""

    __slots__ = ("_conn", "_handlers_read", "_reactor", "_tick_pending", "reader")

    def __init__(self, reactor: Reactor, conn: Rearmed, handlers_read: bool) -> None:
        self._reactor = reactor
        self._handlers_read = handlers_read
        # conn.rearm is looked up when it is scheduled: a bound method kept
        # here would cost every idle connection 64 bytes.
        self._conn = conn
        self._tick_pending = False  # conn.rearm is scheduled on the reactor
        # A new connection's handler usually receives at once: the reactor
        # takes the socket only if it has not by the next tick (see start()),
        # so a short connection never costs a registration with the reactor.
        self.reader = Reader.NOBODY if handlers_read else Reader.REACTOR

    def start(self) -> None:
        """The connection opened: the reactor reads from its next tick on, unless a thread does."""
        if self.reader is Reader.NOBODY and not self._tick_pending:
            self._tick_pending = True
            self._reactor.rearm_soon(self._conn.rearm)

    def may_claim(self) -> bool:
        """Whether a thread that needs input may become the reader now (lock held).

        Not while another thread reads, and never under eventlet, where the
        reactor always reads.
        """
        return self._handlers_read and self.reader is not Reader.HANDLER

    def claim(self) -> bool:
        """The calling thread becomes the reader, if it may (lock held).

        Returns:
            Whether it did (see :meth:`may_claim`); if so, it reads the socket
            until it calls :meth:`release`.
        """
        if not self._handlers_read or self.reader is Reader.HANDLER:
            return False
        self.reader = Reader.HANDLER
        return True

    def release(self) -> None:
        """The reading thread leaves ``receive()`` (lock held).

        The reactor becomes the reader at its next tick, unless a thread has
        claimed reading again by then.
        """
        self.reader = Reader.NOBODY
        if not self._tick_pending:
            self._tick_pending = True
            self._reactor.rearm_soon(self._conn.rearm)

    def tick(self) -> None:
        """The reactor's tick after a release (lock held)."""
        self._tick_pending = False
        if self.reader is Reader.NOBODY:
            self.reader = Reader.REACTOR

    def take_back(self) -> None:
        """The reactor reads from now on, without waiting for a tick (lock held).

        For a close this side starts: the peer's answer must be read at once.
        """
        if self.reader is Reader.NOBODY:
            self.reader = Reader.REACTOR


def recv(sock: socket.socket) -> bytes | None:
    """Read what the socket has: bytes, ``b""`` at end of stream, ``None`` if nothing yet."""
    try:
        return sock.recv(RECV_SIZE)
    except NOT_YET:
        return None
    except OSError:
        return b""  # Reset or shut down: the stream is over.
