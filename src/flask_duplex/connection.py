"""The WebSocket connection a handler receives: messages in, messages out.

Who owns the socket, and when
-----------------------------
The websockets ``ServerProtocol`` turns bytes into frames and frames into
bytes; it does no I/O and is not thread-safe, so every call into it happens
under ``_lock``. Bytes it produces go to the connection's outbox
(``outbox.py``) under the same lock, and one writer at a time writes them to
the socket in order, so a message is written whole even when several threads
send at once.

Reading has exactly one owner at a time:

* While a thread waits in :meth:`WebSocket.receive` and no message is queued,
  that thread reads the socket itself. The echo loop of a handler therefore
  costs no thread switch: the same thread reads, parses and answers.
* At any other time the process's reactor (``reactor.py``) reads it, so that
  pings are answered, a peer's close is completed and keepalive runs even
  while the handler sleeps or waits on something else. Messages it reads
  queue in ``_inbox`` for the next ``receive()``; past ``_INBOX_HIGH_WATER``
  queued messages it stops reading, and TCP pushes back on the peer.

The switch happens under ``_lock``: the reactor reads only when ``_direct`` is
false, and a receiving thread sets it, under the lock, before reading. The
reactor takes a socket back lazily (``_rearm_pending``): only if its handler
has not returned to ``receive()`` by the reactor's next tick, 50 ms at most,
so an echo loop costs no registration change per message. Under eventlet the
reactor does all the reading (``Reactor.direct_reads`` is false) and
``receive()`` waits on ``_input_ready``.

Writing has one owner at a time too, and never makes the reactor or a
broadcast wait on a slow peer: ``outbox.py`` explains how.

How a connection ends
---------------------
A close frame from the peer is echoed at once by the protocol, which then asks
for the TCP write side to be shut down; ``receive()`` raises
:class:`ConnectionClosed` once the queued messages are delivered. A close
started here (:meth:`WebSocket.close`, or the handler returning) sends a close
frame and waits up to ``close_timeout`` for the peer's; then the write side is
shut down. Either way nothing can follow the close frame on the wire: the
kernel refuses writes after ``shutdown(SHUT_WR)``. A keepalive timeout, an
I/O error or a close that times out aborts: the socket is shut down both ways,
which also wakes any thread blocked on it.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from .errors import ConnectionClosed, InvalidJSON
from .hub import Hub
from .keepalive import Keepalive
from .options import Options
from .outbox import NOT_YET, Outbox, Outgoing, shutdown
from .reactor import EVENT_READ, EVENT_WRITE, Reactor
from .tls import guard

__all__ = ["WebSocket"]

logger = logging.getLogger("flask_duplex")

Message = str | bytes

# Close codes after which iterating over a connection ends without an error:
# normal closure, going away, and a close frame without a code (what browsers
# send for a plain ``ws.close()``).
NORMAL_CLOSE_CODES = frozenset({1000, 1001, 1005})

_INBOX_HIGH_WATER = 32
# Below glibc's mmap threshold (128 KiB): a bigger buffer costs an mmap and
# page faults on every read. Above a TLS record (16 KiB): a read from a TLS
# socket takes a whole record, so no decrypted bytes stay behind in the TLS
# layer where waiting on the TCP socket would not see them.
_RECV_SIZE = 64 * 1024

_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG


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
        "_decoder",
        "_direct",
        "_events",
        "_failed",
        "_finished",
        "_fragments",
        "_hub",
        "_inbox",
        "_input_done",
        "_input_ready",
        "_json_dumps",
        "_json_loads",
        "_keepalive",
        "_lock",
        "_options",
        "_outbox",
        "_pings",
        "_protocol",
        "_reactor",
        "_rearm_pending",
        "_receive_lock",
        "_rooms",
        "_sock",
        "_sock_timeout",
        "_waiters",
        "environ",
        "id",
        "subprotocol",
    )

    def __init__(
        self,
        protocol: ServerProtocol,
        sock: socket.socket,
        *,
        options: Options,
        environ: Mapping[str, Any],
        reactor: Reactor,
        hub: Hub | None = None,
        prefetched: bytes = b"",
        json_dumps: Callable[[Any], str] = json.dumps,
        json_loads: Callable[[str | bytes], Any] = json.loads,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.environ = environ
        self.subprotocol: str | None = protocol.subprotocol
        self._protocol = protocol
        sock = guard(sock)  # A TLS socket: one TLS call at a time (see tls.py).
        self._sock = sock
        self._options = options
        self._reactor = reactor
        self._json_dumps = json_dumps
        self._json_loads = json_loads

        self._lock = reactor.short_lock()  # Never held across a wait.
        # Created by the first thread that waits for input (see _wait_for_input).
        self._input_ready: threading.Condition | None = None
        self._waiters = 0  # threads waiting on _input_ready: notify only if any
        self._receive_lock = threading.Lock()

        self._outbox = Outbox(sock, self._lock, reactor.wait, self._update_watch)
        self._inbox: collections.deque[Message] = collections.deque()
        self._fragments: list[Any] = []
        self._decoder: codecs.IncrementalDecoder | None = None
        self._pings: dict[bytes, threading.Event] = {}

        self._direct = False  # a receiving thread owns reading
        self._rearm_pending = False  # the reactor will look again at reading
        self._input_done = False  # nothing more will be read
        self._failed = False  # this side failed the connection
        self._finished = False  # the handler returned; the socket is the server's again
        self._events = 0  # what the reactor watches this socket for
        self._rooms: set[str] = set()
        self._hub: Hub | None = hub
        self._keepalive: Keepalive | None = None

        self._sock_timeout = sock.gettimeout()
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Messages are written whole; waiting to coalesce them (Nagle) only
            # adds up to a delayed-ACK timeout (40 ms) to each small one.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if prefetched:
            with self._lock:
                self._feed(prefetched)
        with self._lock:
            self._update_watch()
        self._flush(block=False)
        if options.ping_interval is not None:
            self._keepalive = Keepalive(self, options.ping_interval, options.ping_timeout, reactor)

    # -- public API ---------------------------------------------------------

    @property
    def remote_addr(self) -> str | None:
        """The client's address, as the WSGI server saw it (``REMOTE_ADDR``)."""
        return self.environ.get("REMOTE_ADDR")

    @property
    def closed(self) -> bool:
        """True once a close frame was sent or received, or the connection dropped."""
        return self._protocol.state is not State.OPEN or self._input_done

    @property
    def close_code(self) -> int | None:
        """The close code (see :class:`ConnectionClosed`), or ``None`` while open."""
        return self._close_info()[0] if self.closed else None

    @property
    def close_reason(self) -> str | None:
        """The close reason, or ``None`` while open."""
        return self._close_info()[1] if self.closed else None

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this connection is in."""
        return frozenset(self._rooms)

    def join(self, room: str) -> None:
        """Put this connection in ``room``: it gets what is broadcast to the room."""
        if not isinstance(room, str):
            raise TypeError(f"room names are str, not {type(room).__name__}")
        with self._lock:
            if room in self._rooms or self._finished:
                return
            self._rooms.add(room)
        if self._hub is not None:
            self._hub.join(self, room)

    def leave(self, room: str) -> None:
        """Take this connection out of ``room``; nothing broadcast there reaches it after."""
        with self._lock:
            if room not in self._rooms:
                return
            self._rooms.discard(room)
        if self._hub is not None:
            self._hub.leave(self, room)

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
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._receive_lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            return None
        try:
            with self._lock:
                if not self._inbox and not self._input_done and not self._reactor.direct_reads:
                    wait = None if deadline is None else deadline - time.monotonic()
                    self._wait_for_input(lambda: bool(self._inbox) or self._input_done, wait)
                if self._inbox:
                    return self._pop_message()
                if self._input_done:
                    raise self._closed_error()
                if not self._reactor.direct_reads:
                    return None  # Timed out.
                self._direct = True
                self._update_watch()
            try:
                return self._read_until_message(deadline)
            finally:
                with self._lock:
                    self._direct = False
                    # Most handlers call receive() again within microseconds:
                    # hand reading back to the reactor only if this one does not.
                    if not self._rearm_pending:
                        self._rearm_pending = True
                        self._reactor.rearm_soon(self._rearm)
        finally:
            self._receive_lock.release()

    def __iter__(self) -> Iterator[Message]:
        """Yield messages until the connection closes.

        Ends quietly on close codes 1000, 1001 and 1005 (no code); raises
        :class:`ConnectionClosed` on any other.
        """
        return iterate(self.receive)

    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send ``message``: a text frame for ``str``, a binary frame for bytes-like.

        Raises:
            TypeError: ``message`` is neither ``str`` nor bytes-like.
            ConnectionClosed: The connection is closed.
        """
        if isinstance(message, str):
            data: bytes | bytearray | memoryview = message.encode()
            text = True
        elif isinstance(message, bytes | bytearray | memoryview):
            data, text = message, False
        else:
            raise TypeError(
                f"send() takes str or bytes-like, not {type(message).__name__}; "
                "use send_json() to send other objects as JSON"
            )
        with self._lock:
            if self._protocol.state is not State.OPEN:
                raise self._closed_error()
            if text:
                self._protocol.send_text(data)
            else:
                self._protocol.send_binary(data)
            chunks = self._protocol.data_to_send()
            claimed = self._outbox.offer(chunks)
        self._write(chunks, claimed, block=True)

    def send_json(self, obj: Any) -> None:
        """Send ``obj`` encoded as JSON, in a text frame."""
        self.send(self._json_dumps(obj))

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
        except ValueError as exc:
            raise InvalidJSON(message, exc) from exc

    def ping(self, data: bytes = b"") -> threading.Event:
        """Send a ping; the returned event is set when the matching pong arrives.

        Args:
            data: The ping payload (at most 125 bytes); when empty, four random
                bytes are sent so that each ping gets its own pong.

        Raises:
            ValueError: ``data`` is longer than 125 bytes.
            ConnectionClosed: The connection is closed.
        """
        payload = bytes(data) or os.urandom(4)
        if len(payload) > 125:
            raise ValueError(f"a ping payload is at most 125 bytes, not {len(payload)}")
        pong = self._queue_ping(payload)
        self._flush(block=True)
        return pong

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and wait (up to ``close_timeout``) for the peer to agree.

        Calling it again, or after the peer closed, does nothing.

        Raises:
            ValueError: ``code`` may not be sent in a close frame (1000-1003,
                1007-1014 and 3000-4999 may), or ``reason`` is longer than 123
                bytes in UTF-8.
        """
        check_close(code, reason)
        with self._lock:
            if self._protocol.state is State.OPEN and not self._input_done:
                self._protocol.send_close(code, reason)
                self._outbox.add(self._protocol.data_to_send())
                self._rearm_pending = False  # The peer's answer must be read now.
                self._update_watch()
        self._flush(block=True)
        with self._lock:
            done = self._wait_for_input(lambda: self._input_done, self._options.close_timeout)
        if not done:
            self._abort()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<WebSocket {self.id} {state} from {self.remote_addr}>"

    # -- reading ------------------------------------------------------------

    def _read_until_message(self, deadline: float | None) -> Message | None:
        sock = self._sock
        more = False  # The last read filled the buffer: more is likely waiting.
        while True:
            if deadline is None:
                wait = None
            else:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return None
            if not more and not self._reactor.wait(sock, False, wait):
                continue
            data = _recv(sock)
            if data is None:
                more = False
                continue
            more = len(data) == _RECV_SIZE
            with self._lock:
                self._feed(data)
                message = self._pop_message() if self._inbox else None
                if message is None and self._input_done:
                    error: ConnectionClosed | None = self._closed_error()
                else:
                    error = None
            self._flush(block=True)
            if message is not None:
                return message
            if error is not None:
                raise error

    def _on_ready(self, mask: int) -> None:
        # Reactor thread: never block here.
        if mask & EVENT_WRITE:
            try:
                self._outbox.resume()
            except OSError:
                self._write_failed(block=False)
        if not mask & EVENT_READ:
            return
        with self._lock:
            if self._direct or self._input_done or self._finished:
                return
            data = _recv(self._sock)
            if data is None:
                return
            self._feed(data)
            self._update_watch()
        self._flush(block=False)

    def _feed(self, data: bytes) -> None:
        # Called with _lock held.
        protocol = self._protocol
        try:
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
        except EOFError:
            return  # Data that raced with an abort; the stream is already over.
        # Past the handshake, every event is a frame.
        for frame in cast("list[Frame]", protocol.events_received()):
            opcode = frame.opcode
            if opcode is _TEXT or opcode is _BINARY or opcode is _CONT:
                if not self._assemble(frame):
                    break
            elif opcode is _PONG:
                self._pong_received(bytes(frame.data))
        self._outbox.add(protocol.data_to_send())
        if not self._input_done and (
            not data
            or protocol.close_rcvd is not None
            or protocol.parser_exc is not None
            or protocol.state is State.CLOSED
        ):
            self._input_done = True
            self._failed = self._failed or protocol.parser_exc is not None
        self._notify_input()

    def _assemble(self, frame: Frame) -> bool:
        """Add a data frame to the message being built; False if it failed the connection."""
        data = frame.data
        try:
            if frame.fin and not self._fragments:
                if frame.opcode is _TEXT:
                    self._inbox.append(bytes(data).decode())
                else:
                    self._inbox.append(bytes(data))
                return True
            # Fragmented: decode text as it comes, to fail fast on bad UTF-8.
            if frame.opcode is _TEXT:
                self._decoder = codecs.getincrementaldecoder("utf-8")()
            if self._decoder is not None:
                self._fragments.append(self._decoder.decode(data, frame.fin))
            else:
                self._fragments.append(bytes(data))
        except UnicodeDecodeError as exc:
            self._fail_locked(1007, f"invalid UTF-8 at byte {exc.start}")
            return False
        if frame.fin:
            joiner: Any = "" if self._decoder is not None else b""
            self._inbox.append(joiner.join(self._fragments))
            self._fragments = []
            self._decoder = None
        return True

    def _pop_message(self) -> Message:
        # Called with _lock held and _inbox not empty.
        message = self._inbox.popleft()
        if len(self._inbox) == _INBOX_HIGH_WATER - 1:
            self._update_watch()
        return message

    # -- writing ------------------------------------------------------------

    def _flush(self, block: bool) -> None:
        """Write the outbox; with ``block=False``, never wait on the socket."""
        try:
            self._outbox.flush(block)
        except OSError:
            self._write_failed(block)

    def _write(self, chunks: list[bytes], claimed: bool, block: bool) -> None:
        """Write after :meth:`Outbox.offer`: the claimed frame, or what is queued."""
        if not claimed:
            self._flush(block)
            return
        try:
            self._outbox.write_claimed(chunks[0], block)
        except OSError:
            self._write_failed(block)

    def _write_failed(self, block: bool) -> None:
        self._abort()
        if block:
            raise self._closed_error() from None

    def _send_nowait(self, message: Outgoing) -> None:
        """Send a message for a broadcast, without waiting on the socket.

        A connection whose peer stopped reading and that has ``max_queue``
        messages waiting is closed with 1013; the messages still waiting are
        dropped and the close frame takes their place.
        """
        with self._lock:
            if self._protocol.state is not State.OPEN or self._input_done:
                return
            if self._outbox.overflowing(self._options.max_queue):
                self._outbox.drop_waiting()
                self._fail_locked(1013, "too slow: outbound queue full")
                # Wake a handler blocked reading this socket: nothing more is read.
                shutdown(self._sock, socket.SHUT_RD)
                overflowed = True
                chunks, claimed = [], False  # The close frame is queued.
            else:
                if self._protocol.extensions:
                    if message.text:
                        self._protocol.send_text(message.payload)
                    else:
                        self._protocol.send_binary(message.payload)
                    chunks = self._protocol.data_to_send()
                else:
                    # The protocol would build the same bytes for every connection.
                    chunks = [message.frame]
                claimed = self._outbox.offer(chunks)
                overflowed = False
        if overflowed:
            logger.warning(
                "flask-duplex: closed connection %s with 1013: it stopped reading and %d "
                "messages were waiting for it (max_queue)",
                self.id,
                self._options.max_queue,
            )
            self._reactor.call_later(self._options.close_timeout, self._abort)
        self._write(chunks, claimed, block=False)

    # -- pings, keepalive, failure ------------------------------------------

    def _queue_ping(self, payload: bytes) -> threading.Event:
        with self._lock:
            if self._protocol.state is not State.OPEN:
                raise self._closed_error()
            pong = self._pings.get(payload)
            if pong is None:
                pong = self._pings[payload] = threading.Event()
                self._protocol.send_ping(payload)
                self._outbox.add(self._protocol.data_to_send())
        return pong

    def _pong_received(self, payload: bytes) -> None:
        # A pong acknowledges its ping and every ping sent before it.
        if payload not in self._pings:
            return
        for key in list(self._pings):
            self._pings.pop(key).set()
            if key == payload:
                break

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection with a close frame, then drop it."""
        with self._lock:
            self._fail_locked(code, reason)
        self._flush(block=False)
        self._abort()

    def _fail_locked(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): queue a close frame, stop reading."""
        if not self._input_done:
            self._protocol.fail(code, reason)
            self._outbox.add(self._protocol.data_to_send())
            self._failed = True
            self._input_done = True
            self._fragments = []
            self._notify_input()

    def _abort(self) -> None:
        """Drop the TCP connection; wakes every thread blocked on the socket."""
        with self._lock:
            if not self._input_done:
                self._input_done = True
                if self._protocol.close_sent is None:
                    self._protocol.state = State.CLOSED
            self._notify_input()
            self._update_watch()
        shutdown(self._sock, socket.SHUT_RDWR)

    def _finish(self) -> None:
        """The handler is done: stop all background work and hand the socket back.

        Every byte queued (a close frame, typically) is on the wire, or the peer
        did not take it within ``close_timeout`` and the connection is dropped;
        either way the write side is shut down before this returns, because the
        server writes its own response to the socket right after.
        """
        if self._keepalive is not None:
            self._keepalive.cancel()
        with self._lock:
            self._finished = True
            self._input_done = True
            self._update_watch()
        # What is queued (a close frame, typically) gets close_timeout to go
        # out, even to a peer that reads slowly.
        try:
            drained = self._outbox.drain(self._options.close_timeout)
        except OSError:
            self._abort()  # The peer is gone; there is nothing left to say.
            drained = True
        if not drained:
            # The peer stopped reading: drop it. A write waiting on its socket
            # now fails at once and lets go of the outbox.
            shutdown(self._sock, socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self._outbox.drain(self._options.close_timeout)
        # The server writes its own response next, and that write must fail
        # the way every server takes for a client that left: a broken pipe.
        # A TLS socket's own shutdown() also drops its TLS layer, so the write
        # fails as a plain one instead of as a TLS error, which servers log.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)
        try:
            self._sock.settimeout(self._sock_timeout)
        except OSError:
            pass

    # -- state --------------------------------------------------------------

    def _wait_for_input(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait, with ``_lock`` held, until ``predicate()`` or ``timeout``; return it."""
        if self._input_ready is None:
            self._input_ready = threading.Condition(self._lock)
        self._waiters += 1
        try:
            return self._input_ready.wait_for(predicate, timeout)
        finally:
            self._waiters -= 1

    def _notify_input(self) -> None:
        # Called with _lock held, after a message or the end of input.
        if self._input_ready is not None and self._waiters:
            self._input_ready.notify_all()

    def _rearm(self) -> None:
        # Reactor thread, a tick after a receive() returned.
        with self._lock:
            self._rearm_pending = False
            self._update_watch()

    def _update_watch(self) -> None:
        # Called with _lock held: have the reactor read this socket exactly
        # when nobody else does and there is room for more messages, and
        # finish writes that would have blocked.
        events = 0
        if not (self._finished or self._direct or self._input_done or self._rearm_pending) and (
            len(self._inbox) < _INBOX_HIGH_WATER or self._protocol.state is not State.OPEN
        ):
            events |= EVENT_READ
        if self._outbox.stalled:
            events |= EVENT_WRITE
        if events != self._events:
            self._events = events
            self._reactor.set_events(self._sock, events, self._on_ready)

    def _close_info(self) -> tuple[int, str]:
        received = self._protocol.close_rcvd
        if received is not None:
            return received.code, received.reason
        sent = self._protocol.close_sent
        if sent is not None and self._failed:
            return sent.code, sent.reason
        return 1006, ""

    def _closed_error(self) -> ConnectionClosed:
        code, reason = self._close_info()
        return ConnectionClosed(code, reason)


