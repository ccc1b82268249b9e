"""What a server adapter provides."""

from __future__ import annotations

import abc
import dataclasses
import io
import socket
from collections.abc import Mapping
from types import EllipsisType
from typing import Any

from flask import Response

__all__ = ["Handover", "ServerAdapter", "handover_buffered"]


@dataclasses.dataclass
class Handover:
    """The client socket, and bytes the server read from it past the request head.

    Attributes:
        sock: The client socket, blocking or not.
        prefetched: Bytes the server read past the request head.
        timeout: The socket's timeout as the server set it, to put back when
            the connection is over; ``...`` when ``sock`` still has it.
    """

    sock: socket.socket
    prefetched: bytes = b""
    timeout: float | EllipsisType | None = ...


class ServerAdapter(abc.ABC):
    """How one WSGI server hands over its socket and ends the response."""

    #: The name users know the server by, for logs and errors.
    name: str

    @abc.abstractmethod
    def matches(self, environ: Mapping[str, Any]) -> bool:
        """Tell whether ``environ`` comes from this server."""

    def check(self, environ: Mapping[str, Any]) -> None:
        """Raise :class:`UnsupportedServer` if this server, as run, cannot serve WebSockets.

        Called at the handshake, before anything touches the socket.
        """
        return None

    @abc.abstractmethod
    def take_over(self, environ: Mapping[str, Any]) -> Handover:
        """Take the client socket from the server (when the connection is accepted)."""

    def send_response(self, environ: Mapping[str, Any], response: bytes) -> bool:
        """Have the server itself write the handshake's ``response`` (the 101); False if it cannot.

        Called once the socket is taken over. By default the engine writes the
        101 to the socket; a server that must see the response go out through
        its own writer (to log it, and to write nothing after it) does it here.
        """
        return False

    def response_after_close(self, environ: Mapping[str, Any]) -> Any:
        """What the view returns once the WebSocket is over and its socket shut down.

        An empty 101: the server logs the upgrade, and its attempt to write the
        status line fails on the shut-down socket (EPIPE), which servers treat
        as a client that went away.
        """
        return Response(status=101)

    def request_protocol(self, environ: Mapping[str, Any]) -> str:
        """The HTTP version of the request line the client sent."""
        return str(environ.get("SERVER_PROTOCOL", "HTTP/1.1"))


def handover_buffered(stream: object, sock: socket.socket) -> Handover:
    """Hand ``sock`` over with the bytes a buffered reader over it holds, without blocking.

    A client may send its first frames right behind the handshake; the server's
    reader may then have buffered them along with the request head. The socket
    is left non-blocking, as the engine wants it (one system call, not three).
    """
    if not isinstance(stream, io.BufferedReader):
        return Handover(sock)
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        prefetched = stream.read1(1 << 16) or b""
    except OSError:
        prefetched = b""
    return Handover(sock, prefetched, timeout)
