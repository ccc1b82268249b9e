"""TLS sockets handed over by the WSGI server: one TLS call at a time.

A connection is read on one thread (a handler in ``receive()``, or the
reactor) while another thread writes to it (a handler's ``send()``, a
broadcast, the reactor finishing a stalled write). On a plain socket the
kernel keeps the two directions apart. On a TLS socket both go through one
OpenSSL connection object, which OpenSSL does not allow two threads to use at
once, and Python's ``ssl`` module does not serialize the calls either. Used
that way, a write that found the socket full while a read ran could fail with
``SSLEOFError`` while the peer was still there, and the connection was
dropped in mid-message.

:class:`LockedTLSSocket` wraps such a socket so that every read, write and
shutdown holds one lock. The engine keeps its sockets non-blocking, so each
call under the lock is short and never waits: waiting for the socket to be
ready happens outside it.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, cast

__all__ = ["LockedTLSSocket", "guard", "is_tls"]


class LockedTLSSocket:
    """A TLS socket whose reads, writes and shutdowns never overlap.

    Everything else (``fileno()``, ``pending()``, options, timeouts) is the
    wrapped socket's.
    """

    __slots__ = ("_lock", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        # threading's lock: under gevent's or eventlet's monkey-patching it is
        # the cooperative one, which stays correct if a green TLS call yields.
        self._lock = threading.Lock()

    def recv(self, size: int) -> bytes:
        with self._lock:
            return self._sock.recv(size)

    def send(self, data: Any) -> int:
        with self._lock:
            return self._sock.send(data)

    def shutdown(self, how: int) -> None:
        with self._lock:
            self._sock.shutdown(how)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def __repr__(self) -> str:
        return f"<LockedTLSSocket {self._sock!r}>"


def is_tls(sock: socket.socket) -> bool:
    """Whether ``sock`` is a TLS socket: ssl's, gevent's or eventlet's, wrapped or not."""
    return hasattr(sock, "pending")


def guard(sock: socket.socket) -> socket.socket:
    """``sock`` wrapped in a :class:`LockedTLSSocket` if it is a TLS socket, else itself."""
    if is_tls(sock):
        return cast("socket.socket", LockedTLSSocket(sock))
    return sock