def iterate(receive: Callable[[], Message | None]) -> Iterator[Message]:
    """Yield what ``receive()`` returns until a close; quietly on a normal close code."""
    while True:
        try:
            message = receive()
        except ConnectionClosed as exc:
            if exc.code in NORMAL_CLOSE_CODES:
                return
            raise
        assert message is not None
        yield message


def check_close(code: int, reason: str) -> None:
    """Raise ValueError unless ``code`` and ``reason`` fit in a close frame."""
    if not isinstance(code, int) or isinstance(code, bool):
        raise ValueError(f"close code must be an int, not {code!r}")
    if not (code in _SENDABLE_CODES or 3000 <= code <= 4999):
        raise ValueError(
            f"close code {code} may not be sent; use 1000-1003, 1007-1014 or 3000-4999"
        )
    if len(reason.encode()) > 123:
        raise ValueError("close reason is longer than 123 bytes in UTF-8")
    Close(code, reason).serialize()


_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})


def _recv(sock: socket.socket) -> bytes | None:
    """Read what the socket has: bytes, ``b""`` at end of stream, ``None`` if nothing yet."""
    try:
        return sock.recv(_RECV_SIZE)
    except NOT_YET:
        return None
    except OSError:
        return b""  # Reset or shut down: the stream is over.
