"""Werkzeug's development server (``app.run()``, ``flask run``).

Werkzeug puts the socket in ``environ["werkzeug.socket"]``. Once the
connection is over, the view returns an empty 101 response: Werkzeug logs the
101 in its access log, then tries to write the status line to a socket whose
write side is already shut down; the kernel refuses (EPIPE), which Werkzeug
treats as a client that went away. Nothing reaches the wire after the close
frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Handover, ServerAdapter, handover_buffered

__all__ = ["WerkzeugAdapter"]


class WerkzeugAdapter(ServerAdapter):
    name = "werkzeug"

    def matches(self, environ: Mapping[str, Any]) -> bool:
        return "werkzeug.socket" in environ

    def take_over(self, environ: Mapping[str, Any]) -> Handover:
        sock = environ["werkzeug.socket"]
        return handover_buffered(environ.get("wsgi.input"), sock)
