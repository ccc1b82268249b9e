"""The WebSocket connection a handler receives: its public API.

A :class:`WebSocket` starts CONNECTING (see ``lifecycle.py``): the route
matched and the handshake checks passed, but the 101 has not gone out, so the
handler can still turn the client away with an ordinary HTTP response, as a
view would (``abort(401)``, a redirect from a ``login_required`` decorator).
The first use of the connection (``receive``, ``send``, ``join``, ``ping``,
``close``, iteration, or an explicit :meth:`WebSocket.accept`) accepts it:
the 101 is queued and the engine (``engine.py``) takes the socket over. All
I/O from there on is the engine's; this module turns the user's calls into
the engine's and keeps the user-facing rules: types, JSON, rooms, and
iteration that ends quietly on a normal close.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .assembly import Message
from .errors import ConnectionClosed, InvalidJSON
from .hub.history import (
    Joined,
    Position,
    check_position,
    positions_from_query,
    unknown_room_frame,
)
from .lifecycle import Lifecycle, State
from .outbox import Outgoing

if TYPE_CHECKING:
    from .engine import Engine
    from .hub import Hub
    from .pong import Pong

__all__ = ["NORMAL_CLOSE_CODES", "Acceptor", "WebSocket", "check_close", "next_message"]


# Close codes after which iterating over a connection ends without an error:
# normal closure, going away, and a close frame without a code (what browsers
# send for a plain ``ws.close()``).
NORMAL_CLOSE_CODES = frozenset({1000, 1001, 1005})


# One for all: CPython makes a new empty frozenset at each frozenset() call.
_NO_ROOMS: frozenset[str] = frozenset()


class Acceptor(Protocol):
    """How a connection gets accepted: the server side of :meth:`WebSocket.accept`."""

    def accept(self, lifecycle: Lifecycle) -> tuple[Engine, bool]:
        """Take the socket over and queue the 101, once; return the engine and
        whether this call made it.

        Raises:
            ConnectionClosed: The connection was rejected, or cannot open.
        """

    def accepted(self, ws: WebSocket) -> None:
        """Register the new connection (hub, ``on_connect`` hooks)."""


class WebSocket:
    """One WebSocket connection, as seen by the route handler.

    Every method may be called from any thread. Messages are ``str`` for text
    frames and ``bytes`` for binary frames.

    Attributes:
        id: A unique string naming this connection.
        environ: The WSGI environ of the upgrade request.
        subprotocol: The negotiated subprotocol, or ``None``.

    Handlers may set attributes of their own on it (``ws.user = ...``).
    """

    # Slots keep an idle connection small; ``__dict__`` is still there, created
    # only when a handler sets an attribute of its own.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_acceptor",
        "_engine",
        "_hub",
        "_json_dumps",
        "_json_loads",
        "_lifecycle",
        "_resumed",
        "_rooms",
        "environ",
        "id",
        "subprotocol",
    )

    def __init__(
        self,
        acceptor: Acceptor,
        *,
        id: str,
        environ: Mapping[str, Any],
        subprotocol: str | None,
        lifecycle: Lifecycle,
        hub: Hub,
        json_dumps: Callable[[Any], str] = json.dumps,
        json_loads: Callable[[str | bytes], Any] = json.loads,
    ) -> None:
        self.id = id
        self.environ = environ
        self.subprotocol = subprotocol
        self._acceptor = acceptor
        self._lifecycle = lifecycle
        self._engine: Engine | None = None
        self._hub = hub
        self._rooms = _NO_ROOMS  # Replaced on join and leave: nothing per idle socket.
        self._resumed = _NO_ROOMS  # Rooms whose upgrade-request position a join used.
        self._json_dumps = json_dumps
        self._json_loads = json_loads

    # -- state --------------------------------------------------------------

    @property
    def state(self) -> State:
        """Where the connection is in its life: CONNECTING, OPEN, CLOSING, CLOSED, FINISHED."""
        return self._lifecycle.state

    @property
    def remote_addr(self) -> str | None:
        """The client's address, as the WSGI server saw it (``REMOTE_ADDR``)."""
        return self.environ.get("REMOTE_ADDR")

    @property
    def close_code(self) -> int | None:
        """The close code (see :class:`ConnectionClosed`), or ``None`` while open."""
        return self._lifecycle.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason, or ``None`` while open."""
        info = self._lifecycle.close_info()
        return None if info is None else info[1]

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this connection joined and did not leave.

        Once the connection has ended they stay as they were, so that
        ``on_disconnect`` hooks know where it was; it is out of every room by then.
        """
        return self._rooms

    def __repr__(self) -> str:
        return f"<WebSocket {self.id} {self.state.value} from {self.remote_addr}>"

    # -- accepting ----------------------------------------------------------

    def accept(self) -> None:
        """Accept the connection now: the 101 goes out, if it did not already.

        Any other use of the connection accepts it too; call this to accept
        before the handler has anything to send or receive.

        Raises:
            ConnectionClosed: The connection was turned away or could not open.
        """
        if self._engine is None:
            self._accept()

    def _accept(self) -> Engine:
        engine, made = self._acceptor.accept(self._lifecycle)
        self._engine = engine
        if made:
            self._acceptor.accepted(self)
        return engine

    # -- messages -----------------------------------------------------------

    def receive(self, timeout: float | None = None) -> Message | None:
        """Return the next message.

        Args:
            timeout: Seconds to wait; ``None`` waits until a message comes.

        Returns:
            The message (``str`` or ``bytes``), or ``None`` if ``timeout``
            seconds passed first.

        Raises:
            ConnectionClosed: The connection is closed and every message that
                arrived before the close was already returned.
        """
        return (self._engine or self._accept()).receive(timeout)

    def __iter__(self) -> Iterator[Message]:
        """Yield messages until the connection closes.

        Ends quietly on close codes 1000, 1001 and 1005 (no code); raises
        :class:`ConnectionClosed` on any other.
        """
        return self  # No generator per connection: an idle one holds less.

    def __next__(self) -> Message:
        # next_message's rule, inline: this runs once per message.
        try:
            message = (self._engine or self._accept()).receive(None)
        except ConnectionClosed as exc:
            raise end_of_iteration(exc) from None
        assert message is not None
        return message

    def receive_json(self, timeout: float | None = None) -> Any:
        """Receive a message and decode it as JSON.

        Returns:
            The decoded value, or ``None`` if ``timeout`` passed first.

        Raises:
            InvalidJSON: The message is not valid JSON (a ``ValueError``; its
                ``message`` attribute holds the raw message). The connection
                stays open.
            ConnectionClosed: As for :meth:`receive`.
        """
        message = self.receive(timeout)
        if message is None:
            return None
        try:
            return self._json_loads(message)
        except (ValueError, RecursionError) as exc:
            # RecursionError: "[[[[..." nested deeper than the parser goes.
            raise InvalidJSON(message, ValueError(str(exc))) from exc

    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send ``message``: a text frame for ``str``, a binary frame for bytes-like.

        Returns once the message is written, or queued behind another
        thread's message; a client that reads slowly slows its sender down.

        Raises:
            TypeError: ``message`` is neither ``str`` nor bytes-like.
            ConnectionClosed: The connection is closed, or it failed before
                the message could go out.
        """
        kind = message.__class__  # The two usual classes first, without isinstance().
        if kind is bytes:
            data: bytes | bytearray | memoryview = message  # type: ignore[assignment]
            text = False
        elif kind is str or isinstance(message, str):
            data = message.encode()  # type: ignore[union-attr]
            text = True
        elif isinstance(message, bytes | bytearray | memoryview):
            data, text = message, False
        else:
            raise TypeError(
                f"send() takes str or bytes-like, not {type(message).__name__}; "
                "use send_json() to send other objects as JSON"
            )
        (self._engine or self._accept()).send(data, text)

    def send_json(self, obj: Any) -> None:
        """Send ``obj`` encoded as JSON, in a text frame."""
        self.send(self._json_dumps(obj))

    def send_nowait(self, message: str | bytes | Outgoing) -> None:
        """Queue ``message`` and return at once, without waiting on the client.

        This is how broadcasts reach a connection. A client that stopped
        reading, with ``max_queue`` messages (or ``max_queue_bytes``) waiting
        for it, is closed with 1013; nothing happens on a closed connection.

        Raises:
            TypeError: ``message`` is neither ``str`` nor bytes.
        """
        if not isinstance(message, Outgoing):
            if not isinstance(message, str | bytes):
                raise TypeError(f"send_nowait() takes str or bytes, not {type(message).__name__}")
            message = Outgoing(message)
        (self._engine or self._accept()).send_nowait(message)

    def ping(self, data: bytes = b"") -> Pong:
        """Send a ping; the returned :class:`~flask_duplex.pong.Pong` is set when its pong comes.

        ``ws.ping().wait(5)`` is True if the pong came within 5 seconds.

        Args:
            data: The ping payload (at most 125 bytes); when empty, four random
                bytes are sent so that each ping gets its own pong.

        Raises:
            ValueError: ``data`` is longer than 125 bytes.
            ConnectionClosed: The connection is closed; ``wait()`` raises it
                too if the connection ends before the pong.
        """
        payload = bytes(data) or os.urandom(4)
        if len(payload) > 125:
            raise ValueError(f"a ping payload is at most 125 bytes, not {len(payload)}")
        return (self._engine or self._accept()).ping(payload)

    # -- closing ------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and wait (up to ``close_timeout``) for the peer to agree.

        Calling it again, or after the peer closed, does nothing.

        Raises:
            ValueError: ``code`` may not be sent in a close frame (1000-1003,
                1007-1014 and 3000-4999 may), or ``reason`` is longer than 123
                bytes in UTF-8.
        """
        check_close(code, reason)
        engine = self._engine or self._accept_quietly()
        if engine is not None:
            engine.close(code, reason)

    def close_nowait(self, code: int = 1000, reason: str = "") -> None:
        """Start closing the connection and return at once.

        The handler's next ``receive()`` raises :class:`ConnectionClosed` once
        the peer answers, or ``close_timeout`` later.

        Raises:
            ValueError: As for :meth:`close`.
        """
        check_close(code, reason)
        engine = self._engine or self._accept_quietly()
        if engine is not None:
            engine.close_nowait(code, reason)

    def _accept_quietly(self) -> Engine | None:
        try:
            return self._accept()
        except ConnectionClosed:
            return None  # Turned away or gone: nothing to close.

    # -- rooms --------------------------------------------------------------

    def join(
        self,
        room: str,
        info: Mapping[str, Any] | None = None,
        *,
        since: Position | tuple[str, int] | None = None,
    ) -> Joined:
        """Put this connection in ``room``: it gets what is broadcast to the room.

        Joining a room again with other ``info`` updates what presence tells.

        In a room with history (:meth:`Duplex.keep_history`), the client
        first gets a ``joined`` frame with its position, then, if it asked to
        resume from a position (the browser client does on every reconnect,
        in the upgrade request's query string), every message it missed, in
        order, before the live ones. When the returned :class:`Joined` says
        ``recovered=False``, send the client a full state.

        Args:
            room: The room's name.
            info: What ``duplex.presence(room)`` tells about this connection
                (a name, say), in every process: a dict the app's JSON
                provider can encode, at most 1 kB once encoded.
            since: Resume from this position rather than the one the client
                gave in its upgrade request (``duplex-since``), if any. That
                one is used by the room's first join on this connection only:
                a join after a leave starts afresh.

        Returns:
            What happened: the position, and whether the gap was recovered.

        Raises:
            TypeError: ``room`` is not a ``str``, ``info`` not a dict, or
                ``since`` not an ``(epoch, offset)`` pair.
            ValueError: ``info`` is too large once encoded.
            BackendUnavailable: A room with history whose history cannot be
                read in time; the connection is not in the room.
        """
        if not isinstance(room, str):
            raise TypeError(f"room names are str, not {type(room).__name__}")
        if info is not None and not isinstance(info, Mapping):
            raise TypeError(f"info is a dict, not {type(info).__name__}")
        if since is not None:
            position = check_position(since)
            if position is None:
                raise TypeError(f"since is an (epoch, offset) pair, not {since!r}")
            asked = True
        elif room in self._resumed:
            asked, position = False, None  # The client's position was for the first join.
        else:
            given = positions_from_query(self.environ.get("QUERY_STRING", ""))
            asked = room in given
            position = given.get(room)
            if asked:
                self._resumed = self._resumed | {room}
        encoded = "{}" if not info else self._json_dumps(dict(info))
        if len(encoded) > 1024:
            raise ValueError(f"info is {len(encoded)} bytes once encoded; at most 1024")
        if self._engine is None:
            self._accept()
        hub = self._hub
        policy = hub.histories.policy_for(room) if hub.histories else None
        if policy is not None:
            joined = hub.join_history(self, room, encoded, policy, position, asked)
            if joined.history:
                self._rooms = self._rooms | {room}
            return joined
        if hub.join(self, room, encoded):
            self._rooms = self._rooms | {room}
        if not asked:
            return Joined(room)
        self.send(unknown_room_frame(room))
        return Joined(room, reason="unknown_room")

    def leave(self, room: str) -> None:
        """Take this connection out of ``room``; nothing broadcast there reaches it after."""
        if self._hub.leave(self, room):
            self._rooms = self._rooms - {room}


