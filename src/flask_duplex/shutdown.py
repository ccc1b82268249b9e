"""Graceful shutdown: when the process is told to stop, every connection hears "going away".

A WSGI server that stops does not know what a WebSocket is: left alone, it
drops each connection's TCP connection bare (the browser sees 1006), or
waits out its whole grace period for handlers that never return. So when the
process is asked to stop, Flask-Duplex itself sends every open connection a
close frame 1001 ("going away"), refuses new ones with 503, and lets the
handlers end: they see :class:`ConnectionClosed` (a ``for`` loop over the
connection ends quietly), and ``on_disconnect`` hooks run.

How the request to stop is noticed
----------------------------------
* **Signals.** When an app is set up (``init_app``) on the main thread,
  handlers for SIGTERM, SIGINT and SIGQUIT are chained in front of the ones
  already there: gunicorn's worker installs its own before it loads the app,
  Python's SIGINT handler raises KeyboardInterrupt. Ours starts the closing,
  then calls the previous handler, so the server stops as it always does.
  Where SIGTERM had no handler (it would kill the process on the spot: a
  standalone Werkzeug, gevent or eventlet server), ours raises
  ``SystemExit`` instead, so that the server unwinds like on Ctrl-C.
* **Interpreter exit.** Whatever stopped the server, the process's exit
  starts the closing too, and waits: ``threading``'s exit hook runs before
  the interpreter joins or abandons the server's threads.
* **uWSGI** replaces these handlers in each worker with its own, in C, and
  runs no Python at exit in a worker that is serving a request; its adapter
  (``servers/uwsgi.py``) notices the stop signals its own way and calls
  :func:`drain` before uWSGI goes on.

A signal handler runs between two bytecodes of the main thread, which may
hold one of the engine's locks at that moment (under gevent, every greenlet
runs on the main thread). So the handler takes no lock: it asks the reactor
(``reactor.py``), through a lock-free queue and a wake-up byte, to close the
connections on its own thread.

Waiting
-------
After the closing starts, the process waits at most ``DUPLEX_SHUTDOWN_TIMEOUT``
seconds (5 by default) for the handlers to return, at exit. Under gunicorn,
the worker's ``graceful_timeout`` bounds the whole stop as well.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import time
import weakref
from types import FrameType
from typing import Any, Protocol

from . import green
from .reactor import current_reactor

__all__ = ["GOING_AWAY_REASON", "Drainable", "begin", "drain", "watch"]

GOING_AWAY_REASON = "server shutting down"

_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGQUIT") if hasattr(signal, name)
)


class Drainable(Protocol):
    """What shutdown needs of an app's connections (``registry.Connections``)."""

    #: New connections are refused: set from a signal handler, so a plain attribute.
    draining: bool
    #: Seconds the process's exit waits for the handlers.
    shutdown_timeout: float

    def close_all(self, code: int, reason: str, timeout: float | None = None) -> int:
        """Close every connection; wait up to ``timeout`` for handlers; how many still run."""

    def stop_background(self) -> None:
        """Stop the app's background work, once its connections are done."""


# Process-wide, as signal handlers and exit hooks are. The set holds each app's
# registry weakly: an app that is dropped (tests make many) leaves it.
_watched: weakref.WeakSet[Drainable] = weakref.WeakSet()
_installed_pid = 0
_started = False


def watch(connections: Drainable) -> None:
    """Close these connections when the process stops; set the process up once."""
    global _installed_pid, _started
    _watched.add(connections)
    if _installed_pid == os.getpid():
        return
    _installed_pid = os.getpid()
    _started = False  # A forked worker starts afresh.
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is not None:
            register(drain)
        else:
            atexit.register(drain)
    except RuntimeError:
        atexit.register(drain)  # Interpreter already shutting down threads.
    for signum in _SIGNALS:
        _chain(signum)


def begin() -> None:
    """Start closing every watched app's connections with 1001; returns at once.

    Safe to call from a signal handler: it takes no lock.
    """
    global _started
    if _started:
        return
    _started = True
    for connections in list(_watched):
        connections.draining = True
    reactor = current_reactor()
    if reactor is not None:
        reactor.call_soon_from_signal(_close_everything)
    # Without a reactor no connection was ever accepted: nothing to close.


def _close_everything() -> None:
    for connections in list(_watched):
        connections.close_all(1001, GOING_AWAY_REASON)


def drain() -> None:
    """Close every watched connection with 1001 and wait for the handlers; at exit.

    Waits at most the apps' ``shutdown_timeout``, then stops their background work.
    """
    begin()
    watched = list(_watched)
    if not watched:
        return
    deadline = time.monotonic() + max(each.shutdown_timeout for each in watched)
    for each in watched:
        each.close_all(1001, GOING_AWAY_REASON, max(0.0, deadline - time.monotonic()))
    for each in watched:
        each.stop_background()  # The hub's threads, once the connections are done with it.


def _chain(signum: int) -> None:
    try:
        previous = signal.getsignal(signum)
    except ValueError:
        return
    if previous is signal.SIG_IGN or previous is None:
        return  # Ignored, or set from C: leave it alone.
    if previous is signal.SIG_DFL and signum != signal.SIGTERM:
        return

    def stop_as_before(number: int, frame: FrameType | None) -> Any:
        if callable(previous):
            return previous(number, frame)
        # SIGTERM would have ended the process at once: unwind instead, like
        # Ctrl-C, so that the server stops and the exit hook waits.
        raise SystemExit(128 + number)

    def handler(number: int, frame: FrameType | None) -> Any:
        begin()
        # Under gevent or eventlet, a request's greenlet may be the one running:
        # the server's own stop (KeyboardInterrupt, SystemExit) goes to the main one.
        if green.from_signal_in_main_greenlet(lambda: stop_as_before(number, None)):
            return None
        return stop_as_before(number, frame)

    with contextlib.suppress(ValueError):  # Not the main thread: the exit hook remains.
        signal.signal(signum, handler)
