"""The life of one WebSocket connection, as one explicit state.

A connection goes through these states, in this order, never back::

    CONNECTING --accept()--> OPEN --close frame sent or received--> CLOSING
        |                     |                                        |
        |                     +-------- TCP ended, or aborted ---------+--> CLOSED --> FINISHED
        +--- rejected: the client got an HTTP response instead ------------> CLOSED

CONNECTING
    The route matched an upgrade request and the handshake checks passed, but
    no 101 went out yet: the handler may still reject the client with an HTTP
    response (``abort(401)``, a redirect). The first use of the connection
    (receive, send, join, ping, close, or ``accept()``) writes the 101.
OPEN
    Messages flow both ways.
CLOSING
    A close frame was sent (``close()``, a failure such as 1009 or 1013, a
    shutdown's 1001) or received, and the other one has not come yet. Nothing
    more may be sent; data frames that still arrive are dropped, never queued,
    so a peer that keeps sending cannot make the process grow. A deadline
    (``close_timeout``) runs from here: when it passes, the TCP connection is
    dropped, whatever the peer does.
CLOSED
    Nothing more will be read: both close frames crossed, the TCP connection
    ended, or it was aborted. What was queued to write (the echo of the peer's
    close frame) may still be on its way out.
FINISHED
    The handler returned and the engine gave the socket back to the WSGI
    server; nothing touches it any more, not even a late timer.

The close code a connection reports (:attr:`Lifecycle.close_code`) is the
peer's, from its close frame; or, when this side failed the connection, the
code it sent (1002, 1007, 1009, 1011, 1013); or, while a close this side
started waits for its answer, the code it sent; else 1006, the RFC's code for
a connection that ended without a closing handshake.

The engine changes the state under the connection's lock; reading it needs no
lock (an attribute read is atomic).
"""

from __future__ import annotations

import enum

__all__ = ["IllegalTransition", "Lifecycle", "State"]


class State(enum.Enum):
    """Where a connection is in its life. It only moves forward, in this order.

    Attributes:
        CONNECTING: The handshake checks passed, but no 101 went out yet: the
            handler may still turn the client away with an HTTP response. Its
            first use of the connection accepts it.
        OPEN: Messages flow both ways.
        CLOSING: A close frame was sent or received and the other has not come
            yet. Nothing more may be sent; within ``close_timeout`` the TCP
            connection is gone.
        CLOSED: Nothing more will be read.
        FINISHED: The handler returned; the socket went back to the server.
    """

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    FINISHED = "finished"


_ALLOWED: dict[State, frozenset[State]] = {
    State.CONNECTING: frozenset({State.OPEN, State.CLOSED}),
    State.OPEN: frozenset({State.CLOSING, State.CLOSED}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset({State.FINISHED}),
    State.FINISHED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A bug: the engine tried a transition the lifecycle does not allow."""


class Lifecycle:
    """One connection's state, and the close frames that decide its close code."""

    __slots__ = ("failed", "reading", "received", "sent", "state")

    def __init__(self) -> None:
        self.state = State.CONNECTING
        #: Whether the socket may still bring frames (OPEN or CLOSING); kept
        #: with the state, as it is read on every message.
        self.reading = False
        #: The peer's close frame, as (code, reason), once received.
        self.received: tuple[int, str] | None = None
        #: This side's close frame, as (code, reason), once queued.
        self.sent: tuple[int, str] | None = None
        #: This side failed the connection (its close code is the one to report).
        self.failed = False

    def move(self, new: State) -> None:
        """Go to ``new``, a state the current one allows.

        Raises:
            IllegalTransition: ``new`` does not follow the current state.
        """
        if new not in _ALLOWED[self.state]:
            raise IllegalTransition(f"a connection cannot go from {self.state} to {new}")
        self.state = new
        self.reading = new is State.OPEN or new is State.CLOSING

    def advance(self, new: State) -> None:
        """Go to ``new`` if it lies ahead of the current state; otherwise stay.

        FINISHED is reached through CLOSED.

        Raises:
            IllegalTransition: ``new`` lies ahead but cannot be reached from here.
        """
        if _ORDER[new] <= _ORDER[self.state]:
            return
        if new is State.FINISHED and self.state is not State.CLOSED:
            self.move(State.CLOSED)
        self.move(new)

    @property
    def open(self) -> bool:
        return self.state is State.OPEN

    @property
    def close_code(self) -> int | None:
        """The close code to report, or ``None`` while CONNECTING or OPEN."""
        info = self.close_info()
        return None if info is None else info[0]

    def close_info(self) -> tuple[int, str] | None:
        """The close code and reason to report (see the module's docstring)."""
        state = self.state
        if state is State.CONNECTING or state is State.OPEN:
            return None
        if self.received is not None:
            return self.received
        if self.sent is not None and (self.failed or state is State.CLOSING):
            return self.sent
        return 1006, ""


_ORDER = {state: index for index, state in enumerate(State)}
