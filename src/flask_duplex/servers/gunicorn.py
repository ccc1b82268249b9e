"""gunicorn: the gthread, gevent, eventlet and sync workers.

gunicorn puts the socket in ``environ["gunicorn.socket"]``; bytes its parser
read past the request head wait in the request's unreader. Once the connection
is over, the view returns a response that gives gunicorn the status 101 for
its access log and tells gunicorn's response object that its headers went out
already (they did: the engine wrote the 101), so gunicorn writes nothing more,
and closes the connection. (Were it to write, the kernel would refuse: the
write side is shut down. Not writing saves a failed write and its exception
on every connection.)

On the sync worker each connection holds a whole worker process for its whole
life, and the arbiter kills a worker that is busy longer than ``--timeout``;
that is logged once per worker, with the workers to use instead.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from typing import Any

from flask import Response

from .base import Handover, ServerAdapter

__all__ = ["GunicornAdapter"]

logger = logging.getLogger("flask_duplex")


class GunicornAdapter(ServerAdapter):
    name = "gunicorn (gthread, gevent, eventlet, sync workers)"

    def __init__(self) -> None:
        self._warned_sync = False

    def matches(self, environ: Mapping[str, Any]) -> bool:
        return "gunicorn.socket" in environ

    def take_over(self, environ: Mapping[str, Any]) -> Handover:
        if not environ.get("wsgi.multithread") and not self._warned_sync:
            self._warned_sync = True
            logger.warning(
                "flask-duplex: gunicorn's sync worker serves one connection at a time: each "
                "WebSocket holds a whole worker process, and the worker is killed after "
                "--timeout seconds. Run gunicorn with -k gthread --threads N, or -k gevent."
            )
        return Handover(environ["gunicorn.socket"], _unread_bytes(environ.get("wsgi.input")))

    def response_after_close(self, environ: Mapping[str, Any]) -> Any:
        return _AlreadySent(status=101)


class _AlreadySent(Response):
    """The end of a WebSocket request on gunicorn: logged as 101, nothing written."""

    def __call__(self, environ: Any, start_response: Any) -> Any:
        start_response("101 Switching Protocols", [])
        # start_response is a method of gunicorn's response object (every
        # gunicorn release has these attributes; without them, gunicorn writes
        # the status line and meets the shut-down socket, as other servers do).
        response: Any = getattr(start_response, "__self__", None)
        if hasattr(response, "headers_sent") and hasattr(response, "must_close"):
            response.headers_sent = True
            response.must_close = True
        return []


def _unread_bytes(body: Any) -> bytes:
    """Bytes gunicorn's parser read past the request head, taken without blocking."""
    unreader = getattr(getattr(body, "reader", None), "unreader", None)
    if unreader is None:
        return b""
    take = getattr(unreader, "take_buffered", None)
    if take is not None:
        return bytes(take())
    buffer = getattr(unreader, "buf", None)  # gunicorn before 27
    if not isinstance(buffer, io.BytesIO):
        return b""
    data = buffer.getvalue()
    unreader.buf = io.BytesIO()
    return data
