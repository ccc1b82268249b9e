"""The in-process test client (``flask_duplex.testing``) acting as a server.

It passes the server's end of a socket pair in the environ, with any bytes it
read past the request head; afterwards it writes nothing for a 101.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Handover, ServerAdapter

__all__ = ["PREFETCHED_KEY", "SOCKET_KEY", "TestingAdapter"]

#: The server's end of the socket pair.
SOCKET_KEY = "flask_duplex.test_socket"
#: Bytes the test server read past the request head.
PREFETCHED_KEY = "flask_duplex.test_prefetched"


class TestingAdapter(ServerAdapter):
    __test__ = False
    name = "flask-duplex test client"

    def matches(self, environ: Mapping[str, Any]) -> bool:
        return SOCKET_KEY in environ

    def take_over(self, environ: Mapping[str, Any]) -> Handover:
        return Handover(environ[SOCKET_KEY], environ.get(PREFETCHED_KEY, b""))
