"""uWSGI, behind its own ``--http`` router or a web server's ``uwsgi_pass``.

uWSGI talks to the client through a front (its HTTP router, nginx) over one
connection per request; ``uwsgi.connection_fd()`` is the worker's end of it.
With ``--http-websockets`` the router, and nginx with the ``Upgrade`` and
``Connection`` headers passed on, relay bytes both ways once the request is
sent, so the engine speaks WebSocket on that connection as on any other
server's socket.

The 101 goes out through uWSGI's own writer (its ``start_response`` and
``write``, which any code running a request may call): uWSGI logs the upgrade
as 101 and, its headers being sent, writes nothing when the view returns.
(Were the engine to write the 101, uWSGI would write a status line of its own
after the close frame, to a shut-down socket, and log a write error.)

Who owns what: the engine gets a socket object over a duplicate of uWSGI's
descriptor, so it never closes uWSGI's own; the adapter closes the duplicate
once the connection is over. Both descriptors share one open file, and so one
blocking flag: the socket goes back in the mode uWSGI left it in.

uWSGI reads the request from its front in one read, which may take bytes past
it; those stay in uWSGI's buffer, out of the engine's reach. A client sends
nothing before the 101 comes (RFC 6455, section 4.1), so nothing is lost.

Stopping
--------
uWSGI's master stops a worker with a signal: SIGHUP to finish its requests
and exit (a graceful stop, or a reload), SIGINT or SIGTERM to exit at once.
The worker handles them in C, with handlers set after the app is loaded (so
``shutdown.py``'s are replaced), and runs no Python at exit while it serves a
request, which it does for as long as a WebSocket is open.

So at its first WebSocket, a worker puts a handler of the standard library's
``faulthandler`` in front of uWSGI's for these three signals. It runs in C, on
the thread that gets the signal (the main one, in uWSGI's C loop), and writes to
a socket (one per signal; what it writes, that thread's traceback, is only a
wake-up). A thread of ours (a greenlet under
gevent) waits on those sockets; when one wakes it, it closes every connection
with 1001 and waits for the handlers (``shutdown.drain``), puts uWSGI's
handlers back (``faulthandler.unregister`` restores the one it replaced), and
sends the signal again: uWSGI then stops the worker as it would have. A Python
signal handler would not do: Python runs it on the main thread only, which in
a threaded worker waits in uWSGI's C loop between requests.

Behind uWSGI's own router, only a graceful stop can deliver the 1001s: on
SIGINT (and on SIGTERM with ``die-on-term`` alone), the master kills the
router at once, and with it the connections to the clients.
"""

from __future__ import annotations

import faulthandler
import fcntl
import os
import select
import signal
import socket
import threading
from collections.abc import Mapping
from typing import Any

from flask import Response

from .. import green, shutdown
from ..errors import UnsupportedServer
from .base import Handover, ServerAdapter

__all__ = ["UwsgiAdapter"]

#: The duplicate socket the engine used, closed by the adapter afterwards.
SOCKET_KEY = "flask_duplex.uwsgi_socket"


class UwsgiAdapter(ServerAdapter):
    name = "uWSGI (--http-websockets, or nginx's uwsgi_pass; threads or --gevent)"

    def matches(self, environ: Mapping[str, Any]) -> bool:
        return "uwsgi.version" in environ

    def check(self, environ: Mapping[str, Any]) -> None:
        try:
            import uwsgi  # noqa: F401
        except ImportError:  # pragma: no cover - the module exists in every uWSGI worker
            raise UnsupportedServer("the uwsgi module is missing") from None
        if "uwsgi.core" not in environ:  # pragma: no cover
            raise UnsupportedServer("this uWSGI does not say which core serves the request")
        if _gevent_loop() and not green.patched("gevent"):
            raise UnsupportedServer(
                "uWSGI's gevent loop serves WebSockets only with monkey-patching: run uWSGI "
                "with --gevent-early-monkey-patch (or --gevent-monkey-patch)"
            )

    def take_over(self, environ: Mapping[str, Any]) -> Handover:
        import uwsgi

        _watch_stop_signals()
        fd = uwsgi.connection_fd()
        blocking = not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK
        sock = socket.socket(fileno=os.dup(fd))
        environ[SOCKET_KEY] = sock  # type: ignore[index]
        return Handover(sock, timeout=None if blocking else 0.0)

    def send_response(self, environ: Mapping[str, Any], response: bytes) -> bool:
        import uwsgi

        head = response.decode("latin-1").split("\r\n")
        status = head[0].split(" ", 1)[1]  # "HTTP/1.1 101 Switching Protocols"
        headers = [
            (name, value.lstrip())
            for name, _, value in (line.partition(":") for line in head[1:] if line)
        ]
        write = uwsgi.start_response(status, headers)
        write(b"")  # Sends the headers now (and blocks until they are out).
        return True

    def response_after_close(self, environ: Mapping[str, Any]) -> Any:
        sock = environ.get(SOCKET_KEY)
        if sock is not None:
            sock.close()  # The duplicate; uWSGI closes its own descriptor.
        return _AlreadySent()


class _AlreadySent(Response):
    """The end of a WebSocket request on uWSGI: its 101 went out already; nothing more."""

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return []


def _gevent_loop() -> bool:
    import uwsgi

    return bool(getattr(uwsgi, "loop", None) == "gevent")


#: The signals uWSGI's master stops a worker with.
STOP_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)
_watching_pid = 0
_watch_lock = threading.Lock()


def _watch_stop_signals() -> None:
    """In this worker, close the connections before uWSGI acts on a stop signal; once."""
    global _watching_pid
    if _watching_pid == os.getpid():
        return
    with _watch_lock:
        if _watching_pid == os.getpid():
            return
        wakeups: dict[socket.socket, tuple[signal.Signals, socket.socket]] = {}
        for signum in STOP_SIGNALS:
            reader, writer = socket.socketpair()
            writer.setblocking(False)  # A full buffer must not block the signal handler.
            # The traceback of the thread that got the signal only: the worker's
            # main thread, waiting in uWSGI's C loop. all_threads=True walked the
            # other threads' frames while they ran, and segfaulted the worker
            # about one stop in ten (test_shutdown's uwsgi-nginx row).
            faulthandler.register(signum, file=writer.fileno(), all_threads=False, chain=False)
            wakeups[reader] = (signum, writer)
        _watching_pid = os.getpid()
    green.spawn(lambda: _stop_on_signal(wakeups), "flask-duplex uWSGI stop")


def _stop_on_signal(wakeups: dict[socket.socket, tuple[signal.Signals, socket.socket]]) -> None:
    ready, _, _ = select.select(list(wakeups), [], [])
    signum = wakeups[ready[0]][0]
    try:
        shutdown.drain()
    finally:
        for each in STOP_SIGNALS:
            faulthandler.unregister(each)
        _signal_again(signum)


def _signal_again(signum: signal.Signals) -> None:
    """Send ``signum`` to this worker again, now that uWSGI's handler is back."""
    main = threading.main_thread().ident
    if green.kind() == "gevent" or main is None:
        # One OS thread: the signal reaches libev's handler, which uWSGI's gevent loop uses.
        os.kill(os.getpid(), signum)
    else:
        # The worker's main thread: the others (uWSGI's cores) block every signal.
        signal.pthread_kill(main, signum)
