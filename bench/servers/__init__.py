"""The contenders' echo servers, one small module per library.

Each serves ``/echo`` on ``127.0.0.1``: every message that comes in goes straight back. They all
accept messages up to :data:`MAX_MESSAGE_SIZE`, and ``/echo`` negotiates no compression, so the
figures compare the libraries, not their settings. Everything else is left at the library's
defaults, as a user would run it.

Two more routes serve the scenarios of connection cost (see :mod:`bench.scenarios`):

- ``/echo-deflate`` is the same echo with permessage-deflate accepted when the client offers it,
  with each library's default settings. Only the fragmented scenario offers it. The servers whose
  compression is not per route (websockets') accept it on every path, which changes nothing
  elsewhere: the other scenarios never offer it. picows has no permessage-deflate.
- ``GET /plain`` (the Flask apps only) answers :data:`PLAIN_BODY`: the cheapest request the same
  Flask app on the same server can serve, the ceiling of a connection cycle.
"""

from __future__ import annotations

__all__ = [
    "DEFLATE_ECHO_PATH",
    "ECHO_PATH",
    "MAX_MESSAGE_SIZE",
    "PLAIN_BODY",
    "PLAIN_PATH",
    "add_room_routes",
    "port_from_argv",
]

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask_duplex import Duplex, WebSocket

# The largest scenario sends 64 KiB; 1 MiB is Flask-Duplex's and websockets' own default.
MAX_MESSAGE_SIZE = 2**20

ECHO_PATH = "/echo"
DEFLATE_ECHO_PATH = "/echo-deflate"
PLAIN_PATH = "/plain"
PLAIN_BODY = "ok\n"


def port_from_argv() -> int:
    """The port named on the command line: ``python -m bench.servers.NAME PORT``."""
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        raise SystemExit("usage: python -m bench.servers.NAME PORT")
    return int(sys.argv[1])


def add_room_routes(duplex: Duplex) -> None:
    """Give a Flask-Duplex app ``/echo`` and ``/room/<name>``, as the room benchmarks use them.

    ``/echo`` echoes (the benchmarks' check that a server is up); ``/room/<name>`` joins that
    room and holds the connection, reading whatever the client sends. Only ``duplex.route`` and
    ``ws.join`` are used: the apps that call this also run on an older checkout's package.
    """

    @duplex.route("/echo", compression=False)
    def echo(ws: WebSocket) -> None:
        for message in ws:
            ws.send(message)

    @duplex.route("/room/<name>", compression=False)
    def room(ws: WebSocket, name: str) -> None:
        ws.join(name)
        for _ in ws:
            pass
