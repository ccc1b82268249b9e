"""One background thread per process that watches sockets and runs timers.

A connection's socket is read by one of two parties, never both at once (see
``reading.py``, which owns the handover between them): the handler's own thread
while it waits in ``receive()``, or this reactor while the handler is busy
elsewhere. The reactor is what answers pings, completes closing handshakes and
sends keepalive pings for every connection whose handler is not reading, with a
single thread for the whole process instead of one per connection.

Under gevent or eventlet with monkey-patching, ``threading`` and ``selectors``
are cooperative, so the same code runs as one greenlet.
"""

from __future__ import annotations

import collections
import heapq
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable

from . import green
from .green import Wait

__all__ = ["Reactor", "Timer", "current_reactor", "get_reactor"]

logger = logging.getLogger("flask_duplex")

#: How long a socket may go unwatched after its handler stopped reading:
#: pings and closes sent meanwhile wait at most this long for an answer.
REARM_DELAY = 0.05

#: The longest the loop waits without looking at its timers. A timer due later
#: than that never needs to wake the loop up: the loop looks again in time.
MAX_WAIT = 1.0

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


_LIVE_SELECTORS = tuple(
    getattr(selectors, name)
    for name in ("EpollSelector", "KqueueSelector", "DevpollSelector")
    if hasattr(selectors, name)
)


