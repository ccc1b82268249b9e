"""One open WebSocket connection's I/O: the engine behind :class:`~flask_duplex.WebSocket`.

The engine ties together the parts that each own one concern:

* ``wire.py``: the websockets protocol, which turns bytes into frames and
  frames into bytes, and does no I/O. It is not thread-safe: every call into
  it happens under the engine's lock (``_lock``), which is never held across a
  wait.
* ``assembly.py``: the inbox, where frames become messages that wait for
  ``receive()``, bounded in count and size.
* ``reading.py``: who reads the socket (the handler in ``receive()``, or the
  reactor), and the handover between them.
* ``outbox.py``: who writes, in order, one writer at a time, without ever
  making the reactor or a broadcast wait on a slow peer.
* ``lifecycle.py``: the rules of the connection's life: every state
  transition and every close code. The engine reports each event to it (a
  close, a failure, what the parser saw, the end of the stream) and carries
  out the actions it answers with in one method, :meth:`Engine._apply`.
* ``keepalive.py``: pings and their deadline.

What the engine itself does is the I/O around those rules:

* The peer closes: websockets queues the echo of its close frame and the end
  of the write side; the lifecycle ends input, and ``receive()`` raises
  :class:`ConnectionClosed` once the messages that came before the close are
  returned.
* This side closes (``close()``, the handler returning, a shutdown's 1001):
  the close frame is queued, and data frames that still come are dropped.
* This side fails the connection (a keepalive timeout, a client too slow for
  broadcasts): the close frame is queued, nothing more is read.
* Every path out of OPEN arms one deadline, ``close_timeout``: when it
  passes, the TCP connection is dropped whatever the peer does. That is what
  frees a sender blocked on a peer that stopped reading, and it is the only
  timer that can drop a connection that already said goodbye.
* When the handler has returned, :meth:`Engine.finish` gives what is queued
  ``close_timeout`` to go out, shuts the write side down and hands the socket
  back to the WSGI server. Nothing touches the socket after that.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from types import EllipsisType
from typing import Any

from websockets.frames import Frame, Opcode

from .assembly import Inbox, Message
from .errors import ConnectionClosed
from .keepalive import Keepalive
from .lifecycle import INPUT_ENDED, LEFT_OPEN, SEND, Lifecycle, State
from .options import Options
from .outbox import NOT_YET, Outbox, Outgoing, shutdown_socket
from .pong import Pong
from .reactor import EVENT_READ, EVENT_WRITE, Reactor, Timer
from .reading import RECV_SIZE, Reader, Reading, recv
from .tls import guard
from .wire import SHORT_HEADERS, ServerProtocol, frame_header

__all__ = ["Engine"]

logger = logging.getLogger("flask_duplex")

_OPEN, _CLOSING, _FINISHED = State.OPEN, State.CLOSING, State.FINISHED
_REACTOR = Reader.REACTOR
_PONG = Opcode.PONG
#: What :meth:`Engine._take_turn` answers when the calling thread became the reader.
_READ_HERE = object()
# From this size a message's frame goes out as header and payload in one
# gathered write, rather than joined into one bytes object first (a copy).
_GATHER_FROM = 16384


class Engine:
    """The I/O of one accepted connection; see the module's docstring.

    The :class:`~flask_duplex.WebSocket` a handler holds calls it; so do the
    hub (through the WebSocket) and keepalive (through :class:`Pinged`).
    """

    __slots__ = (
        "_deadline",
        "_events",
        "_inbox",
        "_input_ready",
        "_keepalive",
        "_lifecycle",
        "_lock",
        "_name",
        "_options",
        "_outbox",
        "_peer",
        "_pings",
        "_protocol",
        "_reactor",
        "_reading",
        "_resumed_at",
        "_sock",
        "_sock_timeout",
        "_tls",
        "_waiters",
    )

    def __init__(
        self,
        protocol: ServerProtocol,
        sock: socket.socket,
        *,
        options: Options,
        lifecycle: Lifecycle,
        reactor: Reactor,
        response: bytes,
        prefetched: bytes = b"",
        sock_timeout: float | EllipsisType | None = ...,
        name: str = "",
        peer: str | None = None,
    ) -> None:
        """Open the connection: queue the handshake ``response`` (the 101), start reading.

        ``response`` is empty when the server adapter wrote the 101 itself.

        ``prefetched`` holds bytes the server read past the request head;
        ``sock_timeout`` is the timeout to give the socket back with (``...``:
        the one it has now); ``name`` (the route) and ``peer`` (the client's
        address) name the connection in logs.
        """
        # Kept apart and joined when a log needs them: both are shared with
        # the route and the environ, where a joined name would be a string per
        # connection.
        self._name = name
        self._peer = peer
        self._protocol = protocol
        guarded = guard(sock)  # A TLS socket: one TLS call at a time (see tls.py).
        self._tls = guarded is not sock
        sock = self._sock = guarded
        self._options = options
        self._lifecycle = lifecycle
        self._reactor = reactor
        self._lock = reactor.short_lock()  # Never held across a wait.
        # Made by the first thread that waits for input (see _wait_for).
        self._input_ready: threading.Condition | None = None
        self._waiters = 0  # threads waiting on _input_ready: notify only if any
        # The outbox and the reading state call back through this engine, not
        # through bound methods, which would cost every connection 64 bytes each.
        self._outbox = Outbox(sock, self._lock, reactor.wait, self)
        # Made at the first message (see _made_inbox): until then, one empty inbox for all.
        self._inbox = _NO_MESSAGES
        self._reading = Reading(reactor, self, reactor.handlers_read)
        self._pings: dict[bytes, Pong] | None = None  # Made by the first ping.
        self._events = 0  # what the reactor watches the socket for
        self._deadline: Timer | None = None  # close_timeout, once out of OPEN
        self._keepalive: Keepalive | None = None
        self._resumed_at = 0.0  # when reading last went on after the inbox was full

        current_timeout = sock.gettimeout()
        self._sock_timeout = current_timeout if sock_timeout is ... else sock_timeout
        if current_timeout != 0.0:
            sock.setblocking(False)
        # Messages are written whole; waiting to coalesce them (Nagle) only adds
        # up to a delayed-ACK timeout (40 ms) to each small one. (Asking beats
        # reading sock.family, an enum conversion: frames on every thread's stack.)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # Not TCP, e.g. a Unix socket.
        protocol.sink = self
        with self._lock:
            lifecycle.accept()
            if response:  # Empty when the server adapter wrote it.
                self._outbox.add([response])
            if prefetched:
                self._feed(prefetched)
            self._update_watch()
        self._flush(block=False)
        with self._lock:
            self._reading.start()
        if not reactor.handlers_read:
            self._start_keepalive()
        # Else at the reactor's first tick (rearm): a connection that ends
        # within it, as many do, never schedules a ping.

    # -- what the WebSocket calls ---------------------------------------------

    def receive(self, timeout: float | None) -> Message | None:
        """The next message, or ``None`` after ``timeout`` seconds.

        Raises:
            ConnectionClosed: No more messages: the connection is closed and
                every message that came before the close was returned.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        # The function, not a bound method: this frame waits while the connection
        # is idle, and a bound method would cost each idle connection 64 bytes.
        take = _TAKE_MESSAGE
        with self._lock:
            # The echo loop's case, first and without a call: nothing waiting,
            # input open, and this thread may read (what _take_turn would find).
            if not self._inbox.count and self._lifecycle.input_open and self._reading.claim():
                if self._events & EVENT_READ:  # The reactor was reading it.
                    self._update_watch()
                turn = _READ_HERE
            else:
                turn = self._take_turn(take, self._message_or_turn, deadline)
        if turn is not _READ_HERE:
            if turn.__class__ is ConnectionClosed:
                raise turn
            return turn  # type: ignore[return-value]
        # This thread reads the socket (_read_here, inline: once per message).
        # (No typing.cast() on this path: it is a Python call per message.)
        try:
            return self._read_directly(deadline, take)  # type: ignore[return-value]
        finally:
            with self._lock:
                self._reading.release()
                if self._waiters:  # Another thread may wait to read.
                    self._notify_input()

    def send(self, data: bytes | bytearray | memoryview, text: bool) -> None:
        """Send one message; return once it is written or queued behind another writer.

        Raises:
            ConnectionClosed: The connection is not open, or it failed before
                the message went out.
        """
        with self._lock:
            if self._lifecycle.state is not _OPEN:
                raise self._closed_error()
            protocol = self._protocol
            payload = None  # Written after chunks[0], the header, without joining them.
            if protocol.extensions:
                if text:
                    protocol.send_text(data)
                else:
                    protocol.send_binary(data)
                chunks = protocol.data_to_send()
                claimed = self._outbox.offer(chunks)
            elif len(data) >= _GATHER_FROM and self._outbox.claim():
                chunks, payload, claimed = [frame_header(len(data), text)], data, True
            else:
                # The frame websockets would build, in one piece, without its Frame.
                size = len(data)
                header = SHORT_HEADERS[text][size] if size < 126 else frame_header(size, text)
                chunks = [header + data]
                claimed = self._outbox.offer(chunks)
            drops = self._outbox.drops
        self._write(chunks, claimed, block=True, payload=payload)
        if self._outbox.drops != drops:
            raise self._closed_error()  # What was queued behind a failed write is gone.

    def send_nowait(self, message: Outgoing) -> None:
        """Queue a message without ever waiting on the peer (broadcasts).

        A peer that stopped reading, with ``max_queue`` messages or
        ``max_queue_bytes`` waiting for it, is closed with 1013; what waits is
        dropped and the close frame takes its place. Nothing happens on a
        connection that is not open.
        """
        if not self._protocol.extensions and not self._tls:
            # The usual case: nobody else writes the socket now, and the frame
            # goes out from here (Outbox.write_if_idle). Not on TLS: there a
            # send takes a cooperative lock, which must not be waited for
            # while the connection's lock is held.
            outbox = self._outbox
            with self._lock:
                if self._lifecycle.state is not _OPEN:
                    return
                try:
                    written = outbox.write_if_idle(message.frame)
                except OSError:
                    written = None
            if written is None:
                self._write_failed(block=False)
                return
            if written:
                if outbox.size:  # The socket took part of it: the rest goes from the outbox.
                    self._flush(block=False)
                return
        self._queue_nowait(message)

    def _queue_nowait(self, message: Outgoing) -> None:
        """Queue ``message`` behind what waits, or write it (send_nowait's general case)."""
        overflowed = False
        with self._lock:
            if self._lifecycle.state is not _OPEN:
                return
            options = self._options
            if self._outbox.overflowing(options.max_queue, options.max_queue_bytes):
                self._outbox.drop_waiting()
                self._apply(self._lifecycle.fail(1013, "too slow: outbound queue full"))
                # Wake a handler blocked reading this socket: nothing more is read.
                shutdown_socket(self._sock, socket.SHUT_RD)
                overflowed = True
                chunks: list[bytes] = []
                claimed = False  # The close frame is queued.
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
        if overflowed:
            _log_overflow(self.name, self._options)
        self._write(chunks, claimed, block=False)

    def ping(self, payload: bytes) -> Pong:
        """Send a ping; the :class:`Pong` is set when its pong arrives.

        Raises:
            ConnectionClosed: The connection is not open.
        """
        pong = self._queue_ping(payload)
        self._flush(block=True)
        return pong

    def close(self, code: int, reason: str) -> None:
        """Close, and wait up to ``close_timeout`` for the peer's close frame.

        Does nothing on a connection that is not open; never raises. The
        calling thread reads the peer's answer itself when it can, as
        ``receive()`` does.
        """
        self._start_close(code, reason, reactor_reads=not self._reactor.handlers_read)
        deadline = time.monotonic() + self._options.close_timeout
        with self._lock:
            turn = self._take_turn(_INPUT_IS_OVER, self._end_or_turn, deadline)
        if turn is _READ_HERE:
            turn = self._read_here(deadline, _INPUT_IS_OVER)
        if turn is not True:  # The peer did not answer in time.
            self.abort()

    def close_nowait(self, code: int, reason: str) -> None:
        """Start the closing handshake; return without waiting for the peer."""
        self._start_close(code, reason, reactor_reads=True)

    def _start_close(self, code: int, reason: str, reactor_reads: bool) -> None:
        with self._lock:
            actions = self._lifecycle.close(code, reason)
            if not actions:
                return  # Not open: closing, closed, or never accepted.
            self._apply(actions)
            if reactor_reads:
                # The peer's answer must be read now, not at the reactor's next tick.
                self._reading.take_back()
            # Data frames are dropped from now on, so reading goes on even if
            # the inbox is full: the peer's close frame may be behind them.
            if self._protocol.parse_held:
                self._protocol.resume_parsing()
                self._after_input()
            self._update_watch()
        self._flush(block=False)

    def abort(self) -> None:
        """Drop the TCP connection now; wakes every thread blocked on the socket."""
        with self._lock:
            if self._lifecycle.state is _FINISHED:
                return  # The socket is the server's again.
            self._apply(self._lifecycle.input_ended())
            # Under the lock, so that finish() cannot hand the socket back meanwhile.
            shutdown_socket(self._sock, socket.SHUT_RDWR)

    def finish(self) -> None:
        """The handler is done: end the connection and give the socket back to the server.

        Every byte queued (a close frame, typically) is on the wire, or the
        peer did not take it within ``close_timeout`` and the connection is
        dropped; either way the write side is shut down before this returns,
        because the server writes its own response to the socket right after.
        """
        if self._keepalive is not None:
            self._keepalive.cancel()
        with self._lock:
            self._apply(self._lifecycle.input_ended())
        timeout = self._options.close_timeout
        try:
            drained = self._outbox.drain(timeout)
        except OSError:
            self.abort()  # The peer is gone; there is nothing left to say.
            drained = True
        if not drained:
            # The peer stopped reading: drop it. A write waiting on its socket
            # now fails at once and lets go of the outbox.
            shutdown_socket(self._sock, socket.SHUT_RDWR)
            try:
                self._outbox.drain(timeout)
            except OSError:
                pass
        # The server writes its own response next, and that write must fail
        # the way every server takes for a client that left: a broken pipe.
        # A TLS socket's own shutdown() also drops its TLS layer, so the write
        # fails as a plain one instead of as a TLS error, which servers log.
        if self._tls or not self._outbox.write_shut:
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if self._sock_timeout != 0.0:
            try:
                self._sock.settimeout(self._sock_timeout)
            except OSError:
                pass
        with self._lock:
            self._lifecycle.finish()
            if self._deadline is not None:
                self._deadline.cancel()
            self._update_watch()

    # -- what keepalive calls (keepalive.Pinged) ---------------------------------

    def keepalive_ping(self, payload: bytes) -> Pong | None:
        try:
            pong = self._queue_ping(payload)
        except ConnectionClosed:
            return None
        self._flush(block=False)
        return pong

    def keepalive_failed(self) -> None:
        with self._lock:
            self._apply(self._lifecycle.fail(1011, "keepalive ping timeout"))
        self._flush(block=False)
        self.abort()

    def input_paused_within(self, seconds: float) -> bool:
        """Whether reading waits for room in the inbox, or did within ``seconds``."""
        if self._protocol.parse_held:
            return True
        return time.monotonic() - self._resumed_at < seconds

    @property
    def name(self) -> str:
        """The connection's name in logs: its route, and the client's address."""
        return self._name if self._peer is None else f"{self._name} ({self._peer})"

    @property
    def lock(self) -> Any:
        """The connection's lock: held for short steps that never wait (see the module)."""
        return self._lock

    @property
    def is_open(self) -> bool:
        return self._lifecycle.state is _OPEN

    # -- what the protocol calls while it parses (wire.FrameSink) ----------------
    # Always with _lock held: parsing happens only in _feed and resume_parsing.

    def on_data(self, frame: Frame) -> None:
        if self._lifecycle.state is _OPEN:
            # Invalid UTF-8 raises UnicodeDecodeError, which websockets' parser
            # turns into a 1007 failure.
            inbox = self._inbox
            if inbox is _NO_MESSAGES:
                inbox = self._made_inbox()
            inbox.add(frame)
            if inbox.full:
                self._protocol.hold_parsing()
        # Else a close frame went out: the peer's data is dropped, not queued.

    def on_message(self, message: Message) -> None:
        # The fast path's (wire.ServerProtocol.receive_simple): the protocol is open.
        inbox = self._inbox
        if inbox is _NO_MESSAGES:
            inbox = self._made_inbox()
        inbox.put(message)
        if inbox.full:
            self._protocol.hold_parsing()

    def _made_inbox(self) -> Inbox:
        # Lock held. A connection that has received nothing holds no inbox of
        # its own (96 bytes); _NO_MESSAGES is only ever read.
        options = self._options
        inbox = self._inbox = Inbox(options.max_inbox, options.max_inbox_bytes)
        return inbox

    def on_ping(self, data: bytes) -> None:
        pong = Frame(_PONG, data).serialize(mask=False, extensions=self._protocol.extensions)
        self._outbox.add_pong(pong)

    def on_pong(self, data: bytes) -> None:
        # A pong acknowledges its ping and every ping sent before it.
        pings = self._pings
        if not pings or data not in pings:
            return
        for key in list(pings):
            pings.pop(key).set()
            if key == data:
                break

    # -- reading ----------------------------------------------------------------

    def _read_directly(
        self, deadline: float | None, settle: Callable[[Engine], Any]
    ) -> Message | bool | None:
        """Read the socket on this thread until ``settle(self)`` gives an answer, or the deadline.

        After each read, ``settle(self)`` runs under the lock: ``None`` reads on,
        an exception is raised, anything else is returned. Returns ``None``
        when the deadline passes first.
        """
        sock = self._sock
        outbox = self._outbox
        raw = outbox.raw  # What reads call (see green.raw_socket); waits are on sock.
        wait_for_socket = self._reactor.wait
        more = False  # The last read filled the buffer: more is likely waiting.
        looked = False  # The socket was asked at least once (receive(timeout=0) reads too).
        while True:
            if deadline is None:
                wait = None
            else:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    if looked:
                        return None
                    wait = 0.0
            looked = True
            if not more and not wait_for_socket(sock, False, wait):
                continue
            try:  # reading.recv(), inline: once per message.
                data = raw.recv(RECV_SIZE)
            except NOT_YET:
                more = False
                continue
            except OSError:
                data = b""  # Reset or shut down: the stream is over.
            more = len(data) == RECV_SIZE
            with self._lock:
                self._feed(data)
                answer = settle(self)
            # Never wait here: receive() must keep its timeout even while a
            # sender waits on a peer that does not read. (_flush, inline: once per read.)
            try:
                outbox.flush(False)
            except OSError:
                self._write_failed(block=False)
            if answer is not None:
                if isinstance(answer, ConnectionClosed):
                    raise answer
                return answer  # type: ignore[no-any-return]

    def _take_turn(
        self, settle: Callable[[Engine], Any], wakeup: Callable[[], bool], deadline: float | None
    ) -> Any:
        """Wait for ``settle(self)`` to answer, or to become the socket's reader (lock held).

        The one place where a thread that needs input (``receive()``, and
        ``close()`` waiting for the peer's answer) either gets it from the
        inbox, becomes the reader (``reading.py`` says when it may), or waits
        for one of those, woken when ``wakeup()`` may have changed.

        Returns:
            What ``settle()`` answered; :data:`_READ_HERE` once this thread
            reads the socket (it must then call :meth:`_read_here`); ``None``
            when the deadline passed first.
        """
        while True:
            # settle() can only answer with a message waiting or input over:
            # in an echo loop neither is true, and this saves a call per message.
            if self._inbox.count or not self._lifecycle.input_open:
                answer = settle(self)
                if answer is not None:
                    return answer
            if self._reading.claim():
                if self._events & EVENT_READ:  # The reactor was reading it.
                    self._update_watch()
                return _READ_HERE
            # The reactor reads (eventlet), or another thread does: wait for
            # its messages, or for the socket to be free to read here.
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return None
            self._wait_for(wakeup, wait)

    def _read_here(self, deadline: float | None, settle: Callable[[Engine], Any]) -> Any:
        """Read on this thread, the socket's reader, then hand reading back (see reading.py)."""
        try:
            return self._read_directly(deadline, settle)
        except ConnectionClosed as exc:
            return exc
        finally:
            with self._lock:
                self._reading.release()
                if self._waiters:  # Another thread may wait to read.
                    self._notify_input()

    def _take_message(self) -> Message | ConnectionClosed | None:
        # Lock held: the next message, the end, or None to read on.
        if self._inbox.count:
            return self._pop()
        return None if self._lifecycle.input_open else self._closed_error()

    def _input_is_over(self) -> bool | None:
        # Lock held.
        return None if self._lifecycle.input_open else True

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
            if self._reading.reader is not _REACTOR or not self._lifecycle.input_open:
                return
            data = recv(self._outbox.raw)
            if data is None:
                return
            self._feed(data)
            self._update_watch()
        self._flush(block=False)

    def _feed(self, data: bytes) -> None:
        # Lock held.
        try:
            if data:
                protocol = self._protocol
                if not protocol.receive_simple(data):
                    protocol.receive_data(data)
            else:
                self._protocol.receive_eof()
        except EOFError:
            return  # Data that raced with the end of the stream.
        self._after_input()

    def _after_input(self) -> None:
        """Queue what the protocol answered; follow the lifecycle (lock held)."""
        protocol = self._protocol
        if protocol.writes:  # Usually nothing: no call to data_to_send(), no new list.
            self._outbox.add(protocol.data_to_send())
        lifecycle = self._lifecycle
        if lifecycle.input_open:
            ended = lifecycle.data_received()
            if ended:
                self._apply(ended)
        if self._waiters:
            self._notify_input()

    def _pop(self) -> Message:
        # Lock held, inbox not empty.
        inbox = self._inbox
        was_full = inbox.full
        message = inbox.pop()
        if was_full and not inbox.full:
            self._resumed_at = time.monotonic()
            if self._protocol.parse_held:
                self._protocol.resume_parsing()
                self._after_input()
            self._update_watch()
        return message

    def _end_or_turn(self) -> bool:
        # A waiting close() has something to do: input ended, or the socket is free.
        return not self._lifecycle.input_open or self._reading.may_claim()

    def _message_or_turn(self) -> bool:
        # A waiting receive() has something to do: a message, the end of
        # input, or the socket free to read.
        return bool(self._inbox.count) or self._end_or_turn()

    # -- writing ------------------------------------------------------------

    def _flush(self, block: bool) -> None:
        """Write the outbox; with ``block=False``, never wait on the socket."""
        try:
            self._outbox.flush(block)
        except OSError:
            self._write_failed(block)

    def _write(
        self,
        chunks: list[bytes],
        claimed: bool,
        block: bool,
        payload: bytes | bytearray | memoryview | None = None,
    ) -> None:
        """Write after :meth:`Outbox.offer`: the claimed frame, or what is queued."""
        if not claimed:
            self._flush(block)
            return
        try:
            self._outbox.write_claimed(chunks[0], block, payload)
        except OSError:
            self._write_failed(block)

    def _write_failed(self, block: bool) -> None:
        self.abort()
        if block:
            raise self._closed_error() from None

    def _queue_ping(self, payload: bytes) -> Pong:
        with self._lock:
            if self._lifecycle.state is not _OPEN:
                raise self._closed_error()
            if self._pings is None:
                self._pings = {}
            pong = self._pings.get(payload)
            if pong is None:
                pong = self._pings[payload] = Pong()
                self._protocol.send_ping(payload)
                self._outbox.add(self._protocol.data_to_send())
        return pong

    # -- ending -------------------------------------------------------------

    def _apply(self, actions: int) -> None:
        """Carry out what the lifecycle decided (lock held): the one place its actions act."""
        if actions & SEND:
            chunks = self._protocol.data_to_send()
            if chunks:
                self._outbox.add(chunks)
        if actions & LEFT_OPEN:
            if self._keepalive is not None:
                self._keepalive.cancel()
            self._deadline = self._reactor.call_later(self._options.close_timeout, self._expire)
        if actions & INPUT_ENDED:
            if self._pings:
                error = self._closed_error()
                for pong in self._pings.values():
                    pong.fail(error)
                self._pings.clear()
            self._notify_input()
            self._update_watch()

    def _expire(self) -> None:
        # Reactor thread, close_timeout after the connection left OPEN.
        if self._lifecycle.state is not _FINISHED:
            self.abort()

    # -- state --------------------------------------------------------------

    def _wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait, with ``_lock`` held, until ``predicate()`` or ``timeout``; return it."""
        if self._input_ready is None:
            self._input_ready = threading.Condition(self._lock)
        self._waiters += 1
        try:
            return self._input_ready.wait_for(predicate, timeout)
        finally:
            self._waiters -= 1

    def _notify_input(self) -> None:
        # Lock held, after a message or a change of state.
        if self._waiters:
            assert self._input_ready is not None
            self._input_ready.notify_all()

    def stall_changed(self) -> None:
        # outbox.StallWatcher, lock held: the reactor watches for writing, or stops.
        self._update_watch()

    def rearm(self) -> None:
        # reading.Rearmed: reactor thread, a tick after the connection opened or
        # a receive() returned.
        with self._lock:
            self._reading.tick()
            self._update_watch()
        if self._keepalive is None:
            self._start_keepalive()

    def _start_keepalive(self) -> None:
        options = self._options
        if options.ping_interval is not None and self._lifecycle.state is _OPEN:
            self._keepalive = Keepalive(
                self, options.ping_interval, options.ping_timeout, self._reactor
            )

    def _update_watch(self) -> None:
        # Lock held: have the reactor read the socket exactly when it is the
        # reader and there is room, and finish writes that would have blocked.
        state = self._lifecycle.state
        events = 0
        if state is not _FINISHED:
            if self._reading.reader is _REACTOR and (
                state is _CLOSING or (state is _OPEN and not self._inbox.full)
            ):
                events = EVENT_READ
            if self._outbox.stalled:
                events |= EVENT_WRITE
        if events != self._events:
            self._events = events
            self._reactor.set_events(self._sock, events, self._on_ready)

    def _closed_error(self) -> ConnectionClosed:
        code, reason = self._lifecycle.close_info() or (1006, "")
        return ConnectionClosed(code, reason)


#: The inbox of every connection that has received nothing yet: empty, never added to.
_NO_MESSAGES = Inbox(1, 1)
_TAKE_MESSAGE = Engine._take_message
_INPUT_IS_OVER = Engine._input_is_over


def _log_overflow(name: str, options: Options) -> None:
    logger.warning(
        "flask-duplex: closed connection %s with 1013: it stopped reading, and %d messages "
        "or %d bytes were waiting for it (max_queue, max_queue_bytes)",
        name,
        options.max_queue,
        options.max_queue_bytes,
    )
