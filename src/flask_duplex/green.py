"""Which concurrency model this process runs: OS threads, or gevent's or eventlet's greenlets.

Under gevent or eventlet, the server runs each request in a greenlet, and
monkey-patching (``gevent.monkey.patch_all()``, ``eventlet.monkey_patch()``)
turns ``threading``, ``socket`` and ``select`` into cooperative versions. The
engine's code is the same under all three models; where they must differ (the
cheapest lock that is still correct, how to wait on one socket, whether two
greenlets may wait on one socket), this module is the only place that asks
which model is running. (The server adapters for gevent and eventlet import
their own server's module, to end a response its way.)
"""

from __future__ import annotations

import _socket
import select
import socket
import sys
import threading
import time
from _thread import LockType
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

from .tls import is_tls

__all__ = [
    "Kind",
    "Wait",
    "from_signal_in_main_greenlet",
    "handlers_read",
    "kind",
    "patched",
    "raw_socket",
    "run_in_thread",
    "short_lock_factory",
    "sleep",
    "spawn",
    "wait_function",
]

Kind = Literal["gevent", "eventlet"]
T = TypeVar("T")

Wait = Callable[[socket.socket, bool, "float | None"], bool]
"""``wait(sock, writing, timeout)``: block until ready; False if ``timeout`` passed first."""


def patched(model: Kind) -> bool:
    """Whether ``model`` has monkey-patched ``threading`` in this process."""
    if model == "gevent":
        monkey = sys.modules.get("gevent.monkey")
        return monkey is not None and bool(monkey.is_module_patched("threading"))
    patcher = sys.modules.get("eventlet.patcher")
    return patcher is not None and bool(patcher.is_monkey_patched("thread"))


def kind() -> Kind | None:
    """The green-thread library that patched this process, or ``None`` for OS threads."""
    if patched("gevent"):
        return "gevent"
    if patched("eventlet"):
        return "eventlet"
    return None


def from_signal_in_main_greenlet(call: Callable[[], Any]) -> bool:
    """From a signal handler: run ``call`` in the main greenlet, if this is not it.

    Python runs a signal handler in whatever the main thread runs at that
    moment; under gevent and eventlet that may be a request's greenlet, in the
    middle of a send. An exception the handler raises (KeyboardInterrupt,
    SystemExit) must unwind the server's main greenlet, not that request.
    Returns ``False`` when the caller is on the main greenlet (or in a process
    of OS threads) and should call ``call`` itself. Takes no lock.
    """
    model = kind()
    if model is None:
        return False
    import greenlet

    if greenlet.getcurrent().parent is None:
        return False  # The main greenlet.
    if model == "gevent":
        from gevent import get_hub

        hub = get_hub()
        schedule = hub.loop.run_callback
    else:
        from eventlet import hubs

        hub = hubs.get_hub()

        def schedule(function: Callable[[], Any]) -> Any:
            return hub.schedule_call_global(0, function)

    main = hub.parent if model == "gevent" else hub.greenlet.parent

    def on_main() -> None:
        try:
            call()
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: the server's to handle.
            main.throw(exc)

    schedule(on_main)
    return True


def handlers_read() -> bool:
    """Whether a handler may read its own socket while the reactor also watches it.

    eventlet's hub refuses two greenthreads waiting on one socket, so there the
    reactor does all the reading and handlers wait for its messages.
    """
    return kind() != "eventlet"


def short_lock_factory() -> Callable[[], LockType]:
    """The lock for a critical section that never waits and never switches greenlets.

    Under monkey-patching, ``threading.Lock`` is a cooperative lock written in
    Python, several times the cost of the native one. A section that cannot
    switch greenlets never finds a native lock held by another greenlet, so the
    native lock is safe there, and it still excludes real threads.
    """
    model = kind()
    if model == "gevent":
        from gevent import monkey

        return cast("Callable[[], LockType]", monkey.get_original("_thread", "allocate_lock"))
    if model == "eventlet":
        from eventlet import patcher

        return cast("Callable[[], LockType]", patcher.original("_thread").allocate_lock)
    return threading.Lock


