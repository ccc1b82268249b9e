"""Writing one connection's frames to its socket: the outbox, and who writes it.

The protocol serializes frames under the connection's lock and adds them to an
:class:`Outbox` under the same lock. Whoever holds the outbox's write lock
writes it to the socket in order, so a message reaches the wire whole even when
several threads send at once, and frames are never interleaved. The one write
without the write lock is a broadcast's to an idle outbox
(:meth:`Outbox.write_if_idle`): nothing queued and nobody writing, it sends
under the connection's lock, which every writer takes before its first write.

Who waits, and on what
----------------------
A blocking sender (a handler calling ``send()``) waits for the write lock, and
then, if the peer reads slowly, on the socket itself. A non-blocking writer
(the reactor, or a broadcast) never waits: when the socket fills it keeps the
write lock and marks the outbox *stalled*; the connection then asks the reactor
to watch the socket for writing, and the reactor finishes the job and lets go
of the lock once the outbox is empty. Blocking senders meanwhile wait on the
lock, never on a socket another writer is using.

While the socket is full (stalled, or a blocking writer waiting on it), what
queues behind counts toward the connection's ``max_queue``: see
:meth:`Outbox.overflowing`.

Pongs
-----
While the socket takes what is written, every ping gets its pong. Once it is
full (the peer is not reading), pongs no longer queue: the outbox has one
slot for the pong to send next (:meth:`Outbox.add_pong`), and a newer ping's
pong replaces an unsent one (RFC 6455 5.5.3 allows answering only the latest
ping), so a peer that floods pings and never reads costs one pong. The writer
sends it at the next frame boundary.

What is dropped
---------------
When the socket fails, or a slow client's waiting messages are dropped for a
1013, :attr:`Outbox.drops` goes up: a sender that saw it change while its
message waited knows the message did not go out.

Partial frames
--------------
A write can stop in the middle of a frame. The rest of that frame goes back to
the front of the outbox and is marked (``_front_partial``), so that dropping
what waits for a slow client keeps it: the peer must get the whole frame before
the close frame that follows.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any, Protocol

from .green import Wait, raw_socket
from .tls import is_tls
from .wire import frame_header

__all__ = ["NOT_YET", "Outbox", "Outgoing", "StallWatcher", "shutdown_socket"]

# What a non-blocking socket raises for "not now, try again when ready". A TLS
# socket raises the ssl ones, for a record only partly arrived or a write that
# must be repeated with the same bytes (the outbox keeps them, in order).
NOT_YET = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class Outgoing:
    """A message on its way to many connections: encoded and framed once.

    A connection that negotiated no extension sends :attr:`frame` as it is;
    one that compresses frames :attr:`payload` with its own compressor.
    """

    __slots__ = ("frame", "payload", "text")

    def __init__(self, message: str | bytes) -> None:
        self.text = isinstance(message, str)
        self.payload = message.encode() if isinstance(message, str) else bytes(message)
        self.frame = frame_header(len(self.payload), self.text) + self.payload


class StallWatcher(Protocol):
    """The connection, as its :class:`Outbox` tells it that writing stalled or went on."""

    def stall_changed(self) -> None:
        """:attr:`Outbox.stalled` changed (lock held)."""


class Outbox:
    """The bytes waiting to go out on one socket, written in order by one writer at a time.

    ``lock`` is the connection's lock: the methods documented "lock held" must
    be called with it held; the others take it themselves.
    ``watcher.stall_changed()`` is called, lock held, whenever :attr:`stalled`
    changes, so that the connection can have the reactor watch the socket for
    writing.

    The writing methods raise ``OSError`` when the socket fails; the outbox is
    then empty and its write lock free.
    """

    __slots__ = (
        "_chunks",
        "_front_partial",
        "_gather",
        "_lock",
        "_pong",
        "_sock",
        "_socket_full",
        "_wait",
        "_watcher",
        "_write_lock",
        "drops",
        "raw",
        "size",
        "stalled",
        "write_shut",
    )

    def __init__(
        self,
        sock: socket.socket,
        lock: Any,
        wait: Wait,
        watcher: StallWatcher,
    ) -> None:
        self._sock = sock
        #: What sends (and the engine's reads) call: see :func:`~flask_duplex.green.raw_socket`.
        self.raw = raw = raw_socket(sock)
        # A large frame's header and payload go out in one sendmsg() (never over
        # TLS, whose sockets have no gathered write), not joined first.
        self._gather = not is_tls(sock) and hasattr(raw, "sendmsg")
        self._lock = lock
        self._wait = wait
        self._watcher = watcher
        # One empty tuple for every outbox with nothing queued (most of them,
        # most of the time): a list of its own would cost each idle connection
        # 56 bytes. _queue() makes the list when something is queued.
        self._chunks: list[bytes] | tuple[()] = ()
        #: Bytes queued in ``_chunks``.
        self.size = 0
        self._pong: bytes | None = None
        #: How many times queued bytes were dropped (see the module's docstring).
        self.drops = 0
        #: The end-of-stream marker was written: the socket's write side is shut down.
        self.write_shut = False
        self._write_lock = threading.Lock()
        #: A non-blocking writer filled the socket and left the rest to the reactor.
        self.stalled = False
        self._front_partial = False  # _chunks starts mid-frame
        self._socket_full = False  # a blocking writer waits for the peer to read

    # -- lock held ----------------------------------------------------------

    def add(self, chunks: list[bytes]) -> None:
        """Queue the protocol's output (lock held). ``b""`` marks the end of the stream."""
        if chunks:
            self._queue().extend(chunks)
            self.size += sum(map(len, chunks))

    def _queue(self) -> list[bytes]:
        """The list of what is queued, made if nothing is (lock held)."""
        chunks = self._chunks
        if chunks.__class__ is tuple:
            chunks = self._chunks = []
        return chunks  # type: ignore[return-value]

    def claim(self) -> bool:
        """Claim the writer for one frame, if nothing is queued and nobody writes (lock held)."""
        return not self._chunks and self._pong is None and self._write_lock.acquire(blocking=False)

    def offer(self, chunks: list[bytes]) -> bool:
        """Queue ``chunks``, or claim the writer for them (lock held); True if claimed.

        A lone frame, with nothing queued and nobody writing, is not queued:
        the caller writes it itself with :meth:`write_claimed`, in one send().
        """
        if len(chunks) == 1 and self.claim():
            return True
        self.add(chunks)
        return False

    def write_if_idle(self, frame: bytes) -> bool:
        """Write ``frame`` at once if the outbox is idle (lock held); False if it is not.

        Idle: nothing queued, no pong waiting, and nobody holding the write
        lock. Every other write to the socket happens with the write lock
        held, and a writer that takes it writes only after taking the lock
        this caller holds (:meth:`offer` claims under it; ``_write_out``
        takes it before its first write), so no write can start meanwhile.
        This saves a broadcast taking and releasing the write lock per
        connection. The send never waits: what the socket does not take is
        queued first (marked partial) and the caller flushes it after
        letting go of the lock, as with :meth:`add`.

        Raises:
            OSError: The socket failed; nothing was queued.
        """
        if self._chunks or self._pong is not None or self._write_lock.locked():
            return False
        try:
            sent = self.raw.send(frame)
        except NOT_YET:
            sent = 0
        except OSError:
            self.drops += 1
            raise
        if sent < len(frame):
            self._queue().append(frame[sent:] if sent else frame)
            self.size += len(frame) - sent
            self._front_partial = sent > 0
        return True

    def add_pong(self, frame: bytes) -> None:
        """Queue ``frame``, a pong (lock held).

        While the socket is full (the peer is not reading), the pong takes the
        one pong slot instead, replacing any pong still waiting there.
        """
        if self.stalled or self._socket_full:
            self._pong = frame
        else:
            self._queue().append(frame)
            self.size += len(frame)

    def overflowing(self, max_messages: int, max_bytes: int) -> bool:
        """Whether the socket is full and ``max_messages`` or ``max_bytes`` wait (lock held)."""
        return (self.stalled or self._socket_full) and (
            len(self._chunks) >= max_messages or self.size >= max_bytes
        )

    def drop_waiting(self) -> None:
        """Drop what waits, except the rest of a frame already partly written (lock held)."""
        self._chunks = self._chunks[:1] if self._front_partial else ()
        self.size = len(self._chunks[0]) if self._chunks else 0
        self._pong = None
        self.drops += 1

    # -- writing ------------------------------------------------------------

    def flush(self, block: bool) -> None:
        """Write what is queued; with ``block=False``, never wait on the socket."""
        # An unlocked look is enough: whoever queues flushes after.
        if (self._chunks or self._pong) and self._write_lock.acquire(blocking=block):
            self._write_out(block)
        # Else the holder of the write lock writes what was queued.

    def resume(self) -> None:
        """The socket drained: the reactor goes on with a stalled write."""
        if self.stalled:
            self._write_out(block=False)  # The stalled writer left us the write lock.

    def write_claimed(
        self, frame: bytes, block: bool, payload: bytes | bytearray | memoryview | None = None
    ) -> None:
        """Write ``frame`` after :meth:`offer` (or :meth:`claim`), then anything queued meanwhile.

        With ``payload``, ``frame`` is only the frame's header: the two go out
        in one gathered write (``sendmsg``) rather than joined first, which for
        a large message saves a copy of it. With ``block=False``, what the
        socket does not take now is left to the reactor, as :meth:`flush` does.
        """
        try:
            if payload is None:
                sent = self.raw.send(frame)
            elif self._gather:
                sent = self.raw.sendmsg((frame, payload))
            else:
                sent = self.raw.send(frame + payload)
        except NOT_YET:
            sent = 0
        except OSError:
            self._write_lock.release()
            raise
        size = len(frame) if payload is None else len(frame) + len(payload)
        if sent < size:
            if payload is None:
                rest = frame[sent:]
            elif sent < len(frame):
                rest = frame[sent:] + payload
            else:
                rest = bytes(memoryview(payload)[sent - len(frame) :])
            with self._lock:  # The rest goes first, before what others queued.
                self._queue().insert(0, rest)
                self.size += len(rest)
                self._front_partial = sent > 0
        self._write_out(block)

    def drain(self, timeout: float) -> bool:
        """Write everything queued within ``timeout`` seconds; False if time ran out.

        Never waits on the socket itself: a write that fills it is left to the
        reactor, as with ``flush(block=False)``, and this waits for the
        reactor to finish.
        """
        if not self._chunks and self._pong is None and not self._write_lock.locked():
            return True  # Nothing queued and nobody writing: the usual case.
        deadline = time.monotonic() + timeout
        while self._write_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            self._write_out(block=False)
            with self._lock:
                if not self._chunks and self._pong is None and not self.stalled:
                    return True
        return False

    def _write_out(self, block: bool) -> None:
        """Write the outbox, holding the write lock; release it when the outbox is empty.

        A non-blocking writer that fills the socket keeps the lock and leaves
        the rest to the reactor (see the module's docstring).
        """
        while True:
            with self._lock:
                if not self._chunks and self._pong is None:
                    if self.stalled:
                        self.stalled = False
                        self._watcher.stall_changed()
                    self._write_lock.release()
                    return
                chunks, self._chunks = self._queue(), ()
                self.size = 0
                # What others queue while this writes starts with whole frames.
                partial, self._front_partial = self._front_partial, False
                if self._pong is not None:
                    # At the first frame boundary: after the rest of a partial frame.
                    chunks.insert(1 if partial else 0, self._pong)
                    self._pong = None
            try:
                if b"" in chunks:  # the protocol's end-of-stream marker
                    rest, partial = self._write_chunks(chunks, partial, block)
                else:  # The usual case, a frame fewer (each costs an idle thread's stack).
                    rest, partial = self._send_run(chunks, partial, block)
            except OSError:
                with self._lock:
                    self._chunks = ()
                    self.size = 0
                    self._pong = None
                    self.drops += 1
                    if self.stalled:
                        self.stalled = False
                        self._watcher.stall_changed()
                    self._write_lock.release()
                raise
            if rest:
                with self._lock:
                    self._queue()[:0] = rest
                    self.size += sum(map(len, rest))
                    self._front_partial = partial
                    if not self.stalled:
                        self.stalled = True
                        self._watcher.stall_changed()
                return

    def _write_chunks(
        self, chunks: list[bytes], partial: bool, block: bool
    ) -> tuple[list[bytes], bool]:
        """Write chunks in order; return what could not be written without blocking.

        ``partial`` tells whether the first chunk is the rest of a frame already
        partly on the wire; so does the returned flag, for the returned chunks.
        """
        start = 0
        for index, chunk in enumerate(chunks):
            if chunk:
                continue
            # The protocol's end-of-stream marker: write what comes before it, then shut down.
            rest, rest_partial = self._send_run(chunks[start:index], partial and start == 0, block)
            if rest:
                return [*rest, *chunks[index:]], rest_partial
            shutdown_socket(self._sock, socket.SHUT_WR)
            self.write_shut = True
            start = index + 1
        return self._send_run(chunks[start:], partial and start == 0, block)

    def _send_run(
        self, chunks: list[bytes], partial: bool, block: bool
    ) -> tuple[list[bytes], bool]:
        if not chunks:
            return [], False
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:  # Usually the socket takes it all at once.
            sent = self.raw.send(data)
        except NOT_YET:
            sent = 0
        if sent < len(data):
            sent += _send_all(self._sock, memoryview(data)[sent:], None)
        if sent < len(data) and block:
            # The socket is full: the peer is not keeping up. While this
            # thread waits, broadcasts queueing behind it count toward max_queue.
            self._socket_full = True
            try:
                sent += _send_all(self._sock, memoryview(data)[sent:], self._wait)
            finally:
                self._socket_full = False
        if sent == len(data):
            return [], False
        # Find the frame the write stopped in.
        for index, chunk in enumerate(chunks):
            if sent < len(chunk):
                return [chunk[sent:], *chunks[index + 1 :]], sent > 0 or (partial and index == 0)
            sent -= len(chunk)
        raise AssertionError("unreachable")


def _send_all(sock: socket.socket, data: bytes | memoryview, wait: Wait | None) -> int:
    """Send ``data``; return how many bytes went (all of them unless ``wait`` is None)."""
    view = memoryview(data)
    total = 0
    while total < len(data):
        try:
            sent = sock.send(view[total:])
        except NOT_YET:
            sent = 0
        if sent:
            total += sent
            continue
        # Nothing went. gevent's TLS sockets say so by returning 0 instead of raising.
        if wait is None:
            return total
        wait(sock, True, None)
    return total


def shutdown_socket(sock: socket.socket, how: int) -> None:
    """Shut down the TCP connection under ``sock``, TLS or not; ignore a dead socket."""
    try:
        if is_tls(sock):
            # A TLS socket's own shutdown() also drops its TLS state, and any
            # later read or write would then carry plain bytes. Shut the TCP
            # connection down under it instead.
            raw = socket.socket(fileno=sock.fileno())
            try:
                raw.shutdown(how)
            finally:
                raw.detach()
        else:
            sock.shutdown(how)
    except OSError:
        pass  # Already shut down, or the peer reset the connection.
