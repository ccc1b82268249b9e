"""How each WSGI server hands over the client socket and ends the response.

A WebSocket needs the raw TCP socket, which WSGI does not give; each server
that can serve WebSockets offers it its own way. One module per server says
how to find the socket (and any bytes the server already read past the request
head), and what the view must return afterwards so that the server writes
nothing more and logs the upgrade. Everything else is the same engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Handover, ServerAdapter
from .eventlet import EventletAdapter
from .gevent import GeventAdapter
from .gunicorn import GunicornAdapter
from .testing import TestingAdapter
from .uwsgi import UwsgiAdapter
from .werkzeug import WerkzeugAdapter

__all__ = ["ADAPTERS", "Handover", "ServerAdapter", "detect", "supported_names"]

ADAPTERS: tuple[ServerAdapter, ...] = (
    TestingAdapter(),
    WerkzeugAdapter(),
    GunicornAdapter(),
    EventletAdapter(),
    GeventAdapter(),
    UwsgiAdapter(),
)


def detect(environ: Mapping[str, Any]) -> ServerAdapter | None:
    """The adapter for the server that produced ``environ``, or None if it is not supported."""
    for adapter in ADAPTERS:
        if adapter.matches(environ):
            return adapter
    return None


def supported_names() -> str:
    """The supported servers, for error messages."""
    return ", ".join(
        adapter.name for adapter in ADAPTERS if not isinstance(adapter, TestingAdapter)
    )