def spawn(function: Callable[[], None], name: str) -> None:
    """Run ``function`` concurrently: a greenlet under gevent or eventlet, else a daemon thread.

    A plain OS thread in a gevent worker would hold the worker's only thread
    each time it runs Python code; a greenlet takes turns with the requests.
    """
    model = kind()
    if model == "gevent":
        import gevent

        gevent.spawn(function)
    elif model == "eventlet":
        import eventlet

        eventlet.spawn(function)
    else:
        threading.Thread(target=function, name=name, daemon=True).start()


def sleep(seconds: float) -> None:
    """Sleep, letting the other greenlets run under gevent or eventlet."""
    model = kind()
    if model == "gevent":
        import gevent

        gevent.sleep(seconds)
    elif model == "eventlet":
        import eventlet

        eventlet.sleep(seconds)
    else:
        time.sleep(seconds)


def run_in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``function`` on a real OS thread and return what it returns (or raise what it raises).

    Under gevent and eventlet, a blocking call into C (sqlite3, a slow
    library) stops every greenlet of the worker; this runs it on the green
    library's thread pool while the caller's greenlet waits cooperatively.
    Under OS threads the call happens right here.
    """
    model = kind()
    if model == "gevent":
        import gevent

        return cast("T", gevent.get_hub().threadpool.apply(function, args, kwargs))
    if model == "eventlet":
        from eventlet import tpool

        return cast("T", tpool.execute(function, *args, **kwargs))
    return function(*args, **kwargs)


def raw_socket(sock: socket.socket) -> socket.socket:
    """The socket to call ``send``, ``sendmsg`` and ``recv`` on: ``sock`` or the OS socket in it.

    For a socket the engine keeps non-blocking. gevent's socket holds a
    non-blocking OS socket and wraps each call in one of its own, which
    waits when the call would block; the engine never wants that (it waits
    for the socket itself, with a deadline), and each wrapper costs a Python
    call per message. Either raises ``BlockingIOError`` when the socket is
    not ready. TLS sockets, and every other model's, are called as they are.
    """
    if kind() == "gevent" and not is_tls(sock):
        inner = getattr(sock, "_sock", None)
        if isinstance(inner, _socket.socket):
            return cast("socket.socket", inner)
    return sock


def wait_function() -> Wait:
    """How a thread (or greenlet) waits for one socket to be ready."""
    return _gevent_wait if kind() == "gevent" else _poll_wait


def _poll_wait(sock: socket.socket, writing: bool, timeout: float | None) -> bool:
    poll = getattr(select, "poll", None)
    if poll is not None:
        poller = poll()
        poller.register(sock, select.POLLOUT if writing else select.POLLIN)
        return bool(poller.poll(None if timeout is None else timeout * 1000))
    # eventlet's monkey-patching removes poll() and makes select() green.
    watched = [sock]
    ready = select.select([] if writing else watched, watched if writing else [], watched, timeout)
    return any(ready)


def _gevent_wait(sock: socket.socket, writing: bool, timeout: float | None) -> bool:
    # gevent's sockets keep one watcher each for reading and writing; waiting
    # on those costs far less than a new watcher (or gevent's poll()) per wait.
    # (Attributes read directly, not with getattr(): this runs once per message.)
    try:
        watcher = sock._write_event if writing else sock._read_event  # type: ignore[attr-defined]
        hub = sock.hub  # type: ignore[attr-defined]
    except AttributeError:  # Not one of gevent's own sockets.
        from gevent.socket import wait_read, wait_write

        try:
            (wait_write if writing else wait_read)(sock.fileno(), timeout, _TimedOut)
        except _TimedOut:
            return False
        return True
    if timeout is None:
        hub.wait(watcher)
        return True
    import gevent

    timer = gevent.Timeout(timeout)
    timer.start()
    try:
        hub.wait(watcher)
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        return False
    finally:
        timer.cancel()
    return True


class _TimedOut(Exception):
    pass
