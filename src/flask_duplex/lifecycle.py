"""The rules of one WebSocket connection's life, in one place, with no I/O.

Everything that changes a connection's state, and every rule that decides the
close code it reports, lives in this file; nothing else assigns the state.
The I/O side (``engine.py`` once the connection is accepted, ``serving.py``
before) tells :class:`Lifecycle` what happened (an *event*: the handler closes,
a frame or the end of the stream came in, a limit was hit) and gets back what
to do about it (*actions*, a bit set), which the engine applies in one place,
``Engine._apply``. So the rules can be read, and tested, without a socket:
event in, state and actions out (``tests/test_lifecycle_rules.py``).

A connection goes through these states, in this order, never back::

    CONNECTING --accept()--> OPEN --close()--> CLOSING --peer's close, EOF--> CLOSED --> FINISHED
        |                     |                                                ^
        |                     +-- peer's close, fail(), a protocol error, EOF -+
        +--- reject(): the client got an HTTP response instead -------------> CLOSED

CONNECTING
    The route matched an upgrade request and the handshake checks passed, but
    no 101 went out yet: the handler may still reject the client with an HTTP
    response (``abort(401)``, a redirect). The first use of the connection
    (receive, send, join, ping, close, or ``accept()``) writes the 101.
OPEN
    Messages flow both ways.
CLOSING
    This side sent a close frame (``close()``, a shutdown's 1001) and the
    peer's has not come yet. Nothing more may be sent; data frames that still
    arrive are dropped, never queued, so a peer that keeps sending cannot make
    the process grow. A deadline (``close_timeout``) runs from here: when it
    passes, the TCP connection is dropped, whatever the peer does.
CLOSED
    Nothing more will be read: both close frames crossed, the peer's close was
    answered, this side failed the connection (1002, 1007, 1009, 1011, 1013),
    or the TCP connection ended. What was queued to write (the echo of the
    peer's close frame) may still be on its way out.
FINISHED
    The handler returned and the engine gave the socket back to the WSGI
    server; nothing touches it any more, not even a late timer.

The close frames are websockets' own (``protocol.close_rcvd`` and
``close_sent``): this class keeps no copy of them, only whether this side
closed on purpose (``close()``) rather than failed. The close code a
connection reports is the peer's, from its close frame; or, when this side
failed the connection, the code it sent; or, while a close this side started
waits for its answer, the code it sent; else 1006, the RFC's code for a
connection that ended without a closing handshake.

The engine calls every event under the connection's lock; reading the state
needs no lock (an attribute read is atomic).
"""

from __future__ import annotations

import enum

from websockets.protocol import State as ProtocolState

from .wire import ServerProtocol

__all__ = [
    "INPUT_ENDED",
    "LEFT_OPEN",
    "NOTHING",
    "SEND",
    "IllegalTransition",
    "Lifecycle",
    "State",
]


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


# The actions an event asks of the I/O side (plain ints, combined with |).
#: Nothing to do: the event changed nothing.
NOTHING = 0
#: Queue what the protocol has to send (``protocol.data_to_send()``).
SEND = 1
#: The connection left OPEN: stop keepalive, start the ``close_timeout`` deadline.
LEFT_OPEN = 2
#: Nothing more will be read: stop watching the socket for input, wake every
#: thread waiting for a message, fail the pings still waiting for a pong.
INPUT_ENDED = 4

_CONNECTING, _OPEN, _CLOSING, _CLOSED, _FINISHED = State
# Keyed by the state's value and held in tuples: an enum member's hash is a
# Python call, and a connection makes four transitions.
_ALLOWED: dict[str, tuple[State, ...]] = {
    _CONNECTING._value_: (_OPEN, _CLOSED),
    _OPEN._value_: (_CLOSING, _CLOSED),
    _CLOSING._value_: (_CLOSED,),
    _CLOSED._value_: (_FINISHED,),
    _FINISHED._value_: (),
}
_PROTOCOL_CLOSED = ProtocolState.CLOSED


class IllegalTransition(RuntimeError):
    """A bug: an event came that the connection's state does not allow."""


