"""What a server adapter provides."""

from __future__ import annotations

import abc
import dataclasses
import io
import socket
from collections.abc import Mapping
from typing import Any

from flask import Response

__all__ = ["Handover", "ServerAdapter", "read_buffered"]


@dataclasses.dataclass
class Handover:
    """The client socket, and bytes the server read from it past the request head."""

    sock: socket.socket
    prefetched: bytes = b""


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


def read_buffered(stream: object, sock: socket.socket) -> bytes:
    """Return the bytes a buffered reader over ``sock`` holds, without blocking.

    A client may send its first frames right behind the handshake; the server's
    reader may then have buffered them along with the request head.
    """
    if not isinstance(stream, io.BufferedReader):
        return b""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return stream.read1(1 << 16) or b""
    except OSError:
        return b""
    finally:
        sock.settimeout(timeout)
