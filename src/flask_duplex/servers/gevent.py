"""gevent's ``gevent.pywsgi.WSGIServer``, with gevent's monkey-patching.

For upgrade requests gevent passes its buffered reader over the socket as
``wsgi.input``; the socket is the reader's raw stream's. Once the connection is
over, the view returns an empty 101 response: gevent logs it, fails to write
the status line to the shut-down socket (EPIPE, one of the errors it ignores),
and closes the connection instead of reading another request from it.

Monkey-patching (``gevent.monkey.patch_all()`` before anything else) is
required: the engine's locks and its reactor must be greenlet-aware.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import green
from ..errors import UnsupportedServer
from .base import Handover, ServerAdapter, handover_buffered

__all__ = ["GeventAdapter"]


class GeventAdapter(ServerAdapter):
    name = "gevent.pywsgi (monkey-patched)"

    def matches(self, environ: Mapping[str, Any]) -> bool:
        return str(environ.get("SERVER_SOFTWARE", "")).startswith("gevent")

    def check(self, environ: Mapping[str, Any]) -> None:
        if not green.patched("gevent"):
            raise UnsupportedServer(
                "gevent.pywsgi serves WebSockets only with monkey-patching: call "
                "gevent.monkey.patch_all() before importing anything else"
            )

    def take_over(self, environ: Mapping[str, Any]) -> Handover:
        rfile = environ["wsgi.input"]
        sock = rfile.raw._sock
        return handover_buffered(rfile, sock)