class Timer:
    """A callback scheduled on the reactor; ``cancel()`` keeps it from running."""

    __slots__ = ("_reactor", "callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], None], reactor: Reactor) -> None:
        self.deadline = deadline
        self.callback: Callable[[], None] | None = callback
        self.cancelled = False
        self._reactor: Reactor | None = reactor  # None once out of the reactor's heap

    def __lt__(self, other: Timer) -> bool:
        # The heap holds timers themselves, ordered by deadline: a (deadline,
        # sequence, timer) tuple per timer would cost each idle connection's
        # keepalive about 100 bytes. Timers due at the same time run in any order.
        return self.deadline < other.deadline

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.callback = None
            reactor = self._reactor
            if reactor is not None:
                reactor.timer_cancelled()


class Reactor:
    """A selector loop and a timer heap, served by one daemon thread."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        #: Makes a lock for a critical section that never waits and never
        #: switches greenlets (see :func:`green.short_lock_factory`).
        self.short_lock = green.short_lock_factory()
        self._lock = self.short_lock()
        self._timers: list[Timer] = []  # a heap (see Timer.__lt__)
        self._cancelled = 0  # cancelled timers still in the heap
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, EVENT_READ, None)
        # Handlers read their own sockets while they wait in receive(), except
        # under eventlet, which forbids two greenlets waiting on one socket:
        # there the reactor does all the reading. epoll and kqueue see a
        # registration made while the loop waits; the other selectors (gevent's,
        # eventlet's green select) collect their file descriptors when a wait
        # starts, so the loop is woken to notice a change.
        self.handlers_read = green.handlers_read()
        self.wait: Wait = green.wait_function()
        self._rearm: collections.deque[Callable[[], None]] = collections.deque()
        # Callbacks from signal handlers, which may take no lock (deque.append is atomic).
        self._from_signals: collections.deque[Callable[[], None]] = collections.deque()
        self._next_rearm = 0.0
        # The loop's wait will not end in time for a rearm: rearm_soon() must wake it.
        self._waiting_long = False
        # When the loop's current wait ends at the latest (monotonic time).
        self._wakes_at = 0.0
        self._thread = threading.Thread(target=self._run, name="flask-duplex-reactor", daemon=True)
        self._thread.start()

    def set_events(self, sock: socket.socket, events: int, callback: Callable[[int], None]) -> None:
        """Watch ``sock`` for ``events`` (0 stops watching).

        ``callback(mask)`` runs on the reactor thread when the socket is ready,
        and must not block.
        """
        fd = sock.fileno()
        with self._lock:
            registered = fd in self._selector.get_map()
            if not events:
                if registered:
                    self._selector.unregister(fd)
                return
            if registered:
                self._selector.modify(fd, events, callback)
            else:
                self._selector.register(fd, events, callback)
        if not isinstance(self._selector, _LIVE_SELECTORS):
            self._wake()

    def rearm_soon(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the reactor thread within ``REARM_DELAY`` seconds.

        Batching these calls is what lets a socket go back and forth between a
        handler and the reactor without a system call per message.
        """
        with self._lock:
            self._rearm.append(callback)
            wake, self._waiting_long = self._waiting_long, False
        if wake:
            self._wake()

    def call_soon_from_signal(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the reactor thread soon; takes no lock, for signal handlers."""
        self._from_signals.append(callback)
        self._wake()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the reactor thread after ``delay`` seconds."""
        timer = Timer(time.monotonic() + delay, callback, self)
        with self._lock:
            heapq.heappush(self._timers, timer)
            wake = timer.deadline < self._wakes_at
        if wake:  # Only a timer due before the loop looks again needs a wake-up.
            self._wake()
        return timer

    def timer_cancelled(self) -> None:
        """Count a cancelled timer; when they are most of the heap, drop them from it.

        Every connection schedules timers (keepalive, the close deadline) and
        most are cancelled long before they are due. Left in the heap, they
        would make it grow with the connection rate.
        """
        with self._lock:
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._timers):
                kept = []
                for timer in self._timers:
                    if timer.cancelled:
                        timer._reactor = None
                    else:
                        kept.append(timer)
                heapq.heapify(kept)
                self._timers = kept
                self._cancelled = 0

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except BlockingIOError:
            pass  # A wake-up is already pending.

    def _run(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                timeout = REARM_DELAY if self._rearm else MAX_WAIT
                timers = self._timers
                while timers and timers[0].cancelled:  # Never wake up for nothing.
                    heapq.heappop(timers)._reactor = None
                    self._cancelled -= 1
                if timers:
                    timeout = max(0.0, min(timeout, timers[0].deadline - now))
                self._wakes_at = now + timeout
                # A wait longer than a rearm's delay: rearm_soon() must wake the loop.
                self._waiting_long = timeout > REARM_DELAY
            for key, mask in self._selector.select(timeout):
                if key.data is None:
                    self._drain_wakeups()
                    continue
                try:
                    key.data(mask)
                except Exception:
                    logger.exception("flask-duplex: socket callback failed")
            self._run_due_timers()
            self._run_rearms()
            while self._from_signals:
                callback = self._from_signals.popleft()
                try:
                    callback()
                except Exception:
                    logger.exception("flask-duplex: callback failed")

    def _run_rearms(self) -> None:
        now = time.monotonic()
        if now < self._next_rearm:
            return
        self._next_rearm = now + REARM_DELAY
        for _ in range(len(self._rearm)):
            callback = self._rearm.popleft()
            try:
                callback()
            except Exception:
                logger.exception("flask-duplex: socket callback failed")

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _run_due_timers(self) -> None:
        now = time.monotonic()
        due: list[Timer] = []
        with self._lock:
            while self._timers and self._timers[0].deadline <= now:
                timer = heapq.heappop(self._timers)
                timer._reactor = None
                if timer.cancelled:
                    self._cancelled -= 1
                else:
                    due.append(timer)
        for timer in due:
            callback = timer.callback
            if callback is None:
                continue
            try:
                callback()
            except Exception:
                logger.exception("flask-duplex: timer callback failed")


_reactor: Reactor | None = None
_reactor_lock = threading.Lock()


def _forget_after_fork() -> None:
    # A forked child (a gunicorn worker) has no reactor thread: it starts its own.
    global _reactor, _reactor_lock
    _reactor = None
    _reactor_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def current_reactor() -> Reactor | None:
    """The process's reactor, if one was started (in this process)."""
    return _reactor


def get_reactor() -> Reactor:
    """The process's reactor, started on first use (and again after a fork)."""
    global _reactor
    reactor = _reactor
    if reactor is not None:
        return reactor
    with _reactor_lock:
        if _reactor is None:
            _reactor = Reactor()
        return _reactor