class Lifecycle:
    """One connection's state, the events that move it, and the close code it reports.

    Attributes:
        state: Where the connection is (:class:`State`).
        input_open: Whether the socket may still bring frames (OPEN or
            CLOSING); kept beside the state, as it is read on every message.
    """

    __slots__ = ("_closed_on_purpose", "_protocol", "input_open", "state")

    def __init__(self, protocol: ServerProtocol) -> None:
        self.state = _CONNECTING
        self.input_open = False
        self._protocol = protocol
        # close() sent this side's close frame (rather than a failure).
        self._closed_on_purpose = False

    # -- events before the connection is accepted (serving.py) ------------------

    def accept(self) -> None:
        """The 101 is queued: OPEN.

        Raises:
            IllegalTransition: The connection is not CONNECTING.
        """
        self._move(_OPEN)

    def reject(self) -> bool:
        """The client gets an HTTP response instead (or the server is shutting down).

        Returns:
            Whether the connection was turned away; ``False`` if it was
            accepted (or turned away) before.
        """
        if self.state is not _CONNECTING:
            return False
        self._move(_CLOSED)
        return True

    # -- events of an accepted connection (engine.py) ---------------------------

    def close(self, code: int, reason: str) -> int:
        """This side starts the closing handshake (``close()``, a shutdown's 1001).

        Returns:
            ``SEND | LEFT_OPEN``; ``NOTHING`` unless the connection is OPEN.
        """
        if self.state is not _OPEN:
            return NOTHING
        self._protocol.send_close(code, reason)
        self._closed_on_purpose = True
        self._move(_CLOSING)
        return SEND | LEFT_OPEN

    def fail(self, code: int, reason: str) -> int:
        """This side fails the connection (RFC 6455 7.1.7): 1011, 1013.

        A close frame with ``code`` goes out if none did yet; nothing more is read.

        Returns:
            ``SEND | INPUT_ENDED``, with ``LEFT_OPEN`` from OPEN; ``NOTHING``
            once input has ended.
        """
        if not self.input_open:
            return NOTHING
        self._protocol.fail(code, reason)
        return SEND | self._input_ends()

    def data_received(self) -> int:
        """The protocol parsed what came in (lock held, input open): did it end the input?

        Called after every ``receive_data``/``receive_eof`` while input is
        open. Input ends with the peer's close frame (which websockets
        answers), a protocol error that websockets failed the connection for
        (1002, 1007, 1009), or the end of the stream. What websockets answered
        is the engine's to queue, whatever this returns.

        Returns:
            ``NOTHING`` while input goes on; else ``INPUT_ENDED``, with
            ``LEFT_OPEN`` from OPEN.
        """
        protocol = self._protocol
        if (
            protocol.close_rcvd is not None
            or protocol.parser_exc is not None
            or protocol.state is _PROTOCOL_CLOSED
        ):
            return self._input_ends()
        return NOTHING

    def input_ended(self) -> int:
        """The stream ended without the protocol's say: reset, shut down, or aborted.

        Returns:
            ``INPUT_ENDED``, with ``LEFT_OPEN`` from OPEN; ``NOTHING`` once
            input has ended.
        """
        if not self.input_open:
            return NOTHING
        return self._input_ends()

    def finish(self) -> int:
        """The handler returned and the socket went back to the server: FINISHED.

        Returns:
            What :meth:`input_ended` returns, if input had not ended.

        Raises:
            IllegalTransition: The connection was never accepted.
        """
        actions = self.input_ended()
        self._move(_FINISHED)
        return actions

    # -- the close code ---------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        """The close code to report, or ``None`` while CONNECTING or OPEN."""
        info = self.close_info()
        return None if info is None else info[0]

    def close_info(self) -> tuple[int, str] | None:
        """The close code and reason to report (see the module's docstring)."""
        state = self.state
        if state is _CONNECTING or state is _OPEN:
            return None
        protocol = self._protocol
        received = protocol.close_rcvd
        if received is not None:
            return int(received.code), received.reason
        sent = protocol.close_sent
        if sent is not None and (not self._closed_on_purpose or state is _CLOSING):
            return int(sent.code), sent.reason
        return 1006, ""

    # -- transitions --------------------------------------------------------------

    def _input_ends(self) -> int:
        # Input was open (OPEN or CLOSING): CLOSED.
        actions = LEFT_OPEN | INPUT_ENDED if self.state is _OPEN else INPUT_ENDED
        self._move(_CLOSED)
        return actions

    def _move(self, new: State) -> None:
        if new not in _ALLOWED[self.state._value_]:
            raise IllegalTransition(f"a connection cannot go from {self.state} to {new}")
        self.state = new
        self.input_open = new is _OPEN or new is _CLOSING