def next_message(receive: Callable[[], Message | None]) -> Message:
    """The next message from ``receive()``: the one rule of ``for message in ws``.

    Raises:
        StopIteration: The connection closed with a code of
            :data:`NORMAL_CLOSE_CODES` (the loop ends quietly).
        ConnectionClosed: It closed with any other code.
    """
    try:
        message = receive()
    except ConnectionClosed as exc:
        raise end_of_iteration(exc) from None
    assert message is not None
    return message


def end_of_iteration(exc: ConnectionClosed) -> Exception:
    """What ends ``for message in ws`` after ``exc``: StopIteration if normal, else ``exc``."""
    return StopIteration() if exc.code in NORMAL_CLOSE_CODES else exc


def check_close(code: int, reason: str) -> None:
    """Raise ValueError unless ``code`` and ``reason`` fit in a close frame."""
    if not isinstance(code, int) or isinstance(code, bool):
        raise ValueError(f"close code must be an int, not {code!r}")
    if not (code in _SENDABLE_CODES or 3000 <= code <= 4999):
        raise ValueError(
            f"close code {code} may not be sent; use 1000-1003, 1007-1014 or 3000-4999"
        )
    if not isinstance(reason, str):
        raise ValueError(f"close reason must be a str, not {reason!r}")
    if len(reason.encode()) > 123:
        raise ValueError("close reason is longer than 123 bytes in UTF-8")


_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})
