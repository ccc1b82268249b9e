"""eventlet's ``eventlet.wsgi.server``, with eventlet's monkey-patching.

eventlet passes its input object as ``eventlet.input``, which gives the socket
and holds the buffered reader. Once the connection is over, the adapter tells
eventlet that the response was already handled, so it writes nothing and
closes the connection.

Monkey-patching (``eventlet.monkey_patch()`` before anything else) is required:
the engine's locks and its reactor must be green.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response

from .. import green
from ..errors import UnsupportedServer
from .base import Handover, ServerAdapter, handover_buffered

__all__ = ["EventletAdapter"]


class EventletAdapter(ServerAdapter):
    name = "eventlet.wsgi (monkey-patched)"

    def matches(self, environ: Mapping[str, Any]) -> bool:
        return "eventlet.input" in environ

    def check(self, environ: Mapping[str, Any]) -> None:
        if not green.patched("eventlet"):
            raise UnsupportedServer(
                "eventlet.wsgi serves WebSockets only with monkey-patching: call "
                "eventlet.monkey_patch() before importing anything else"
            )

    def take_over(self, environ: Mapping[str, Any]) -> Handover:
        source = environ["eventlet.input"]
        sock = source.get_socket()
        return handover_buffered(source.rfile, sock)

    def request_protocol(self, environ: Mapping[str, Any]) -> str:
        # eventlet always reports SERVER_PROTOCOL as HTTP/1.0, whatever the
        # client sent; an upgrade request is HTTP/1.1 by definition.
        return "HTTP/1.1"

    def response_after_close(self, environ: Mapping[str, Any]) -> Any:
        from eventlet import wsgi

        wsgi.WSGI_LOCAL.already_handled = True
        return Response(status=101)
