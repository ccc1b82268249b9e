"""The contenders' echo servers, one small module per library.

Each serves ``/echo`` on ``127.0.0.1``: every message that comes in goes straight back. They all
accept messages up to :data:`MAX_MESSAGE_SIZE` and none negotiates compression (the load
generator never offers it), so the figures compare the libraries, not their settings. Everything
else is left at the library's defaults, as a user would run it.
"""

from __future__ import annotations

__all__ = ["MAX_MESSAGE_SIZE", "port_from_argv"]

import sys

# The largest scenario sends 64 KiB; 1 MiB is Flask-Duplex's and websockets' own default.
MAX_MESSAGE_SIZE = 2**20


def port_from_argv() -> int:
    """The port named on the command line: ``python -m bench.servers.NAME PORT``."""
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        raise SystemExit("usage: python -m bench.servers.NAME PORT")
    return int(sys.argv[1])
